//! The CPU backend: weights read in place from the memory map, on a spinning thread pool
//! ([`pool`]). Quantized weights meet byte activations in integer dot products: two bytes a
//! value by default ([`Precision::I16`], near-f32 results), one with [`Precision::I8`];
//! [`Precision::F32`] keeps f32 activations and is the reference every GPU kernel and the fast
//! paths are checked against.

mod attention;
mod kernels;
mod memory;
pub mod pool;
#[cfg(all(target_arch = "wasm32", target_feature = "atomics"))]
pub mod web_threads;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use attention::KvCache;
use pool::Pool;

use super::{AttentionShape, Backend, CacheLayer, OpTimes, Rope, SeqRows, Unary};
use crate::error::{Error, Result};
use crate::format::{Activation, TensorView};
use crate::quant::int_dot::strips::Strips;
use crate::quant::int_dot::{self, CpuLevel};
use crate::quant::q8_act::Q8Act;
use attention::SeqQuery;

/// Activations on the CPU: `rows` x `cols`, row-major.
#[derive(Clone, Debug)]
pub struct CpuAct {
    /// The values.
    pub data: Vec<f32>,
    /// Number of rows (tokens).
    pub rows: usize,
    /// Row width.
    pub cols: usize,
}

impl CpuAct {
    /// Wraps `data` as `rows` rows.
    pub fn new(data: Vec<f32>, rows: usize) -> CpuAct {
        let cols = data.len() / rows.max(1);
        CpuAct { data, rows, cols }
    }
}

/// A weight on the CPU: the encoded view, plus a decoded copy for single-row tensors (norms,
/// biases, rope factors) which are tiny and read on every row, and for Q4_0/Q4_1/Q8_0 matrices
/// on the integer path, their rows repacked into strips ([`Strips`]).
pub struct CpuWeight {
    /// The encoded tensor, borrowed from the file.
    pub view: TensorView,
    dense: Option<Vec<f32>>,
    strips: Option<Strips>,
}

impl CpuWeight {
    #[allow(
        clippy::expect_used,
        reason = "the loader checks vectors have one row, and upload decodes one-row tensors"
    )]
    fn vector(&self) -> &[f32] {
        self.dense
            .as_deref()
            .expect("vector weights are decoded at upload")
    }
}

/// How the CPU multiplies activations with quantized weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// Activations as two bytes per value (~15 bits, see [`crate::quant::q8_act`]) and integer
    /// dot products: close to the f32 results, at integer speed. The default.
    #[default]
    I16,
    /// Activations as one byte per value (llama.cpp's numerics): the fastest, ~0.3% noise on
    /// every activation.
    I8,
    /// f32 activations against weights decoded exactly: the reference the integer paths are
    /// measured against.
    F32,
}

/// CPU backend over a thread pool.
pub struct CpuBackend {
    pool: Arc<Pool>,
    profile: Option<Vec<(&'static str, Duration)>>,
    /// Bytes moved per op while profiling.
    traffic: Vec<(&'static str, u64)>,
    precision: Precision,
    level: CpuLevel,
    /// Quantized activations, reused by every matmul.
    q8: Q8Act,
}

/// `out` (`rows` rows) plus `bias` on every row, as activations.
fn with_bias(mut out: Vec<f32>, rows: usize, bias: Option<&CpuWeight>) -> CpuAct {
    if let Some(bias) = bias {
        let b = bias.vector();
        for row in out.chunks_exact_mut(b.len()) {
            row.iter_mut().zip(b).for_each(|(o, b)| *o += b);
        }
    }
    CpuAct::new(out, rows)
}

impl Precision {
    /// The name `--precision` takes.
    pub fn name(self) -> &'static str {
        match self {
            Precision::I16 => "i16",
            Precision::I8 => "i8",
            Precision::F32 => "f32",
        }
    }
}

impl CpuBackend {
    /// A backend using `threads` threads (0: one per core), at the default precision.
    pub fn new(threads: usize) -> Result<CpuBackend> {
        CpuBackend::with_precision(threads, Precision::default())
    }

    /// A backend using `threads` threads (0: one per core) at `precision`. The integer kernels'
    /// instruction set is the best this CPU has, or `EMBER_CPU_LEVEL`'s.
    pub fn with_precision(threads: usize, precision: Precision) -> Result<CpuBackend> {
        let level = CpuLevel::current().map_err(Error::Backend)?;
        CpuBackend::with_level(threads, precision, level)
    }

    /// [`CpuBackend::with_precision`] with the integer kernels of `level` (which this CPU must
    /// support).
    pub fn with_level(threads: usize, precision: Precision, level: CpuLevel) -> Result<CpuBackend> {
        if !level.supported() {
            return Err(Error::Backend(format!(
                "this CPU cannot run the {} kernels",
                level.name()
            )));
        }
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let pool = Pool::new(threads)
            .map_err(|e| Error::Backend(format!("cannot start {threads} threads: {e}")))?;
        Ok(CpuBackend {
            pool: Arc::new(pool),
            profile: None,
            traffic: Vec::new(),
            precision,
            level,
            q8: Q8Act::default(),
        })
    }

