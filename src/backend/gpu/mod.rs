//! The GPU backend: every op of the forward pass is a WGSL compute shader run through wgpu
//! (Vulkan, Metal, DX12, GL, WebGPU). Weights stay in their GGUF block encodings; a forward pass
//! records all its dispatches into one command encoder and submits once, in [`Backend::read`].

mod buffers;
pub mod context;
pub mod profile;
pub mod shaders;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

pub use buffers::{GpuKvCache, GpuWeight};
#[cfg(not(target_arch = "wasm32"))]
pub use context::list_adapters;
pub use context::{AdapterReport, GpuChoice, GpuContext, list_adapters_async};

use super::{AttentionShape, Backend, OpTimes};
use crate::error::{Error, Result};
use crate::format::{RopeLayout, TensorView};
use buffers::{ActPool, PooledBuffer, buffer_with, upload_matrix};
use shaders::{Kernel, PREFILL_TILE, Variant};

/// Activations on the GPU: `rows` x `cols` f32 in a pooled buffer.
pub struct GpuAct {
    buf: Rc<PooledBuffer>,
    /// Rows (tokens).
    pub rows: usize,
    /// Row width.
    pub cols: usize,
}

impl GpuAct {
    fn buffer(&self) -> &wgpu::Buffer {
        &self.buf.buffer
    }
}

type PipelineKey = (&'static str, Variant);

struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// A growable buffer of per-dispatch data (parameters, token ids), filled slot by slot while a
/// step is recorded and uploaded with one `queue.write_buffer` before the step is submitted.
struct Arena {
    buffer: wgpu::Buffer,
    used: u64,
    slot: u64,
    /// Bytes not yet written to `buffer`, starting at `pending_at`.
    pending: Vec<u8>,
    pending_at: u64,
}

impl Arena {
    fn new(device: &wgpu::Device, size: u64, slot: u64) -> Arena {
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("arena"),
            size,
            usage: buffers::STORAGE,
            mapped_at_creation: false,
        });
        Arena {
            buffer,
            used: 0,
            slot,
            pending: Vec::new(),
            pending_at: 0,
        }
    }

    /// Places `bytes` in fresh slots; returns the offset and whether the buffer was replaced.
    fn push(&mut self, ctx: &GpuContext, bytes: &[u8]) -> (u64, bool) {
        let need = (bytes.len() as u64).div_ceil(self.slot).max(1) * self.slot;
        let mut replaced = false;
        if self.used + need > self.buffer.size() {
            // Earlier slots stay valid: the old buffer gets its data now and lives on in the
            // bind groups that use it.
            self.flush(ctx);
            let size = (self.buffer.size() * 2).max(need * 2);
            *self = Arena::new(&ctx.device, size, self.slot);
            replaced = true;
        }
        let at = self.used;
        if self.pending.is_empty() {
            self.pending_at = at;
        }
        self.pending.extend_from_slice(bytes);
        self.pending
            .resize((at + need - self.pending_at) as usize, 0);
        self.used += need;
        (at, replaced)
    }

    /// Queues the pending bytes for upload (applied before the next submission).
    fn flush(&mut self, ctx: &GpuContext) {
        if !self.pending.is_empty() {
            ctx.queue
                .write_buffer(&self.buffer, self.pending_at, &self.pending);
            self.pending.clear();
        }
    }

    /// Uploads what is pending and starts a new step.
    fn finish_step(&mut self, ctx: &GpuContext) {
        self.flush(ctx);
        self.used = 0;
    }
}

/// The GPU backend over one device.
pub struct GpuBackend {
    ctx: GpuContext,
    pipelines: HashMap<PipelineKey, Rc<Pipeline>>,
    bind_groups: HashMap<(PipelineKey, Vec<wgpu::Buffer>), wgpu::BindGroup>,
    pool: ActPool,
    params: Arena,
    ids: Arena,
    /// The compute pass open on `encoder`, if any (declared first: it is dropped first).
    pass: Option<wgpu::ComputePass<'static>>,
    encoder: Option<wgpu::CommandEncoder>,
    staging: Option<wgpu::Buffer>,
    dummy: wgpu::Buffer,
    max_binding: u64,
    deferred: Option<Error>,
    weight_bytes: u64,
    submits: u64,
    bind_groups_made: u64,
    kv_bytes: u64,
    profiler: Option<Profiler>,
    f16_kv: bool,
    subgroups: bool,
    /// Profile with timestamps inside passes.
    inside_passes: bool,
    /// Decode mat-vecs with several threads per row.
    split_rows: bool,
}

