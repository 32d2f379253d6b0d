//! The forward pass's ops as dispatches: the [`Backend`] implementation of the GPU backend.

use super::buffers::{self, GpuKvCache, GpuWeight, buffer_with, upload_matrix, weight_buffer};
use super::profiler::Profiler;
use super::repack::{gpu_prefix, gpu_row_bytes, gpu_rows};
use super::shaders::{self, PREFILL_TILE, Variant};
use super::{GpuAct, GpuBackend, PLAIN, bytes_of, linear_groups};
use crate::backend::{AttentionShape, Backend, CacheLayer, Norm, OpTimes, Rope, Unary};
use crate::error::{Error, Result};
use crate::format::{Activation, RopeLayout, TensorView};
use crate::quant::GgmlType;

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
        let bytes = std::mem::take(&mut p.bytes)
            .into_iter()
            .map(|(l, b)| (l.to_string(), b))
            .collect();
        OpTimes {
            ops,
            bytes,
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
        let tuned = if self.tuned {
            format!(" [tuned: {}]", self.tuning().describe())
        } else {
            String::new()
        };
        format!("{}: {}{profile}{tuned}", r.backend.to_lowercase(), r.name)
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
                row_bytes: gpu_row_bytes(t.dtype, t.row_bytes()),
                parts,
            }
        };
        self.weight_bytes += match &w {
            GpuWeight::Vector(b) => b.size(),
            GpuWeight::Matrix { parts, .. } => parts.iter().map(|p| p.buffer.size()).sum(),
        };
        self.inject_upload_fault(&t.name);
        self.ctx.errors.check()?;
        Ok(w)
    }

    fn upload_group(&mut self, ts: &[&TensorView]) -> Result<Vec<GpuWeight>> {
        let Some(&first) = ts.first() else {
            return Ok(Vec::new());
        };
        let gpu_bytes = |t: &TensorView| gpu_row_bytes(t.dtype, t.row_bytes()) * t.rows();
        let bytes: usize =
            gpu_prefix(first.dtype).len() + ts.iter().map(|t| gpu_bytes(t)).sum::<usize>();
        let together = ts.len() > 1
            && first.rows() > 1
            && first.cols().is_multiple_of(32)
            && ts
                .iter()
                .all(|t| t.dtype == first.dtype && t.cols() == first.cols())
            && bytes as u64 <= self.max_binding;
        if !together {
            return ts.iter().map(|t| self.upload(t)).collect();
        }
        let mut all = Vec::with_capacity(bytes);
        for t in ts {
            all.extend_from_slice(&gpu_rows(t.dtype, t.bytes(), t.row_bytes()));
        }
        let buffer = weight_buffer(&self.ctx.device, &first.name, first.dtype, &all)
            .map_err(Error::Backend)?;
        self.weight_bytes += buffer.size();
        let mut row = 0;
        let weights = ts
            .iter()
            .map(|t| {
                let part = buffers::WeightPart {
                    buffer: buffer.clone(),
                    row_start: 0,
                    rows: t.rows(),
                    first: row,
                };
                row += t.rows();
                GpuWeight::Matrix {
                    dtype: t.dtype,
                    cols: t.cols(),
                    rows: t.rows(),
                    row_bytes: gpu_row_bytes(t.dtype, t.row_bytes()),
                    parts: vec![part],
                }
            })
            .collect();
        self.inject_upload_fault(&first.name);
        self.ctx.errors.check()?;
        Ok(weights)
    }

    fn new_cache(&mut self, kv_dim: usize, layers: &[CacheLayer]) -> Result<GpuKvCache> {
        let elem = self.kv_elem_bytes();
        let longest = layers.iter().map(|l| l.capacity).max().unwrap_or(0);
        let bytes = (longest * kv_dim) as u64 * elem;
        if bytes > self.max_binding {
            let fits = self.max_binding / (kv_dim as u64 * elem);
            return Err(Error::Backend(format!(
                "a context of {longest} tokens needs {bytes} bytes per layer cache; this adapter binds at most {} (use -c {fits} or less)",
                self.max_binding
            )));
        }
        let n = layers.len();
        let empty = |label| {
            self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 4,
                usage: buffers::STORAGE,
                mapped_at_creation: false,
            })
        };
        Ok(GpuKvCache {
            keys: (0..n).map(|_| empty("keys")).collect(),
            values: (0..n).map(|_| empty("values")).collect(),
            allocated: vec![0; n],
            kv_dim,
            layers: layers.to_vec(),
            start: vec![0; n],
        })
    }

    fn cache_start(&self, cache: &GpuKvCache, layer: usize) -> usize {
        cache.start[layer]
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
        if parts.iter().any(|p| p.first != 0) {
            // The embedding kernel reads a table that starts its buffer.
            self.deferred.get_or_insert(Error::Backend(
                "an embedding table cannot share a buffer (upload it alone)".into(),
            ));
            return out;
        }
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
                Variant::weights(*dtype),
                &params,
                &[&part.buffer, &ids_buf.buffer, out.buffer()],
                groups,
                (ids.len() * (*row_bytes + 4 * *cols) / parts.len()) as u64,
            );
        }
        out
    }

    fn rms_norm(&mut self, x: &GpuAct, w: &GpuWeight, eps: f32) -> GpuAct {
        self.record_rms_norm(x, w, eps, 1)
    }

    fn rms_norm_heads(&mut self, x: &GpuAct, heads: usize, w: &GpuWeight, eps: f32) -> GpuAct {
        self.record_rms_norm(x, w, eps, heads)
    }

    fn matmul(&mut self, x: &GpuAct, w: &GpuWeight, bias: Option<&GpuWeight>) -> GpuAct {
        let rows = match w {
            GpuWeight::Matrix { rows, .. } => *rows,
            GpuWeight::Vector(_) => 1,
        };
        let out = self.act(x.rows, rows);
        self.record_matmul(x, w, bias, &out, false);
        out
    }

    fn matmuls(&mut self, x: &GpuAct, ws: &[(&GpuWeight, Option<&GpuWeight>)]) -> Vec<GpuAct> {
        if let Some(outs) = self.matvec_multi(x, None, ws) {
            return outs;
        }
        ws.iter()
            .map(|&(w, bias)| self.matmul(x, w, bias))
            .collect()
    }

    fn norm_matmuls(
        &mut self,
        x: &GpuAct,
        norm: Norm<'_, GpuWeight>,
        ws: &[(&GpuWeight, Option<&GpuWeight>)],
    ) -> Vec<GpuAct> {
        if let Some(outs) = self.matvec_multi(x, Some(&norm), ws) {
            return outs;
        }
        let h = self.rms_norm(x, norm.weight, norm.eps);
        self.matmuls(&h, ws)
    }

    fn matmul_add(&mut self, x: &GpuAct, w: &GpuWeight, residual: &mut GpuAct) {
        self.record_matmul(x, w, None, residual, true);
    }

    fn rope(&mut self, x: &mut GpuAct, heads: usize, pos0: usize, rope: Rope<'_, GpuWeight>) {
        let head_dim = x.cols / heads;
        let params = [
            heads as u32,
            head_dim as u32,
            pos0 as u32,
            layout_code(rope.layout),
            x.rows as u32,
            rope.pairs as u32,
        ];
        let groups = linear_groups(x.rows * heads * rope.pairs);
        self.dispatch(
            shaders::ROPE,
            PLAIN,
            &params,
            &[x.buffer(), Self::vector(rope.inv_freq)],
            groups,
            4 * (2 * x.rows * x.cols + rope.pairs) as u64,
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
        let start = self.prepare_cache(cache, layer, pos0, q.rows);
        let (kc, vc) = (cache.keys[layer].clone(), cache.values[layer].clone());
        let kv = Variant::kv(self.f16_kv);
        let n = k.rows * cache.kv_dim;
        for (src, dst) in [(k.buffer(), &kc), (v.buffer(), &vc)] {
            let params = [n as u32, ((pos0 - start) * cache.kv_dim) as u32];
            self.dispatch(
                shaders::KV_STORE,
                kv,
                &params,
                &[src, dst],
                linear_groups(n),
                n as u64 * (4 + self.kv_elem_bytes()),
            );
        }
        self.record_attention(q, &kc, &vc, cache.kv_dim, pos0, start, s)
    }

    fn rope_attention(
        &mut self,
        q: &mut GpuAct,
        k: &mut GpuAct,
        v: &GpuAct,
        rope: Rope<'_, GpuWeight>,
        cache: &mut GpuKvCache,
        layer: usize,
        pos0: usize,
        s: AttentionShape,
    ) -> GpuAct {
        let start = self.prepare_cache(cache, layer, pos0, q.rows);
        let (kc, vc) = (cache.keys[layer].clone(), cache.values[layer].clone());
        let params = [
            s.heads as u32,
            s.kv_heads as u32,
            s.head_dim as u32,
            pos0 as u32,
            layout_code(rope.layout),
            q.rows as u32,
            rope.pairs as u32,
            start as u32,
        ];
        let half = s.head_dim / 2;
        let kv_dim = cache.kv_dim;
        let n = q.rows * (s.heads * rope.pairs + s.kv_heads * half + kv_dim / 2);
        let bytes = 4 * (2 * q.rows * s.heads * s.head_dim + 2 * q.rows * kv_dim + half) as u64
            + 2 * (q.rows * kv_dim) as u64 * self.kv_elem_bytes();
        self.dispatch(
            shaders::ROPE_STORE,
            Variant::kv(self.f16_kv),
            &params,
            &[
                q.buffer(),
                k.buffer(),
                v.buffer(),
                Self::vector(rope.inv_freq),
                &kc,
                &vc,
            ],
            linear_groups(n),
            bytes,
        );
        self.record_attention(q, &kc, &vc, kv_dim, pos0, start, s)
    }

    fn glu(&mut self, x: &GpuAct, gate: &GpuWeight, up: &GpuWeight, act: Activation) -> GpuAct {
        if let Some(out) = self.matvec_glu(x, None, gate, up, act) {
            return out;
        }
        let g = self.matmul(x, gate, None);
        let u = self.matmul(x, up, None);
        self.act_mul(&g, &u, act)
    }

    fn norm_glu(
        &mut self,
        x: &GpuAct,
        norm: Norm<'_, GpuWeight>,
        gate: &GpuWeight,
        up: &GpuWeight,
        act: Activation,
    ) -> GpuAct {
        if let Some(out) = self.matvec_glu(x, Some(&norm), gate, up, act) {
            return out;
        }
        let h = self.rms_norm(x, norm.weight, norm.eps);
        self.glu(&h, gate, up, act)
    }

    fn act_mul(&mut self, gate: &GpuAct, up: &GpuAct, act: Activation) -> GpuAct {
        let out = self.act(gate.rows, gate.cols);
        let n = gate.rows * gate.cols;
        self.dispatch(
            shaders::ACT_MUL,
            PLAIN,
            &[n as u32, activation_code(act)],
            &[gate.buffer(), up.buffer(), out.buffer()],
            linear_groups(n),
            12 * n as u64,
        );
        out
    }

    fn unary(&mut self, x: &mut GpuAct, op: Unary) {
        let n = x.rows * x.cols;
        let (code, v) = match op {
            Unary::Scale(s) => (0, s),
            Unary::SoftCap(c) => (1, c),
        };
        self.dispatch(
            shaders::UNARY,
            PLAIN,
            &[n as u32, code, v.to_bits()],
            &[x.buffer()],
            linear_groups(n),
            8 * n as u64,
        );
    }

    fn add(&mut self, x: &mut GpuAct, y: &GpuAct) {
        let n = x.rows * x.cols;
        self.dispatch(
            shaders::ADD,
            PLAIN,
            &[n as u32],
            &[x.buffer(), y.buffer()],
            linear_groups(n),
            12 * n as u64,
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

    fn concat_rows(&mut self, parts: &[&GpuAct]) -> GpuAct {
        let cols = parts.first().map_or(0, |p| p.cols);
        let out = self.act(parts.iter().map(|p| p.rows).sum(), cols);
        let dst = out.buffer().clone();
        let mut at = 0;
        for p in parts {
            let bytes = (p.rows * p.cols * 4) as u64;
            let src = p.buffer().clone();
            self.encoder()
                .copy_buffer_to_buffer(&src, 0, &dst, at, bytes);
            at += bytes;
        }
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

impl GpuBackend {
    /// Records RMSNorm of each of the `parts` equal parts of every row of `x` (1: whole rows).
    fn record_rms_norm(&mut self, x: &GpuAct, w: &GpuWeight, eps: f32, parts: usize) -> GpuAct {
        let out = self.act(x.rows, x.cols);
        let (rows, cols) = (x.rows * parts, x.cols / parts);
        let params = [cols as u32, eps.to_bits(), rows as u32];
        let x_groups = rows.clamp(1, 65535);
        self.dispatch(
            shaders::RMS_NORM,
            Variant {
                subgroups: self.subgroups,
                tile: 1,
                ..Variant::default()
            },
            &params,
            &[x.buffer(), Self::vector(w), out.buffer()],
            (x_groups as u32, rows.div_ceil(x_groups) as u32),
            4 * (2 * x.rows * x.cols + cols) as u64,
        );
        out
    }

    /// Records `out = x · wᵀ (+ bias)`, or `out += x · wᵀ` with `accumulate`.
    fn record_matmul(
        &mut self,
        x: &GpuAct,
        w: &GpuWeight,
        bias: Option<&GpuWeight>,
        out: &GpuAct,
        accumulate: bool,
    ) {
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
            return;
        };
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
                accumulate as u32,
                part.first as u32,
            ];
            // One token: several threads per row. A few: each row's chunks decoded once per 8
            // tokens. More: 32 x 32 tiles through workgroup memory.
            let (kernel, tile, groups) = if x.rows == 1 && self.split_rows {
                let groups = self.matvec_groups(part.rows);
                (shaders::MATVEC, 1, groups)
            } else if x.rows > PREFILL_TILE as usize {
                let (tr, tt) = self.tiles;
                let groups = (
                    part.rows.div_ceil(tr as usize) as u32,
                    x.rows.div_ceil(tt as usize) as u32,
                );
                (shaders::MATMUL_TILED, 1, groups)
            } else {
                let tile = if x.rows == 1 { 1 } else { PREFILL_TILE };
                let groups = (
                    part.rows.div_ceil(64) as u32,
                    x.rows.div_ceil(tile as usize) as u32,
                );
                (shaders::MATMUL, tile, groups)
            };
            let variant = if kernel == shaders::MATVEC {
                self.matvec_variant(*dtype, *cols, false)
            } else if kernel == shaders::MATMUL_TILED {
                Variant {
                    tiles: self.tiles,
                    f16: self.tile_f16,
                    ..Variant::weights(*dtype)
                }
            } else {
                Variant {
                    dtype: Some(*dtype),
                    tile,
                    ..Variant::default()
                }
            };
            self.dispatch(
                kernel,
                variant,
                &params,
                &[&part.buffer, x.buffer(), out.buffer(), &bias_buf],
                groups,
                // Weights, x, y (read too when accumulating) and the bias.
                (part.rows * row_bytes
                    + 4 * (x.rows * (cols + (1 + accumulate as usize) * part.rows) + part.rows))
                    as u64,
            );
        }
    }

    /// Records attention of `q` over positions `0..pos0 + q.rows` of a layer's cache buffers,
    /// which hold positions from `start` on.
    #[allow(clippy::too_many_arguments)]
    fn record_attention(
        &mut self,
        q: &GpuAct,
        kc: &wgpu::Buffer,
        vc: &wgpu::Buffer,
        kv_dim: usize,
        pos0: usize,
        start: usize,
        s: AttentionShape,
    ) -> GpuAct {
        let out = self.act(q.rows, s.heads * s.head_dim);
        if s.head_dim > 256 || !s.head_dim.is_multiple_of(4) {
            self.deferred.get_or_insert(Error::Unsupported(format!(
                "head size {} on the GPU (multiples of 4 up to 256 are supported)",
                s.head_dim
            )));
        }
        // Heads over 128 values (Gemma's 256) take the wide-head builds.
        let variant = Variant {
            wide_heads: s.head_dim > 128,
            ..Variant::kv(self.f16_kv)
        };
        let cache_bytes = crate::backend::attention_cache_bytes(
            q.rows,
            pos0,
            kv_dim,
            self.kv_elem_bytes() as usize,
        ) + 8 * (q.rows * s.heads * s.head_dim) as u64;
        if q.rows == 1 && self.split_attention {
            let at = (pos0, start);
            self.record_decode_attention(q, kc, vc, &out, kv_dim, at, s, cache_bytes, variant);
            return out;
        }
        let params = [
            s.heads as u32,
            s.kv_heads as u32,
            s.head_dim as u32,
            pos0 as u32,
            q.rows as u32,
            kv_dim as u32,
            s.scale.to_bits(),
            s.window as u32,
            s.softcap.to_bits(),
            start as u32,
        ];
        let (kernel, groups) = if q.rows > PREFILL_TILE as usize {
            // A workgroup per 64 rows of a head.
            let groups = (q.rows.div_ceil(64) as u32, s.heads as u32);
            (shaders::ATTENTION_PREFILL, groups)
        } else {
            // One workgroup per (row, head).
            let workgroups = (q.rows * s.heads) as u32;
            let groups = (workgroups.min(65535), workgroups.div_ceil(65535));
            (shaders::ATTENTION, groups)
        };
        self.dispatch(
            kernel,
            variant,
            &params,
            &[q.buffer(), kc, vc, out.buffer()],
            groups,
            cache_bytes,
        );
        out
    }

    /// Attention of one query row at `pos` (flash-decoding): chunks of the context in parallel,
    /// a KV head's query heads sharing each read of the cache, then a merge of the chunks when
    /// there are several.
    #[allow(clippy::too_many_arguments)]
    fn record_decode_attention(
        &mut self,
        q: &GpuAct,
        kc: &wgpu::Buffer,
        vc: &wgpu::Buffer,
        out: &GpuAct,
        kv_dim: usize,
        (pos, start): (usize, usize),
        s: AttentionShape,
        cache_bytes: u64,
        variant: Variant,
    ) {
        const MAX_G: usize = 8;
        let first = s.first(pos);
        let chunks = (pos + 1 - first).div_ceil(shaders::ATTENTION_CHUNK);
        let group = s.heads / s.kv_heads;
        let part = self.act(chunks, s.heads * s.head_dim);
        let stats = self.act(chunks, s.heads * 2);
        let params = [
            s.heads as u32,
            s.kv_heads as u32,
            s.head_dim as u32,
            pos as u32,
            kv_dim as u32,
            s.scale.to_bits(),
            chunks as u32,
            first as u32,
            s.softcap.to_bits(),
            start as u32,
        ];
        let merge_bytes = 4 * (chunks * s.heads * (s.head_dim + 2) + s.heads * s.head_dim) as u64;
        self.dispatch(
            shaders::ATTENTION_DECODE,
            variant,
            &params,
            &[
                q.buffer(),
                kc,
                vc,
                out.buffer(),
                part.buffer(),
                stats.buffer(),
            ],
            ((s.kv_heads * group.div_ceil(MAX_G)) as u32, chunks as u32),
            cache_bytes + if chunks > 1 { merge_bytes } else { 0 },
        );
        if chunks > 1 {
            let params = [s.heads as u32, s.head_dim as u32, chunks as u32];
            self.dispatch(
                shaders::ATTENTION_MERGE,
                PLAIN,
                &params,
                &[part.buffer(), stats.buffer(), out.buffer()],
                linear_groups(s.heads * s.head_dim / 4),
                merge_bytes,
            );
        }
    }

    /// For one token, three bias-free weights stored one after another in one buffer (q, k and
    /// v from one [`Backend::upload_group`]): all three products in one dispatch, of RMSNorm(x)
    /// with `norm`.
    fn matvec_multi(
        &mut self,
        x: &GpuAct,
        norm: Option<&Norm<'_, GpuWeight>>,
        ws: &[(&GpuWeight, Option<&GpuWeight>)],
    ) -> Option<Vec<GpuAct>> {
        let parts: Vec<_> = ws
            .iter()
            .map(|(w, bias)| match w {
                GpuWeight::Matrix {
                    dtype,
                    cols,
                    rows,
                    row_bytes,
                    parts,
                } if bias.is_none() && parts.len() == 1 => {
                    Some((*dtype, *cols, *rows, *row_bytes, &parts[0]))
                }
                _ => None,
            })
            .collect::<Option<_>>()?;
        let [a, b, c] = parts[..] else {
            return None;
        };
        let same = |o: &(_, usize, usize, usize, &buffers::WeightPart)| {
            o.0 == a.0 && o.1 == a.1 && o.3 == a.3 && o.4.buffer == a.4.buffer
        };
        let contiguous = b.4.first == a.4.first + a.2 && c.4.first == b.4.first + b.2;
        // Split rows, as GPUs want; software rasterizers keep whole rows per thread (matmul.wgsl).
        if x.rows != 1 || !self.split_rows || !same(&b) || !same(&c) || !contiguous {
            return None;
        }
        let (dtype, cols, row_bytes) = (a.0, a.1, a.3);
        let buffer = a.4.buffer.clone();
        let outs = [a.2, b.2, c.2].map(|rows| self.act(1, rows));
        let rows = a.2 + b.2 + c.2;
        let (variant, gain, eps) = self.norm_variant(dtype, cols, norm);
        let params = [
            a.2 as u32,
            b.2 as u32,
            c.2 as u32,
            cols as u32,
            row_bytes as u32,
            a.4.first as u32,
            eps.to_bits(),
        ];
        self.dispatch(
            shaders::MATVEC_MULTI,
            variant,
            &params,
            &[
                &buffer,
                x.buffer(),
                outs[0].buffer(),
                outs[1].buffer(),
                outs[2].buffer(),
                &gain,
            ],
            self.matvec_groups(rows),
            (rows * row_bytes + 4 * (cols * (1 + norm.is_some() as usize) + rows)) as u64,
        );
        Some(outs.into())
    }

    /// The one-token mat-vec variant (matvec_lanes.wgsl) for `dtype` rows of `cols`, with the
    /// norm folded in.
    fn matvec_variant(&self, dtype: GgmlType, cols: usize, norm: bool) -> Variant {
        Variant {
            norm,
            subgroups: self.subgroup_lanes,
            lanes: self.lanes,
            int8: self.int8 && !dtype.is_float() && cols <= shaders::INT8_MAX_K,
            group_rows: self.group_rows,
            ..Variant::weights(dtype)
        }
    }

    /// Workgroups for a one-token mat-vec of `rows` rows: 64 threads, `lanes` to a group of
    /// lanes, `group_rows` rows to a group.
    fn matvec_groups(&self, rows: usize) -> (u32, u32) {
        linear_groups(rows.div_ceil(self.group_rows as usize) * self.lanes as usize)
    }

    /// The one-token mat-vec variant for `dtype` rows of `cols`, folding in `norm` if given:
    /// with the gain vector to bind (a placeholder without a norm) and epsilon.
    fn norm_variant(
        &self,
        dtype: GgmlType,
        cols: usize,
        norm: Option<&Norm<'_, GpuWeight>>,
    ) -> (Variant, wgpu::Buffer, f32) {
        let variant = self.matvec_variant(dtype, cols, norm.is_some());
        match norm {
            Some(n) => (variant, Self::vector(n.weight).clone(), n.eps),
            None => (variant, self.dummy.clone(), 0.0),
        }
    }

    /// For one token whose gate and up weights share a buffer (one [`Backend::upload_group`]),
    /// act(gate · x) * (up · x) in one dispatch, of RMSNorm(x) with `norm`. Only with rows split
    /// over threads, as GPUs want (software rasterizers keep whole rows per thread).
    fn matvec_glu(
        &mut self,
        x: &GpuAct,
        norm: Option<&Norm<'_, GpuWeight>>,
        gate: &GpuWeight,
        up: &GpuWeight,
        act: Activation,
    ) -> Option<GpuAct> {
        let (
            GpuWeight::Matrix {
                dtype,
                cols,
                rows,
                row_bytes,
                parts: g,
            },
            GpuWeight::Matrix {
                dtype: up_dtype,
                rows: up_rows,
                parts: u,
                ..
            },
        ) = (gate, up)
        else {
            return None;
        };
        let fused = x.rows == 1
            && self.split_rows
            && dtype == up_dtype
            && rows == up_rows
            && g.len() == 1
            && u.len() == 1
            && g[0].buffer == u[0].buffer;
        if !fused {
            return None;
        }
        let out = self.act(1, *rows);
        let (variant, gain, eps) = self.norm_variant(*dtype, *cols, norm);
        let params = [
            *rows as u32,
            *cols as u32,
            *row_bytes as u32,
            g[0].first as u32,
            u[0].first as u32,
            eps.to_bits(),
            activation_code(act),
        ];
        self.dispatch(
            shaders::MATVEC_GLU,
            variant,
            &params,
            &[&g[0].buffer, x.buffer(), out.buffer(), &gain],
            self.matvec_groups(*rows),
            (2 * rows * row_bytes + 4 * (cols * (1 + norm.is_some() as usize) + rows)) as u64,
        );
        Some(out)
    }
}

/// activation.wgsl's code for `act`.
fn activation_code(act: Activation) -> u32 {
    match act {
        Activation::Silu => 0,
        Activation::GeluTanh => 1,
    }
}

/// rope.wgsl's and rope_store.wgsl's code for the pair layout.
fn layout_code(layout: RopeLayout) -> u32 {
    match layout {
        RopeLayout::Interleaved => 0,
        RopeLayout::Halves => 1,
    }
}