    /// Whether products with `w` take the integer kernels.
    fn integer(&self, w: &TensorView) -> bool {
        self.precision != Precision::F32 && int_dot::has_int_dot(w.dtype)
    }

    /// Quantizes `x` into the reusable activation buffer, at the backend's precision.
    fn quantize(&mut self, x: &CpuAct) {
        let wide = self.precision == Precision::I16;
        let pool = &self.pool;
        self.q8
            .quantize_with(&x.data, x.cols, wide, &|tasks, f| pool.run(tasks, f));
    }

    /// The precision of matrix products.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The instruction set of the integer kernels.
    pub fn level(&self) -> CpuLevel {
        self.level
    }

    /// Threads in the pool.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }
}

impl CpuBackend {
    /// Runs `f`, adding its time and the `bytes` it moves to `op`'s totals when profiling.
    /// RMSNorm of each of the `parts` equal parts of every row of `x` (1: whole rows; the heads
    /// for Qwen3's q/k norms).
    fn rms_norm_parts(&mut self, x: &CpuAct, w: &CpuWeight, eps: f32, parts: usize) -> CpuAct {
        let bytes = f32_bytes(2 * x.data.len() + x.cols / parts);
        self.timed("rms_norm", bytes, |b| {
            // Rows are independent: a few per task in prefill, one task in decode.
            let rows = x.rows.div_ceil(4 * b.pool.threads()).max(1);
            let cols = x.cols / parts;
            let data = kernels::par_collect(&b.pool, x.data.len(), rows * x.cols, |i, out| {
                let src = &x.data[i * rows * x.cols..][..out.len()];
                for (s, d) in src.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
                    kernels::rms_norm_to(s, d, w.vector(), eps);
                }
            });
            CpuAct::new(data, x.rows)
        })
    }

    /// RoPE of every row of `x` in place, row `r` at position `pos(r)`.
    fn rope_rows(
        &mut self,
        x: &mut CpuAct,
        heads: usize,
        rope: Rope<'_, CpuWeight>,
        pos: &(dyn Fn(usize) -> usize + Sync),
    ) {
        let bytes = f32_bytes(2 * x.data.len() + rope.pairs);
        self.timed("rope", bytes, |b| {
            let cols = x.cols;
            let rows = x.rows.div_ceil(4 * b.pool.threads()).max(1);
            b.pool.for_chunks(&mut x.data, rows * cols, |i, chunk| {
                for (r, row) in chunk.chunks_exact_mut(cols).enumerate() {
                    let freqs = &rope.inv_freq.vector()[..rope.pairs];
                    kernels::rope(row, heads, pos(i * rows + r), freqs, rope.layout);
                }
            });
        })
    }

    fn timed<T>(&mut self, op: &'static str, bytes: u64, f: impl FnOnce(&mut Self) -> T) -> T {
        if self.profile.is_none() {
            return f(self);
        }
        crate::backend::add_traffic(&mut self.traffic, op, bytes);
        let start = Instant::now();
        let out = f(self);
        let spent = start.elapsed();
        let totals = self.profile.get_or_insert_with(Vec::new);
        match totals.iter_mut().find(|(name, _)| *name == op) {
            Some((_, t)) => *t += spent,
            None => totals.push((op, spent)),
        }
        out
    }
}

/// Bytes of `n` f32 values.
fn f32_bytes(n: usize) -> u64 {
    4 * n as u64
}

/// Bytes a product of `x` with each weight (and bias) moves: the encoded weights, `x`, the
/// outputs.
fn matmul_bytes(x: &CpuAct, ws: &[(&CpuWeight, Option<&CpuWeight>)]) -> u64 {
    ws.iter()
        .map(|(w, bias)| {
            let out = w.view.rows();
            w.view.bytes().len() as u64
                + f32_bytes(x.data.len() + x.rows * out + bias.map_or(0, |_| out))
        })
        .sum()
}

impl Backend for CpuBackend {
    type Weight = CpuWeight;
    type Act = CpuAct;
    type Cache = KvCache;

    fn name(&self) -> String {
        "cpu".into()
    }

    fn upload(&mut self, t: &TensorView) -> Result<CpuWeight> {
        let dense = (t.rows() == 1).then(|| t.to_f32());
        // The strips hold the whole strips' bytes, so the file's pages are released as they are
        // repacked; only a few tail rows (and embedding look-ups) read the file's copy again.
        let strips = if self.precision != Precision::F32 && int_dot::has_gemm(self.level) {
            Strips::repack(t.dtype, t.bytes(), t.rows(), t.row_bytes(), &mut |range| {
                t.release_pages(range)
            })
        } else {
            None
        };
        Ok(CpuWeight {
            view: t.clone(),
            dense,
            strips,
        })
    }