/// Optional fast paths; each defaults to on when the adapter has the feature.
#[derive(Clone, Copy, Debug)]
pub struct GpuOptions {
    /// Keep the KV cache in f16 (needs shader-f16): half the memory and bandwidth, keys and
    /// values rounded to f16 (attention outputs then agree with f32 to about 1e-3).
    pub f16_kv: bool,
    /// Use subgroup operations for reductions (needs subgroups).
    pub subgroups: bool,
    /// Lower the storage-binding limit used to split weights (tests).
    pub max_binding: Option<u64>,
    /// Decode mat-vecs split each weight row over several threads (shaders/matvec.wgsl), as GPUs
    /// want; off, each thread computes whole rows, which suits software rasterizers whose
    /// "threads" are SIMD lanes of a few CPU cores.
    pub split_rows: bool,
    /// When profiling, write timestamps between the dispatches of one compute pass (needs
    /// timestamp-query-inside-passes); otherwise each timed dispatch gets a pass of its own, as
    /// WebGPU requires.
    pub timestamps_inside_passes: bool,
}

impl GpuOptions {
    /// Every fast path the context's device supports.
    pub fn fastest(ctx: &GpuContext) -> GpuOptions {
        GpuOptions {
            f16_kv: ctx.report.shader_f16,
            subgroups: ctx.report.subgroups,
            max_binding: None,
            split_rows: ctx.report.device_type != "Cpu",
            timestamps_inside_passes: timestamps_inside_passes(ctx),
        }
    }

    /// The default: fast paths that keep f32 accuracy (subgroup reductions); the f16 KV cache
    /// trades about 5e-3 in the logits for half the cache memory, so it is opt-in.
    pub fn accurate(ctx: &GpuContext) -> GpuOptions {
        GpuOptions {
            f16_kv: false,
            ..Self::fastest(ctx)
        }
    }
}

/// Whether the device can write timestamps between the dispatches of a compute pass.
fn timestamps_inside_passes(ctx: &GpuContext) -> bool {
    ctx.device
        .features()
        .contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
}

/// The variant of kernels without options.
const PLAIN: Variant = Variant {
    dtype: None,
    tile: 1,
    f16: false,
    subgroups: false,
};

/// Bytes of one parameter slot: a multiple of every adapter's storage offset alignment.
const MIN_SLOT: u64 = 256;

