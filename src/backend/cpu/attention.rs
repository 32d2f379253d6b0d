//! The CPU key/value cache and causal attention over it.

use super::kernels::exp;
use super::pool::Pool;
use crate::backend::AttentionShape;
use crate::quant::dot_accumulate;

/// Keys and values of every layer, `kv_dim` floats per position. Storage grows with use, so a
/// large context costs memory only when it is filled.
pub struct KvCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    kv_dim: usize,
    ctx: usize,
}

impl KvCache {
    /// An empty cache for `layers` layers, up to `ctx` positions.
    pub fn new(layers: usize, kv_dim: usize, ctx: usize) -> KvCache {
        KvCache {
            keys: vec![Vec::new(); layers],
            values: vec![Vec::new(); layers],
            kv_dim,
            ctx,
        }
    }

    /// Writes keys and values for positions `pos0..` of `layer` (the caller keeps within `ctx`).
    pub fn store(&mut self, layer: usize, pos0: usize, k: &[f32], v: &[f32]) {
        let start = pos0 * self.kv_dim;
        let end = start + k.len();
        assert!(
            end <= self.ctx * self.kv_dim,
            "KV cache overflow: the model checks the context first"
        );
        for (buf, src) in [(&mut self.keys[layer], k), (&mut self.values[layer], v)] {
            if buf.len() < end {
                buf.resize(end, 0.0);
            }
            buf[start..end].copy_from_slice(src);
        }
    }

    /// Attention of `rows` query rows (row `i` at position `pos0 + i`) over positions `0..=pos`.
    pub fn attend(
        &self,
        pool: &Pool,
        layer: usize,
        pos0: usize,
        q: &[f32],
        rows: usize,
        s: AttentionShape,
    ) -> Vec<f32> {
        let hd = s.head_dim;
        let group = s.heads / s.kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let (keys, values) = (&self.keys[layer], &self.values[layer]);
        let mut out = vec![0.0f32; rows * s.heads * hd];
        // A few (row, head) items per task, each task with one score buffer.
        let items = rows * s.heads;
        let per_task = items.div_ceil(4 * pool.threads()).max(1);
        pool.for_chunks(&mut out, per_task * hd, |task, chunk| {
            let mut scores = Vec::with_capacity(pos0 + rows);
            for (k, o) in chunk.chunks_exact_mut(hd).enumerate() {
                let idx = task * per_task + k;
                let (i, h) = (idx / s.heads, idx % s.heads);
                let head = Head {
                    q: &q[idx * hd..(idx + 1) * hd],
                    keys,
                    values,
                    stride: self.kv_dim,
                    offset: (h / group) * hd,
                    positions: pos0 + i + 1,
                    scale,
                };
                head.attend(&mut scores, o);
            }
        });
        out
    }
}

/// One query head against its key/value head over `positions` cached positions.
struct Head<'a> {
    q: &'a [f32],
    keys: &'a [f32],
    values: &'a [f32],
    /// Floats per cached position.
    stride: usize,
    /// Where this head's keys and values start within a position.
    offset: usize,
    positions: usize,
    scale: f32,
}

impl Head<'_> {
    /// Softmax-weighted sum of the values into `out` (zeroed), using `scores` as scratch.
    fn attend(&self, scores: &mut Vec<f32>, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if crate::quant::int_dot::CpuLevel::Avx2.supported() {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { self.attend_avx2(scores, out) };
        }
        self.attend_portable(scores, out)
    }

    /// [`Head::attend`] compiled for AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn attend_avx2(&self, scores: &mut Vec<f32>, out: &mut [f32]) {
        self.attend_portable(scores, out)
    }

    #[inline(always)]
    fn attend_portable(&self, scores: &mut Vec<f32>, out: &mut [f32]) {
        let hd = self.q.len();
        let at = |p: usize| p * self.stride + self.offset..p * self.stride + self.offset + hd;
        // Plain loops rather than iterator adapters: a closure is a function of its own, compiled
        // without the caller's target features when it is not inlined.
        scores.clear();
        scores.resize(self.positions, 0.0);
        for (p, sc) in scores.iter_mut().enumerate() {
            let mut acc = [0.0f32; 8];
            dot_accumulate(&mut acc, self.q, &self.keys[at(p)]);
            let mut dot = 0.0;
            for a in acc {
                dot += a;
            }
            *sc = dot * self.scale;
        }
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        // Exponentials in their own loop (vectorised), summed with eight partial sums.
        scores.iter_mut().for_each(|sc| *sc = exp(*sc - max));
        let mut parts = [0.0f32; 8];
        for (i, &w) in scores.iter().enumerate() {
            parts[i % 8] += w;
        }
        let sum: f32 = parts.iter().sum();
        for (p, &w) in scores.iter().enumerate() {
            out.iter_mut()
                .zip(&self.values[at(p)])
                .for_each(|(a, &b)| *a += w * b);
        }
        let inv = 1.0 / sum;
        out.iter_mut().for_each(|a| *a *= inv);
    }
}