    fn cache_budget(&self) -> Result<Option<crate::backend::CacheBudget>> {
        Ok(
            memory::available()?.map(|available| crate::backend::CacheBudget {
                available,
                value_bytes: std::mem::size_of::<f32>() as u64,
            }),
        )
    }

    fn new_cache(&mut self, kv_dim: usize, layers: &[CacheLayer]) -> Result<KvCache> {
        Ok(KvCache::new(kv_dim, layers))
    }

    fn cache_start(&self, cache: &KvCache, layer: usize) -> usize {
        cache.start(layer)
    }

    fn load_act(&mut self, data: &[f32], rows: usize, cols: usize) -> CpuAct {
        CpuAct {
            data: data.to_vec(),
            rows,
            cols,
        }
    }

    fn embed(&mut self, table: &CpuWeight, ids: &[u32]) -> CpuAct {
        let t = &table.view;
        let bytes = (ids.len() * (t.row_bytes() + 4 * t.cols())) as u64;
        self.timed("embed", bytes, |_| {
            let t = &table.view;
            let (cols, rb) = (t.cols(), t.row_bytes());
            let mut data = vec![0.0; ids.len() * cols];
            // Rows are copied out of the file rather than read through its map: each look-up
            // would otherwise leave a window of the file's pages resident (see `copy_bytes`).
            let mut row = vec![0; rb];
            for (dst, &id) in data.chunks_exact_mut(cols).zip(ids) {
                t.copy_bytes(id as usize * rb, &mut row);
                t.dtype.dequantize(&row, dst);
            }
            CpuAct::new(data, ids.len())
        })
    }

    fn rms_norm(&mut self, x: &CpuAct, w: &CpuWeight, eps: f32) -> CpuAct {
        self.rms_norm_parts(x, w, eps, 1)
    }

    fn rms_norm_heads(&mut self, x: &CpuAct, heads: usize, w: &CpuWeight, eps: f32) -> CpuAct {
        self.rms_norm_parts(x, w, eps, heads)
    }

    fn matmul(&mut self, x: &CpuAct, w: &CpuWeight, bias: Option<&CpuWeight>) -> CpuAct {
        let bytes = matmul_bytes(x, &[(w, bias)]);
        self.timed("matmul", bytes, |b| {
            let v = &w.view;
            let out = if b.integer(v) {
                b.quantize(x);
                kernels::matmul_q8(&b.pool, &b.q8, v, w.strips.as_ref(), b.level)
            } else {
                kernels::matmul(&b.pool, &x.data, x.rows, v)
            };
            with_bias(out, x.rows, bias)
        })
    }

    fn matmuls(&mut self, x: &CpuAct, ws: &[(&CpuWeight, Option<&CpuWeight>)]) -> Vec<CpuAct> {
        // One job for all when every weight takes the strip kernels.
        let strips = ws.iter().all(|(w, _)| {
            self.integer(&w.view)
                && (w.strips.is_some() || (x.rows > 1 && int_dot::has_gemm(self.level)))
        });
        if !strips {
            return ws
                .iter()
                .map(|&(w, bias)| self.matmul(x, w, bias))
                .collect();
        }
        let bytes = matmul_bytes(x, ws);
        self.timed("matmul", bytes, |b| {
            b.quantize(x);
            let weights: Vec<_> = ws
                .iter()
                .map(|(w, _)| kernels::StripWeight {
                    view: &w.view,
                    strips: w.strips.as_ref(),
                })
                .collect();
            let outs = kernels::gemm_many(&b.pool, &b.q8, &weights, b.level);
            outs.into_iter()
                .zip(ws)
                .map(|(out, (_, bias))| with_bias(out, x.rows, *bias))
                .collect()
        })
    }

    fn rope(&mut self, x: &mut CpuAct, heads: usize, pos0: usize, rope: Rope<'_, CpuWeight>) {
        self.rope_rows(x, heads, rope, &|r| pos0 + r);
    }

    fn attention(
        &mut self,
        q: &CpuAct,
        k: &CpuAct,
        v: &CpuAct,
        cache: &mut KvCache,
        layer: usize,
        pos0: usize,
        shape: AttentionShape,
    ) -> CpuAct {
        let cache_bytes = crate::backend::attention_cache_bytes(q.rows, pos0, cache.kv_dim(), 4);
        let bytes = cache_bytes + f32_bytes(2 * q.data.len() + k.data.len() + v.data.len());
        self.timed("attention", bytes, |b| {
            cache.store(layer, pos0, &k.data, &v.data);
            let out = cache.attend(&b.pool, layer, pos0, &q.data, q.rows, shape);
            CpuAct::new(out, q.rows)
        })
    }