fn bytes_of(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Workgroup counts covering `n` invocations of 64, folded into two dimensions when needed.
fn linear_groups(n: usize) -> (u32, u32) {
    let groups = n.div_ceil(64).max(1) as u32;
    let x = groups.min(65535);
    (x, groups.div_ceil(x))
}

impl GpuBackend {
    /// A backend on the best adapter `choice` allows, with the accurate fast paths.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(choice: GpuChoice) -> Result<GpuBackend> {
        Self::new_with_kv_f16(choice, false)
    }

    /// As [`GpuBackend::new`], keeping the KV cache in f16 if asked and the adapter can.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_with_kv_f16(choice: GpuChoice, kv_f16: bool) -> Result<GpuBackend> {
        let ctx = GpuContext::new(choice)?;
        let options = GpuOptions {
            f16_kv: kv_f16,
            ..GpuOptions::accurate(&ctx)
        };
        Self::with_context(ctx, options)
    }

    /// A backend on an opened device with the given fast paths (those the device lacks are off).
    pub fn with_context(ctx: GpuContext, options: GpuOptions) -> Result<GpuBackend> {
        let (ctx_f16, ctx_subgroups) = (ctx.report.shader_f16, ctx.report.subgroups);
        let inside_passes = options.timestamps_inside_passes && timestamps_inside_passes(&ctx);
        let max_binding = options.max_binding;
        let slot = (ctx.limits.min_storage_buffer_offset_alignment as u64).max(MIN_SLOT);
        let limit = ctx
            .limits
            .max_storage_buffer_binding_size
            .min(ctx.limits.max_buffer_size);
        let max_binding = max_binding.map_or(limit, |m| m.min(limit));
        // Room for 4096 dispatches per step before the arena has to grow.
        let params = Arena::new(&ctx.device, 4096 * slot, slot);
        let ids = Arena::new(&ctx.device, 16 * 1024, slot);
        let dummy = buffer_with(&ctx.device, "dummy", &[0; 4]);
        Ok(GpuBackend {
            ctx,
            pipelines: HashMap::new(),
            bind_groups: HashMap::new(),
            pool: ActPool::default(),
            params,
            ids,
            pass: None,
            encoder: None,
            staging: None,
            dummy,
            max_binding,
            deferred: None,
            weight_bytes: 0,
            submits: 0,
            bind_groups_made: 0,
            kv_bytes: 0,
            profiler: None,
            f16_kv: options.f16_kv && ctx_f16,
            inside_passes,
            subgroups: options.subgroups && ctx_subgroups,
            split_rows: options.split_rows,
        })
    }

    /// The adapter in use.
    pub fn adapter(&self) -> &AdapterReport {
        &self.ctx.report
    }

    /// Counters: (command submissions, bind groups created, pipelines created) so far.
    pub fn stats(&self) -> (u64, u64, usize) {
        (self.submits, self.bind_groups_made, self.pipelines.len())
    }

    /// Bytes of GPU memory held by weights, KV caches and pooled activations.
    pub fn gpu_bytes(&self) -> u64 {
        self.weight_bytes + self.kv_bytes + self.pool.free_bytes()
    }

    fn pipeline(&mut self, kernel: Kernel, v: Variant) -> Result<Rc<Pipeline>> {
        let key = (kernel.name, v);
        if let Some(p) = self.pipelines.get(&key) {
            return Ok(p.clone());
        }
        let src = shaders::compose(kernel, v)?;
        // Checked here with a clear message: drivers differ in how (and whether) they refuse.
        shaders::check_needs(kernel.name, shaders::needs(&src)?, &self.ctx.limits)?;
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
            return Err(Error::Backend(format!(
                "shader {} failed to compile: {}",
                kernel.name,
                detail.join(" ")
            )));
        }
        let p = Rc::new(Pipeline { pipeline, layout });
        self.pipelines.insert(key, p.clone());
        Ok(p)
    }

    /// Records one dispatch of `kernel` with `params` and `buffers` (bindings 1..).
    fn dispatch(
        &mut self,
        kernel: Kernel,
        v: Variant,
        params: &[u32],
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32),
    ) {
        if self.deferred.is_some() {
            return;
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
        if self.pass.is_none() {
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
            self.pass = Some(pass.forget_lifetime());
        }
        let pass = self.pass.as_mut().expect("a pass is open");
        if let Some(p) = self.profiler.as_mut().filter(|p| p.inside_passes) {
            p.mark_start(pass);
        }
        pass.set_pipeline(&pipeline.pipeline);
        pass.set_bind_group(0, &bind_group, &[offset as u32]);
        pass.dispatch_workgroups(groups.0, groups.1, 1);
        if let Some(p) = self.profiler.as_mut().filter(|p| p.inside_passes) {
            p.mark_end(pass, kernel.name);
        }
    }

    /// Ends the compute pass being recorded, if any.
    fn end_pass(&mut self) {
        self.pass = None;
        if let Some(p) = self.profiler.as_mut() {
            p.start = None;
        }
    }

    fn act(&self, rows: usize, cols: usize) -> GpuAct {
        GpuAct {
            buf: self.pool.take(&self.ctx.device, rows * cols),
            rows,
            cols,
        }
    }

    /// The step's command encoder, for copies: ends the open compute pass.
    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.end_pass();
        let device = &self.ctx.device;
        self.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("step"),
            })
        })
    }

    fn vector(w: &GpuWeight) -> &wgpu::Buffer {
        match w {
            GpuWeight::Vector(b) => b,
            GpuWeight::Matrix { parts, .. } => &parts[0].buffer,
        }
    }

    /// Bytes per KV-cache element.
    fn kv_elem_bytes(&self) -> u64 {
        if self.f16_kv { 2 } else { 4 }
    }

    /// Makes the cache hold at least `positions` positions, copying what it has.
    fn grow_cache(&mut self, cache: &mut GpuKvCache, positions: usize) {
        if positions <= cache.capacity {
            return;
        }
        let cap = positions.max(cache.capacity * 2).max(256).min(cache.ctx);
        let elem = self.kv_elem_bytes();
        let size = (cap * cache.kv_dim) as u64 * elem;
        let old = cache.capacity;
        let make = |label| {
            self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: buffers::STORAGE,
                mapped_at_creation: false,
            })
        };
        let (keys, values): (Vec<_>, Vec<_>) = (0..cache.keys.len().max(cache.values.len()))
            .map(|_| (make("keys"), make("values")))
            .unzip();
        let copy = (old * cache.kv_dim) as u64 * elem;
        if copy > 0 {
            let (ok, ov) = (cache.keys.clone(), cache.values.clone());
            let enc = self.encoder();
            for (src, dst) in ok.iter().zip(&keys).chain(ov.iter().zip(&values)) {
                enc.copy_buffer_to_buffer(src, 0, dst, 0, copy);
            }
        }
        self.kv_bytes += 2 * cache.keys.len() as u64 * (size - (old * cache.kv_dim) as u64 * elem);
        cache.keys = keys;
        cache.values = values;
        cache.capacity = cap;
        // Bind groups of the old buffers would keep them alive: drop them.
        self.bind_groups.clear();
    }
}

