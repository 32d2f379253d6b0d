//! The CPU backend: f32 arithmetic over weights read in place from the memory map, on a rayon
//! thread pool. It is also the reference every GPU kernel is checked against.

mod attention;
mod kernels;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use attention::KvCache;

use super::{AttentionShape, Backend, OpTimes};
use crate::error::{Error, Result};
use crate::format::{RopeLayout, TensorView};

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
/// biases, rope factors) which are tiny and read on every row.
pub struct CpuWeight {
    /// The encoded tensor, borrowed from the file.
    pub view: TensorView,
    dense: Option<Vec<f32>>,
}

impl CpuWeight {
    fn vector(&self) -> &[f32] {
        self.dense
            .as_deref()
            .expect("vector weights are decoded at upload")
    }
}

/// CPU backend over a thread pool.
pub struct CpuBackend {
    pool: Arc<rayon::ThreadPool>,
    profile: Option<Vec<(&'static str, Duration)>>,
}

impl CpuBackend {
    /// A backend using `threads` threads (0: one per core).
    pub fn new(threads: usize) -> Result<CpuBackend> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::Backend(format!("cannot start {threads} threads: {e}")))?;
        Ok(CpuBackend {
            pool: Arc::new(pool),
            profile: None,
        })
    }

    /// Threads in the pool.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }
}

impl CpuBackend {
    /// Runs `f`, adding its time to `op`'s total when profiling.
    fn timed<T>(&mut self, op: &'static str, f: impl FnOnce(&mut Self) -> T) -> T {
        if self.profile.is_none() {
            return f(self);
        }
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

impl Backend for CpuBackend {
    type Weight = CpuWeight;
    type Act = CpuAct;
    type Cache = KvCache;

    fn name(&self) -> String {
        "cpu".into()
    }

    fn upload(&mut self, t: &TensorView) -> Result<CpuWeight> {
        let dense = (t.rows() == 1).then(|| t.to_f32());
        Ok(CpuWeight {
            view: t.clone(),
            dense,
        })
    }

    fn new_cache(&mut self, layers: usize, kv_dim: usize, ctx: usize) -> Result<KvCache> {
        Ok(KvCache::new(layers, kv_dim, ctx))
    }

    fn load_act(&mut self, data: &[f32], rows: usize, cols: usize) -> CpuAct {
        CpuAct {
            data: data.to_vec(),
            rows,
            cols,
        }
    }

    fn embed(&mut self, table: &CpuWeight, ids: &[u32]) -> CpuAct {
        self.timed("embed", |_| {
            let t = &table.view;
            let (cols, rb) = (t.cols(), t.row_bytes());
            let mut data = vec![0.0; ids.len() * cols];
            for (dst, &id) in data.chunks_exact_mut(cols).zip(ids) {
                let at = id as usize * rb;
                t.dtype.dequantize(&t.bytes()[at..at + rb], dst);
            }
            CpuAct::new(data, ids.len())
        })
    }

    fn rms_norm(&mut self, x: &CpuAct, w: &CpuWeight, eps: f32) -> CpuAct {
        self.timed("rms_norm", |_| {
            let mut out = x.clone();
            for row in out.data.chunks_exact_mut(x.cols) {
                kernels::rms_norm(row, w.vector(), eps);
            }
            out
        })
    }

    fn matmul(&mut self, x: &CpuAct, w: &CpuWeight, bias: Option<&CpuWeight>) -> CpuAct {
        self.timed("matmul", |b| {
            let mut out = b.pool.install(|| kernels::matmul(&x.data, x.rows, &w.view));
            if let Some(bias) = bias {
                for row in out.chunks_exact_mut(w.view.rows()) {
                    row.iter_mut().zip(bias.vector()).for_each(|(o, b)| *o += b);
                }
            }
            CpuAct::new(out, x.rows)
        })
    }

    fn rope(
        &mut self,
        x: &mut CpuAct,
        heads: usize,
        pos0: usize,
        inv_freq: &CpuWeight,
        layout: RopeLayout,
    ) {
        self.timed("rope", |_| {
            let cols = x.cols;
            for (r, row) in x.data.chunks_exact_mut(cols).enumerate() {
                kernels::rope(row, heads, pos0 + r, inv_freq.vector(), layout);
            }
        })
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
        self.timed("attention", |b| {
            cache.store(layer, pos0, &k.data, &v.data);
            let out = b
                .pool
                .install(|| cache.attend(layer, pos0, &q.data, q.rows, shape));
            CpuAct::new(out, q.rows)
        })
    }

    fn silu_mul(&mut self, gate: &CpuAct, up: &CpuAct) -> CpuAct {
        self.timed("silu_mul", |_| {
            let data = gate
                .data
                .iter()
                .zip(&up.data)
                .map(|(&g, &u)| kernels::silu(g) * u)
                .collect();
            CpuAct::new(data, gate.rows)
        })
    }

    fn add(&mut self, x: &mut CpuAct, y: &CpuAct) {
        self.timed("add", |_| {
            x.data.iter_mut().zip(&y.data).for_each(|(a, b)| *a += b)
        })
    }

    fn rows(&mut self, x: &CpuAct, start: usize, count: usize) -> CpuAct {
        self.timed("rows", |_| {
            CpuAct::new(
                x.data[start * x.cols..(start + count) * x.cols].to_vec(),
                count,
            )
        })
    }

    fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(Vec::new);
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
            device_span: None,
        }
    }

    fn read(&mut self, x: &CpuAct) -> Result<Vec<f32>> {
        Ok(x.data.clone())
    }
}