    fn rope_attention_seqs(
        &mut self,
        q: &CpuAct,
        k: &CpuAct,
        v: &CpuAct,
        rope: Rope<'_, CpuWeight>,
        caches: &mut [&mut KvCache],
        seqs: &[SeqRows],
        layer: usize,
        shape: AttentionShape,
    ) -> CpuAct {
        // Each row's position in its own sequence.
        let mut pos = Vec::with_capacity(q.rows);
        for s in seqs {
            pos.extend(s.pos0..s.pos0 + s.rows);
        }
        let (mut q, mut k) = (q.clone(), k.clone());
        self.rope_rows(&mut q, shape.heads, rope, &|r| pos[r]);
        self.rope_rows(&mut k, shape.kv_heads, rope, &|r| pos[r]);
        let cache_bytes: u64 = seqs
            .iter()
            .map(|s| crate::backend::attention_cache_bytes(s.rows, s.pos0, k.cols, 4))
            .sum();
        let bytes = cache_bytes + f32_bytes(2 * q.data.len() + k.data.len() + v.data.len());
        self.timed("attention", bytes, |b| {
            let (kc, vc) = (k.cols, v.cols);
            for (s, cache) in seqs.iter().zip(caches.iter_mut()) {
                let rows = s.start..s.start + s.rows;
                let (ks, vs) = (
                    &k.data[rows.start * kc..rows.end * kc],
                    &v.data[rows.start * vc..rows.end * vc],
                );
                cache.store(layer, s.pos0, ks, vs);
            }
            let queries: Vec<SeqQuery> = seqs
                .iter()
                .zip(caches.iter())
                .map(|(s, cache)| SeqQuery {
                    cache,
                    pos0: s.pos0,
                    q: &q.data[s.start * q.cols..(s.start + s.rows) * q.cols],
                    rows: s.rows,
                })
                .collect();
            CpuAct::new(
                attention::attend_seqs(&b.pool, layer, &queries, shape),
                q.rows,
            )
        })
    }

    fn act_mul(&mut self, gate: &CpuAct, up: &CpuAct, act: Activation) -> CpuAct {
        let bytes = f32_bytes(3 * up.data.len());
        self.timed("act_mul", bytes, |b| {
            // Decode's one row is cheaper done here than handed to the pool.
            let n = up.data.len();
            let chunk = n.div_ceil(4 * b.pool.threads()).max(16 * 1024);
            let data = kernels::par_collect(&b.pool, n, chunk, |i, out| {
                let at = i * chunk..i * chunk + out.len();
                kernels::act_mul_to(out, &gate.data[at.clone()], &up.data[at], act);
            });
            CpuAct::new(data, gate.rows)
        })
    }

    fn unary(&mut self, x: &mut CpuAct, op: Unary) {
        let bytes = f32_bytes(2 * x.data.len());
        self.timed("unary", bytes, |_| {
            x.data.iter_mut().for_each(|v| *v = op.apply(*v))
        })
    }

    fn add(&mut self, x: &mut CpuAct, y: &CpuAct) {
        let bytes = f32_bytes(3 * x.data.len());
        self.timed("add", bytes, |_| {
            x.data.iter_mut().zip(&y.data).for_each(|(a, b)| *a += b)
        })
    }

    fn rows(&mut self, x: &CpuAct, start: usize, count: usize) -> CpuAct {
        let bytes = f32_bytes(2 * count * x.cols);
        self.timed("rows", bytes, |_| {
            CpuAct::new(
                x.data[start * x.cols..(start + count) * x.cols].to_vec(),
                count,
            )
        })
    }

    fn concat_rows(&mut self, parts: &[&CpuAct]) -> CpuAct {
        let rows = parts.iter().map(|p| p.rows).sum();
        let bytes = f32_bytes(2 * parts.iter().map(|p| p.data.len()).sum::<usize>());
        self.timed("rows", bytes, |_| {
            CpuAct::new(
                parts.iter().flat_map(|p| p.data.iter().copied()).collect(),
                rows,
            )
        })
    }

    fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(Vec::new);
        self.traffic.clear();
    }

    fn take_profile(&mut self) -> OpTimes {
        let totals = self
            .profile
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        OpTimes {
            ops: totals
                .into_iter()
                .map(|(n, t)| (n.to_string(), t))
                .collect(),
            bytes: std::mem::take(&mut self.traffic)
                .into_iter()
                .map(|(n, b)| (n.to_string(), b))
                .collect(),
            device_span: None,
        }
    }

    fn read(&mut self, x: &CpuAct) -> Result<Vec<f32>> {
        Ok(x.data.clone())
    }
}