/// The outcome of a buffer mapping (once known) and the task waiting for it.
type MapState = (
    Option<std::result::Result<(), wgpu::BufferAsyncError>>,
    Option<Waker>,
);

/// Completion of a buffer mapping, as a future (driven by `device.poll` natively, by the
/// browser's event loop on the web).
struct MapFuture(Arc<Mutex<MapState>>);

impl Future for MapFuture {
    type Output = std::result::Result<(), wgpu::BufferAsyncError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match state.0.take() {
            Some(r) => Poll::Ready(r),
            None => {
                state.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl GpuBackend {
    /// Submits the recorded step (one command buffer) and reads `x` back.
    pub async fn read_async(&mut self, x: &GpuAct) -> Result<Vec<f32>> {
        self.end_pass();
        let encoder = self.encoder.take();
        self.params.finish_step(&self.ctx);
        self.ids.finish_step(&self.ctx);
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        let mut encoder =
            encoder.unwrap_or_else(|| self.ctx.device.create_command_encoder(&Default::default()));
        let size = (x.rows * x.cols * 4) as u64;
        if self.staging.as_ref().is_none_or(|s| s.size() < size) {
            self.staging = Some(self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("staging"),
                size: size.max(4),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let staging = self.staging.clone().expect("staging buffer was just made");
        encoder.copy_buffer_to_buffer(x.buffer(), 0, &staging, 0, size);
        let written = self.profiler.as_ref().map_or(0, |p| p.written);
        if let Some(p) = self.profiler.as_ref().filter(|_| written > 0) {
            encoder.resolve_query_set(&p.set, 0..written, &p.resolve, 0);
            encoder.copy_buffer_to_buffer(&p.resolve, 0, &p.readback, 0, 8 * written as u64);
        }
        self.ctx.queue.submit([encoder.finish()]);
        self.submits += 1;
        let bytes = self.map_read(&staging, size).await?;
        if let Some(readback) = self
            .profiler
            .as_ref()
            .filter(|_| written > 0)
            .map(|p| p.readback.clone())
        {
            let ticks = self.map_read(&readback, 8 * written as u64).await?;
            let period = self.ctx.queue.get_timestamp_period() as f64;
            if let Some(p) = self.profiler.as_mut() {
                p.add_step(bytemuck::cast_slice(&ticks), period);
            }
        }
        Ok(bytemuck::cast_slice::<u8, f32>(&bytes).to_vec())
    }

    /// Maps the first `size` bytes of `buffer` (after the work submitted so far) and copies them out.
    async fn map_read(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        let slice = buffer.slice(..size);
        let state: Arc<Mutex<MapState>> = Arc::new(Mutex::new((None, None)));
        let shared = state.clone();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
            s.0 = Some(r);
            if let Some(w) = s.1.take() {
                w.wake();
            }
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.ctx
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(std::time::Duration::from_secs(300)),
            })
            .map_err(|e| Error::Backend(format!("waiting for the GPU: {e}")))?;
        let mapped = MapFuture(state).await;
        self.ctx.errors.check()?;
        mapped.map_err(|e| Error::Backend(format!("reading results back: {e}")))?;
        let data = slice
            .get_mapped_range()
            .map_err(|e| Error::Backend(format!("reading results back: {e}")))?;
        let out = data.to_vec();
        drop(data);
        buffer.unmap();
        Ok(out)
    }
}

/// Timestamp queries around every dispatch of a step, summed per kernel.
///
/// Where the adapter can write timestamps inside a compute pass, one timestamp goes between
/// consecutive dispatches, so a kernel's time runs from the end of the one before it (its
/// barrier and binding included) to its own end and the kernels tile the step. Elsewhere
/// (WebGPU) each timed dispatch gets a pass of its own, timed at its boundaries.
struct Profiler {
    set: wgpu::QuerySet,
    inside_passes: bool,
    /// Queries written in the step being recorded.
    written: u32,
    /// The step's timed dispatches: kernel, start query, end query.
    timed: Vec<(&'static str, u32, u32)>,
    /// The query the next dispatch in the open pass starts from (the previous one's end).
    start: Option<u32>,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Nanoseconds per kernel since profiling started.
    totals: Vec<(&'static str, f64)>,
    /// Nanoseconds from each step's first kernel start to its last kernel end, summed.
    span_ns: f64,
}

/// Timestamp queries per step (two per dispatch at most).
const PROFILE_QUERIES: u32 = 4096;

impl Profiler {
    fn new(device: &wgpu::Device, inside_passes: bool) -> Profiler {
        let buffer = |label, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 8 * PROFILE_QUERIES as u64,
                usage,
                mapped_at_creation: false,
            })
        };
        Profiler {
            set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kernel times"),
                ty: wgpu::QueryType::Timestamp,
                count: PROFILE_QUERIES,
            }),
            inside_passes,
            written: 0,
            timed: Vec::new(),
            start: None,
            resolve: buffer(
                "timestamps",
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            ),
            readback: buffer(
                "timestamps read",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
            totals: Vec::new(),
            span_ns: 0.0,
        }
    }

    /// Takes `n` query indices if the set has room.
    fn take(&mut self, n: u32) -> Option<u32> {
        let at = self.written;
        (at + n <= PROFILE_QUERIES).then(|| {
            self.written += n;
            at
        })
    }

    /// Timestamps at the boundaries of a pass holding one dispatch of `kernel`.
    fn pass_writes(
        &mut self,
        kernel: &'static str,
    ) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        let at = self.take(2)?;
        self.timed.push((kernel, at, at + 1));
        Some(wgpu::ComputePassTimestampWrites {
            query_set: &self.set,
            beginning_of_pass_write_index: Some(at),
            end_of_pass_write_index: Some(at + 1),
        })
    }

