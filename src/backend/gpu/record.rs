//! Recording a step: pipelines (composed, checked against the device's limits, cached), bind
//! groups, compute passes and dispatches, and the KV cache's growth.

use std::rc::Rc;

use super::buffers::{self, GpuKvCache, GpuWeight};
use super::shaders::{self, Kernel, Variant};
use super::{GpuAct, GpuBackend, Pipeline, bytes_of};
use crate::error::Result;

impl GpuBackend {
    pub(super) fn pipeline(&mut self, kernel: Kernel, v: Variant) -> Result<Rc<Pipeline>> {
        let key = (kernel.name, v);
        if let Some(p) = self.pipelines.get(&key) {
            return Ok(p.clone());
        }
        let src = shaders::compose(kernel, v)?;
        // Checked here with a clear message: drivers differ in how (and whether) they refuse.
        let needs = shaders::needs(&src)
            .map_err(|e| crate::error::Error::Backend(format!("{}: {e}", kernel.name)))?;
        shaders::check_needs(kernel.name, needs, &self.ctx.limits)?;
        let src = self.inject_shader_fault(src);
        let device = &self.ctx.device;
        // Natively, compile errors are caught here; on the web they arrive through the device's
        // error handler and are reported at the next read-back.
        #[cfg(not(target_arch = "wasm32"))]
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(kernel.name),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
        let storage = |binding: u32, read_only: bool, dynamic: bool| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: dynamic,
                min_binding_size: None,
            },
            count: None,
        };
        let mut entries = vec![storage(0, true, true)];
        entries.extend(
            kernel
                .writable
                .iter()
                .enumerate()
                .map(|(i, &w)| storage(i as u32 + 1, !w, false)),
        );
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(kernel.name),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(kernel.name),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(kernel.name),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(e) = pollster::block_on(scope.pop()) {
            // wgpu's report spans many lines; keep the lines that say what is wrong, on one line.
            let text = e.to_string();
            let detail: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with(['┌', '│', '|']))
                .collect();
            return Err(crate::error::Error::Backend(format!(
                "shader {} failed to compile: {}",
                kernel.name,
                detail.join(" ")
            )));
        }
        let p = Rc::new(Pipeline { pipeline, layout });
        self.pipelines.insert(key, p.clone());
        Ok(p)
    }

    /// Records one dispatch of `kernel` with `params` and `buffers` (bindings 1..); `bytes` is
    /// what it must move (for the profile's bandwidth figures).
    pub(super) fn dispatch(
        &mut self,
        kernel: Kernel,
        v: Variant,
        params: &[u32],
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32),
        bytes: u64,
    ) {
        if self.deferred.is_some() {
            return;
        }
        self.dispatches += 1;
        if let Some(p) = self.profiler.as_mut() {
            crate::backend::add_traffic(&mut p.bytes, kernel.name, bytes);
        }
        let pipeline = match self.pipeline(kernel, v) {
            Ok(p) => p,
            Err(e) => {
                self.deferred = Some(e);
                return;
            }
        };
        let (offset, replaced) = self.params.push(&self.ctx, &bytes_of(params));
        if replaced {
            self.bind_groups.clear();
        }
        let key = (
            (kernel.name, v),
            std::iter::once(&self.params.buffer)
                .chain(buffers.iter().copied())
                .cloned()
                .collect::<Vec<_>>(),
        );
        let slot = self.params.slot;
        let device = &self.ctx.device;
        let made = &mut self.bind_groups_made;
        let bind_group = self.bind_groups.entry(key).or_insert_with_key(|(_, bufs)| {
            *made += 1;
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &bufs[0],
                    offset: 0,
                    size: wgpu::BufferSize::new(slot),
                }),
            }];
            entries.extend(
                bufs[1..]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| wgpu::BindGroupEntry {
                        binding: i as u32 + 1,
                        resource: b.as_entire_binding(),
                    }),
            );
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(kernel.name),
                layout: &pipeline.layout,
                entries: &entries,
            })
        });
        let bind_group = bind_group.clone();
        // All dispatches between two copies share one compute pass (wgpu still orders dependent
        // dispatches inside it). Without timestamps inside passes, a timed dispatch needs a pass
        // of its own, timed at its boundaries.
        let own_pass = self.profiler.as_ref().is_some_and(|p| !p.inside_passes);
        if own_pass {
            self.end_pass();
        }
        let pass = match &mut self.pass {
            Some(pass) => pass,
            None => {
                let timestamp_writes = self
                    .profiler
                    .as_mut()
                    .filter(|_| own_pass)
                    .and_then(|p| p.pass_writes(kernel.name));
                let device = &self.ctx.device;
                let encoder = self.encoder.get_or_insert_with(|| {
                    device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("step"),
                    })
                });
                let pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("step"),
                    timestamp_writes,
                });
                self.pass.insert(pass.forget_lifetime())
            }
        };
        if let Some(p) = self.profiler.as_mut().filter(|p| p.inside_passes) {
            p.mark_start(pass);
        }
        pass.set_pipeline(&pipeline.pipeline);
        pass.set_bind_group(0, &bind_group, &[offset as u32]);
        pass.dispatch_workgroups(groups.0, groups.1, 1);
        if let Some(p) = self.profiler.as_mut().filter(|p| p.inside_passes) {
            p.mark_end(pass, kernel.name);
        }
        self.unsubmitted += 1;
        // A profiled step stays one submission, so its kernels tile the device span.
        if self.unsubmitted >= super::SUBMIT_EVERY && self.profiler.is_none() {
            self.submit_recorded();
        }
    }

    /// Ends the compute pass being recorded, if any.
    pub(super) fn end_pass(&mut self) {
        self.pass = None;
        if let Some(p) = self.profiler.as_mut() {
            p.start = None;
        }
    }

    pub(super) fn act(&self, rows: usize, cols: usize) -> GpuAct {
        GpuAct {
            buf: self.pool.take(&self.ctx.device, rows * cols),
            rows,
            cols,
        }
    }

    /// The step's command encoder, for copies: ends the open compute pass.
    pub(super) fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.end_pass();
        let device = &self.ctx.device;
        self.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("step"),
            })
        })
    }

    pub(super) fn vector(w: &GpuWeight) -> &wgpu::Buffer {
        match w {
            GpuWeight::Vector(b) => b,
            GpuWeight::Matrix { parts, .. } => &parts[0].buffer,
        }
    }

    /// Bytes per KV-cache element.
    pub(super) fn kv_elem_bytes(&self) -> u64 {
        if self.f16_kv { 2 } else { 4 }
    }

    /// Makes the cache hold at least `positions` positions, copying what it has.
    /// Makes layer `layer` of `cache` ready for rows `pos0..pos0 + rows`: positions its window no
    /// longer needs dropped if it must make room (the rest copied to the front, through a
    /// scratch buffer: a buffer cannot be copied onto itself), its buffers grown to hold the
    /// rows. Returns the first position the layer then holds.
    pub(super) fn prepare_cache(
        &mut self,
        cache: &mut GpuKvCache,
        layer: usize,
        pos0: usize,
        rows: usize,
    ) -> usize {
        let old = cache.start[layer];
        let start = crate::backend::cache_start(cache.layers[layer], old, pos0, rows);
        let elem = self.kv_elem_bytes();
        let row = cache.kv_dim as u64 * elem;
        if start > old && pos0 > start {
            let (from, len) = ((start - old) as u64 * row, (pos0 - start) as u64 * row);
            let scratch = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kv shift"),
                size: len,
                usage: buffers::STORAGE,
                mapped_at_creation: false,
            });
            let (k, v) = (cache.keys[layer].clone(), cache.values[layer].clone());
            let enc = self.encoder();
            for buf in [&k, &v] {
                enc.copy_buffer_to_buffer(buf, from, &scratch, 0, len);
                enc.copy_buffer_to_buffer(&scratch, 0, buf, 0, len);
            }
        }
        cache.start[layer] = start;
        self.grow_cache(cache, layer, pos0 + rows - start);
        start
    }

    /// Grows layer `layer`'s buffers of `cache` to hold `positions` (doubling, up to the layer's
    /// capacity), copying what they hold.
    fn grow_cache(&mut self, cache: &mut GpuKvCache, layer: usize, positions: usize) {
        let have = cache.allocated[layer];
        if positions <= have {
            return;
        }
        let cap = positions
            .max(have * 2)
            .max(256)
            .min(cache.layers[layer].capacity);
        let elem = self.kv_elem_bytes();
        let size = (cap * cache.kv_dim) as u64 * elem;
        let make = |label| {
            self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: buffers::STORAGE,
                mapped_at_creation: false,
            })
        };
        let (keys, values) = (make("keys"), make("values"));
        let copy = (have * cache.kv_dim) as u64 * elem;
        if copy > 0 {
            let (ok, ov) = (cache.keys[layer].clone(), cache.values[layer].clone());
            let enc = self.encoder();
            enc.copy_buffer_to_buffer(&ok, 0, &keys, 0, copy);
            enc.copy_buffer_to_buffer(&ov, 0, &values, 0, copy);
        }
        self.kv_bytes += 2 * (size - copy);
        cache.keys[layer] = keys;
        cache.values[layer] = values;
        cache.allocated[layer] = cap;
        // Bind groups of the old buffers would keep them alive: drop them.
        self.bind_groups.clear();
    }
}
