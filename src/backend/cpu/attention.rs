//! The CPU key/value cache and causal attention over it.

use super::pool::Pool;
use crate::backend::AttentionShape;
use crate::quant::dot_f32;

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
        pool.for_chunks(&mut out, hd, |idx, o| {
            let (i, h) = (idx / s.heads, idx % s.heads);
            let pos = pos0 + i;
            let qv = &q[idx * hd..(idx + 1) * hd];
            let off = (h / group) * hd;
            let mut scores: Vec<f32> = (0..=pos)
                .map(|p| {
                    dot_f32(qv, &keys[p * self.kv_dim + off..p * self.kv_dim + off + hd]) * scale
                })
                .collect();
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for sc in scores.iter_mut() {
                *sc = (*sc - max).exp();
                sum += *sc;
            }
            for (p, &w) in scores.iter().enumerate() {
                let vrow = &values[p * self.kv_dim + off..p * self.kv_dim + off + hd];
                o.iter_mut().zip(vrow).for_each(|(a, &b)| *a += w * b);
            }
            o.iter_mut().for_each(|a| *a /= sum);
        });
        out
    }
}