    /// Before a dispatch: the first of a pass writes the timestamp it starts from.
    fn mark_start(&mut self, pass: &mut wgpu::ComputePass) {
        if self.start.is_none() {
            self.start = self.take(1);
            if let Some(at) = self.start {
                pass.write_timestamp(&self.set, at);
            }
        }
    }

    /// After a dispatch of `kernel`: its end, which the next dispatch starts from.
    fn mark_end(&mut self, pass: &mut wgpu::ComputePass, kernel: &'static str) {
        let (Some(start), Some(end)) = (self.start, self.take(1)) else {
            return;
        };
        pass.write_timestamp(&self.set, end);
        self.timed.push((kernel, start, end));
        self.start = Some(end);
    }

    /// Adds a finished step's timestamps (`ticks`, one u64 per query written) to the totals.
    fn add_step(&mut self, ticks: &[u64], period: f64) {
        let first = ticks.iter().copied().min().unwrap_or(0);
        let last = ticks.iter().copied().max().unwrap_or(0);
        self.span_ns += last.saturating_sub(first) as f64 * period;
        for (kernel, start, end) in self.timed.drain(..) {
            let ns = ticks[end as usize].saturating_sub(ticks[start as usize]) as f64 * period;
            match self.totals.iter_mut().find(|(k, _)| *k == kernel) {
                Some((_, t)) => *t += ns,
                None => self.totals.push((kernel, ns)),
            }
        }
        self.written = 0;
        self.start = None;
    }
}

impl Backend for GpuBackend {
    type Weight = GpuWeight;
    type Act = GpuAct;
    type Cache = GpuKvCache;

    fn device_bytes(&self) -> u64 {
        self.gpu_bytes()
    }

    fn set_profiling(&mut self, on: bool) {
        // Device times need timestamp queries; without them nothing is reported.
        self.profiler = (on && self.ctx.report.timestamp_query)
            .then(|| Profiler::new(&self.ctx.device, self.inside_passes));
    }

    fn take_profile(&mut self) -> OpTimes {
        let Some(p) = self.profiler.as_mut() else {
            return OpTimes::default();
        };
        let ops = std::mem::take(&mut p.totals)
            .into_iter()
            .map(|(l, ns)| (l.to_string(), std::time::Duration::from_nanos(ns as u64)))
            .collect();
        let span = std::mem::take(&mut p.span_ns);
        OpTimes {
            ops,
            device_span: Some(std::time::Duration::from_nanos(span as u64)),
        }
    }

    fn name(&self) -> String {
        let r = &self.ctx.report;
        let profile = r
            .profile
            .as_ref()
            .map(|p| format!(" [profile {p}]"))
            .unwrap_or_default();
        format!("{}: {}{profile}", r.backend.to_lowercase(), r.name)
    }

    fn upload(&mut self, t: &TensorView) -> Result<GpuWeight> {
        let w = if t.rows() == 1 {
            let values = t.to_f32();
            GpuWeight::Vector(buffer_with(
                &self.ctx.device,
                &t.name,
                bytemuck::cast_slice(&values),
            ))
        } else {
            if !t.cols().is_multiple_of(32) {
                return Err(Error::Tensor {
                    name: t.name.clone(),
                    problem: format!(
                        "row length {} is not a multiple of 32, which the GPU kernels need",
                        t.cols()
                    ),
                });
            }
            let parts =
                upload_matrix(&self.ctx.device, t, self.max_binding).map_err(Error::Backend)?;
            GpuWeight::Matrix {
                dtype: t.dtype,
                cols: t.cols(),
                rows: t.rows(),
                row_bytes: t.row_bytes(),
                parts,
            }
        };
        self.weight_bytes += match &w {
            GpuWeight::Vector(b) => b.size(),
            GpuWeight::Matrix { parts, .. } => parts.iter().map(|p| p.buffer.size()).sum(),
        };
        self.ctx.errors.check()?;
        Ok(w)
    }

    fn new_cache(&mut self, layers: usize, kv_dim: usize, ctx: usize) -> Result<GpuKvCache> {
        let elem = self.kv_elem_bytes();
        let bytes = (ctx * kv_dim) as u64 * elem;
        if bytes > self.max_binding {
            let fits = self.max_binding / (kv_dim as u64 * elem);
            return Err(Error::Backend(format!(
                "a context of {ctx} tokens needs {bytes} bytes per layer cache; this adapter binds at most {} (use -c {fits} or less)",
                self.max_binding
            )));
        }
        let empty = |label| {
            self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 4,
                usage: buffers::STORAGE,
                mapped_at_creation: false,
            })
        };
        Ok(GpuKvCache {
            keys: (0..layers).map(|_| empty("keys")).collect(),
            values: (0..layers).map(|_| empty("values")).collect(),
            capacity: 0,
            kv_dim,
            ctx,
        })
    }

    fn load_act(&mut self, data: &[f32], rows: usize, cols: usize) -> GpuAct {
        let act = self.act(rows, cols);
        self.ctx
            .queue
            .write_buffer(act.buffer(), 0, bytemuck::cast_slice(data));
        act
    }

    fn embed(&mut self, table: &GpuWeight, ids: &[u32]) -> GpuAct {
        let GpuWeight::Matrix {
            dtype,
            cols,
            row_bytes,
            parts,
            ..
        } = table
        else {
            self.deferred
                .get_or_insert(Error::Backend("embedding table is not a matrix".into()));
            return self.act(ids.len(), 1);
        };
        let out = self.act(ids.len(), *cols);
        let (at, replaced) = self.ids.push(&self.ctx, &bytes_of(ids));
        if replaced {
            self.bind_groups.clear();
        }
        // The ids of this step live at `at`: copy them to the front of a small buffer of their own
        // so the kernel can bind them whole.
        let ids_buf = self.pool.take(&self.ctx.device, ids.len());
        let src = self.ids.buffer.clone();
        self.encoder()
            .copy_buffer_to_buffer(&src, at, &ids_buf.buffer, 0, (ids.len() * 4) as u64);
        for part in parts {
            let params = [
                part.row_start as u32,
                part.rows as u32,
                ids.len() as u32,
                *row_bytes as u32,
                *cols as u32,
            ];
            let groups = ((cols / 32).div_ceil(64) as u32, ids.len() as u32);
            self.dispatch(
                shaders::EMBED,
                Variant {
                    dtype: Some(*dtype),
                    tile: 1,
                    ..Variant::default()
                },
                &params,
                &[&part.buffer, &ids_buf.buffer, out.buffer()],
                groups,
            );
        }
        out
    }

    fn rms_norm(&mut self, x: &GpuAct, w: &GpuWeight, eps: f32) -> GpuAct {
        let out = self.act(x.rows, x.cols);
        let params = [x.cols as u32, eps.to_bits()];
        self.dispatch(
            shaders::RMS_NORM,
            Variant {
                subgroups: self.subgroups,
                tile: 1,
                ..Variant::default()
            },
            &params,
            &[x.buffer(), Self::vector(w), out.buffer()],
            (x.rows as u32, 1),
        );
        out
    }

    fn matmul(&mut self, x: &GpuAct, w: &GpuWeight, bias: Option<&GpuWeight>) -> GpuAct {
        let GpuWeight::Matrix {
            dtype,
            cols,
            rows,
            row_bytes,
            parts,
        } = w
        else {
            self.deferred
                .get_or_insert(Error::Backend("matmul weight is not a matrix".into()));
            return self.act(x.rows, 1);
        };
        let out = self.act(x.rows, *rows);
        let bias_buf = bias.map(Self::vector).unwrap_or(&self.dummy).clone();
        for part in parts {
            let params = [
                part.rows as u32,
                *cols as u32,
                x.rows as u32,
                *row_bytes as u32,
                *rows as u32,
                part.row_start as u32,
                bias.is_some() as u32,
                0,
            ];
            // One token: several threads per row. More: each row's chunks decoded once per tile.
            let (kernel, tile, groups) = if x.rows == 1 && self.split_rows {
                let groups = linear_groups(part.rows * shaders::MATVEC_LANES);
                (shaders::MATVEC, 1, groups)
            } else {
                let tile = if x.rows == 1 { 1 } else { PREFILL_TILE };
                let groups = (
                    part.rows.div_ceil(64) as u32,
                    x.rows.div_ceil(tile as usize) as u32,
                );
                (shaders::MATMUL, tile, groups)
            };
            self.dispatch(
                kernel,
                Variant {
                    dtype: Some(*dtype),
                    tile,
                    ..Variant::default()
                },
                &params,
                &[&part.buffer, x.buffer(), out.buffer(), &bias_buf],
                groups,
            );
        }
        out
    }

    fn rope(
        &mut self,
        x: &mut GpuAct,
        heads: usize,
        pos0: usize,
        inv_freq: &GpuWeight,
        layout: RopeLayout,
    ) {
        let head_dim = x.cols / heads;
        let layout = match layout {
            RopeLayout::Interleaved => 0,
            RopeLayout::Halves => 1,
        };
        let params = [
            heads as u32,
            head_dim as u32,
            pos0 as u32,
            layout,
            x.rows as u32,
        ];
        let groups = linear_groups(x.rows * heads * head_dim / 2);
        self.dispatch(
            shaders::ROPE,
            PLAIN,
            &params,
            &[x.buffer(), Self::vector(inv_freq)],
            groups,
        );
    }

    fn attention(
        &mut self,
        q: &GpuAct,
        k: &GpuAct,
        v: &GpuAct,
        cache: &mut GpuKvCache,
        layer: usize,
        pos0: usize,
        s: AttentionShape,
    ) -> GpuAct {
        self.grow_cache(cache, pos0 + q.rows);
        let (kc, vc) = (cache.keys[layer].clone(), cache.values[layer].clone());
        let kv = Variant {
            f16: self.f16_kv,
            tile: 1,
            ..Variant::default()
        };
        let n = k.rows * cache.kv_dim;
        for (src, dst) in [(k.buffer(), &kc), (v.buffer(), &vc)] {
            let params = [n as u32, (pos0 * cache.kv_dim) as u32];
            self.dispatch(
                shaders::KV_STORE,
                kv,
                &params,
                &[src, dst],
                linear_groups(n),
            );
        }
        let out = self.act(q.rows, s.heads * s.head_dim);
        let scale = 1.0 / (s.head_dim as f32).sqrt();
        let params = [
            s.heads as u32,
            s.kv_heads as u32,
            s.head_dim as u32,
            pos0 as u32,
            q.rows as u32,
            cache.kv_dim as u32,
            scale.to_bits(),
        ];
        // One workgroup per (row, head).
        let workgroups = (q.rows * s.heads) as u32;
        let groups = (workgroups.min(65535), workgroups.div_ceil(65535));
        if s.head_dim > 128 || !s.head_dim.is_multiple_of(4) {
            self.deferred.get_or_insert(Error::Unsupported(format!(
                "head size {} on the GPU (multiples of 4 up to 128 are supported)",
                s.head_dim
            )));
        }
        self.dispatch(
            shaders::ATTENTION,
            Variant {
                f16: self.f16_kv,
                tile: 1,
                ..Variant::default()
            },
            &params,
            &[q.buffer(), &kc, &vc, out.buffer()],
            groups,
        );
        out
    }

    fn silu_mul(&mut self, gate: &GpuAct, up: &GpuAct) -> GpuAct {
        let out = self.act(gate.rows, gate.cols);
        let n = gate.rows * gate.cols;
        self.dispatch(
            shaders::SILU_MUL,
            PLAIN,
            &[n as u32],
            &[gate.buffer(), up.buffer(), out.buffer()],
            linear_groups(n),
        );
        out
    }

    fn add(&mut self, x: &mut GpuAct, y: &GpuAct) {
        let n = x.rows * x.cols;
        self.dispatch(
            shaders::ADD,
            PLAIN,
            &[n as u32],
            &[x.buffer(), y.buffer()],
            linear_groups(n),
        );
    }

    fn rows(&mut self, x: &GpuAct, start: usize, count: usize) -> GpuAct {
        let out = self.act(count, x.cols);
        let (src, dst) = (x.buffer().clone(), out.buffer().clone());
        self.encoder().copy_buffer_to_buffer(
            &src,
            (start * x.cols * 4) as u64,
            &dst,
            0,
            (count * x.cols * 4) as u64,
        );
        out
    }

    fn read(&mut self, x: &GpuAct) -> Result<Vec<f32>> {
        #[cfg(not(target_arch = "wasm32"))]
        return pollster::block_on(self.read_async(x));
        #[cfg(target_arch = "wasm32")]
        {
            let _ = x;
            Err(Error::Backend(
                "the browser cannot block on the GPU: use GpuBackend::read_async".into(),
            ))
        }
    }
}
