//! The CPU key/value cache and causal attention over it.

use super::kernels::exp;
use super::pool::Pool;
use crate::backend::{AttentionShape, CacheLayer, cache_start};
use crate::quant::dot_accumulate;

/// Keys and values of every layer, `kv_dim` floats per position. Storage grows with use, so a
/// large context costs memory only when it is filled. A layer with a sliding window holds at
/// most its [`CacheLayer::capacity`]: when a pass needs more, the positions its window still
/// needs move to the front and the older ones are dropped (`start` is the first one held).
pub struct KvCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    kv_dim: usize,
    layers: Vec<CacheLayer>,
    start: Vec<usize>,
}

impl KvCache {
    /// An empty cache for layers shaped as `layers` says.
    pub fn new(kv_dim: usize, layers: &[CacheLayer]) -> KvCache {
        KvCache {
            keys: vec![Vec::new(); layers.len()],
            values: vec![Vec::new(); layers.len()],
            kv_dim,
            layers: layers.to_vec(),
            start: vec![0; layers.len()],
        }
    }

    /// The first position `layer` holds.
    pub fn start(&self, layer: usize) -> usize {
        self.start[layer]
    }

    /// Values per position, keys or values.
    pub fn kv_dim(&self) -> usize {
        self.kv_dim
    }

    /// Writes keys and values for positions `pos0..` of `layer` (the model keeps within the
    /// cache's capacity), first dropping positions its window no longer needs if it must.
    pub fn store(&mut self, layer: usize, pos0: usize, k: &[f32], v: &[f32]) {
        let d = self.kv_dim;
        let rows = k.len() / d;
        let (old, new) = (
            self.start[layer],
            cache_start(self.layers[layer], self.start[layer], pos0, rows),
        );
        if new > old {
            // Keep positions new..pos0 (those the window needs), at the front.
            let keep = (new - old) * d..(pos0 - old) * d;
            for buf in [&mut self.keys[layer], &mut self.values[layer]] {
                buf.copy_within(keep.clone(), 0);
            }
        }
        self.start[layer] = new;
        let start = (pos0 - new) * d;
        let end = start + k.len();
        assert!(
            end <= self.layers[layer].capacity * d,
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
        attend_seqs(
            pool,
            layer,
            &[SeqQuery {
                cache: self,
                pos0,
                q,
                rows,
            }],
            s,
        )
    }
}

/// One sequence's query rows for [`attend_seqs`]: row `i` at position `pos0 + i` of `cache`.
pub struct SeqQuery<'a> {
    /// The sequence's cache.
    pub cache: &'a KvCache,
    /// Position of its first row.
    pub pos0: usize,
    /// Its query rows, `rows` x heads x head size.
    pub q: &'a [f32],
    /// How many.
    pub rows: usize,
}

/// Attention of several sequences' query rows, each over its own cache, in one parallel job:
/// the outputs stacked in order. (A server's decode step has one row per sequence: one job for
/// all of them keeps both threads busy where one job per sequence would mostly synchronise.)
pub fn attend_seqs(
    pool: &Pool,
    layer: usize,
    seqs: &[SeqQuery<'_>],
    s: AttentionShape,
) -> Vec<f32> {
    let hd = s.head_dim;
    let group = s.heads / s.kv_heads;
    let rows: usize = seqs.iter().map(|q| q.rows).sum();
    // (sequence, its first row in the output) of every output row.
    let mut row_of = Vec::with_capacity(rows);
    for (i, q) in seqs.iter().enumerate() {
        row_of.extend((0..q.rows).map(|r| (i, r)));
    }
    let mut out = vec![0.0f32; rows * s.heads * hd];
    // A few (row, head) items per task, each task with one score buffer: a row per task in
    // prefill, handed out from the last row (the most positions) to the first, so the
    // threads end together; heads spread over the threads in decode.
    let items = rows * s.heads;
    let per_task = if rows >= 4 * pool.threads() {
        s.heads
    } else {
        items.div_ceil(4 * pool.threads()).max(1)
    };
    let longest = seqs.iter().map(|q| q.pos0 + q.rows).max().unwrap_or(0);
    pool.for_chunks_from_last(&mut out, per_task * hd, |task, chunk| {
        let mut scores = Vec::with_capacity(longest);
        for (k, o) in chunk.chunks_exact_mut(hd).enumerate() {
            let idx = task * per_task + k;
            let (row, h) = (idx / s.heads, idx % s.heads);
            let (seq, i) = row_of[row];
            let sq = &seqs[seq];
            let c = sq.cache;
            let at = (i * s.heads + h) * hd;
            let pos = sq.pos0 + i;
            // A sliding window starts later: the head sees its cache from there on (which the
            // cache holds from its start on).
            let from = (s.first(pos) - c.start[layer]) * c.kv_dim;
            let head = Head {
                q: &sq.q[at..at + hd],
                keys: &c.keys[layer][from..],
                values: &c.values[layer][from..],
                stride: c.kv_dim,
                offset: (h / group) * hd,
                positions: pos + 1 - s.first(pos),
                scale: s.scale,
                softcap: s.softcap,
            };
            head.attend(&mut scores, o);
        }
    });
    out
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
    /// Soft cap of the scaled scores (0: none).
    softcap: f32,
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

    /// [`Head::attend`] compiled for AVX2 and FMA; heads of 64 through intrinsics.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn attend_avx2(&self, scores: &mut Vec<f32>, out: &mut [f32]) {
        if self.q.len() != x86::HEAD {
            return self.attend_portable(scores, out);
        }
        let n = self.positions;
        let last = self.at(n - 1);
        assert!(last.end <= self.keys.len() && last.end <= self.values.len());
        scores.clear();
        scores.resize(n, 0.0);
        // SAFETY: the CPU has AVX2 and FMA (this function's features); every position's
        // `HEAD` keys and values lie inside the cache (the last one was checked above).
        unsafe {
            let (k, v) = (
                self.keys.as_ptr().add(self.offset),
                self.values.as_ptr().add(self.offset),
            );
            x86::scores(self.q, k, self.stride, self.scale, scores);
            let inv = self.softmax(scores);
            x86::weighted_sum(scores, v, self.stride, inv, out);
        }
    }

    /// The common head sizes with their width known at compile time (the output stays in
    /// registers), others through the general loop.
    #[inline(always)]
    fn attend_portable(&self, scores: &mut Vec<f32>, out: &mut [f32]) {
        match self.q.len() {
            64 => self.attend_fixed::<64>(scores, out),
            128 => self.attend_fixed::<128>(scores, out),
            _ => self.attend_any(scores, out),
        }
    }

    /// Position `p`'s keys and values.
    #[inline(always)]
    fn at(&self, p: usize) -> std::ops::Range<usize> {
        let start = p * self.stride + self.offset;
        start..start + self.q.len()
    }

    /// Turns `scores` (soft-capped first, where the model caps them) into softmax weights;
    /// returns `1 / Σ exp`.
    #[inline(always)]
    fn softmax(&self, scores: &mut [f32]) -> f32 {
        if self.softcap > 0.0 {
            scores
                .iter_mut()
                .for_each(|s| *s = crate::backend::soft_cap(*s, self.softcap));
        }
        let mut max = f32::NEG_INFINITY;
        for &s in scores.iter() {
            max = if s > max { s } else { max };
        }
        // Exponentials in their own loop (vectorised), summed with eight partial sums.
        for sc in scores.iter_mut() {
            *sc = exp(*sc - max);
        }
        let mut parts = [0.0f32; 8];
        for (i, &w) in scores.iter().enumerate() {
            parts[i % 8] += w;
        }
        1.0 / parts.iter().sum::<f32>()
    }

    /// [`Head::attend`] for heads of `HD` values: four positions' scores at a time (independent
    /// sums, no single long dependency chain), the output accumulated in a local array.
    #[inline(always)]
    #[allow(clippy::expect_used, reason = "q, keys and values rows are HD wide")]
    fn attend_fixed<const HD: usize>(&self, scores: &mut Vec<f32>, out: &mut [f32]) {
        let q: &[f32; HD] = self.q.try_into().expect("head width");
        let key = |p: usize| -> &[f32; HD] { self.keys[self.at(p)].try_into().expect("width") };
        scores.clear();
        scores.resize(self.positions, 0.0);
        let quads = self.positions / 4 * 4;
        for p in (0..quads).step_by(4) {
            let k = [key(p), key(p + 1), key(p + 2), key(p + 3)];
            let mut acc = [[0.0f32; 8]; 4];
            for c in 0..HD / 8 {
                for j in 0..4 {
                    for l in 0..8 {
                        acc[j][l] += q[8 * c + l] * k[j][8 * c + l];
                    }
                }
            }
            for j in 0..4 {
                scores[p + j] = acc[j].iter().sum::<f32>() * self.scale;
            }
        }
        for (p, sc) in scores.iter_mut().enumerate().skip(quads) {
            let mut acc = [0.0f32; 8];
            dot_accumulate(&mut acc, q, key(p));
            *sc = acc.iter().sum::<f32>() * self.scale;
        }
        let inv = self.softmax(scores);
        let mut o = [0.0f32; HD];
        for (p, &w) in scores.iter().enumerate() {
            let v: &[f32; HD] = self.values[self.at(p)].try_into().expect("width");
            for d in 0..HD {
                o[d] += w * v[d];
            }
        }
        for (dst, v) in out.iter_mut().zip(o) {
            *dst = v * inv;
        }
    }

    /// [`Head::attend`] for any head width.
    #[inline(always)]
    fn attend_any(&self, scores: &mut Vec<f32>, out: &mut [f32]) {
        // Plain loops rather than iterator adapters: a closure is a function of its own, compiled
        // without the caller's target features when it is not inlined.
        scores.clear();
        scores.resize(self.positions, 0.0);
        for (p, sc) in scores.iter_mut().enumerate() {
            let mut acc = [0.0f32; 8];
            dot_accumulate(&mut acc, self.q, &self.keys[self.at(p)]);
            let mut dot = 0.0;
            for a in acc {
                dot += a;
            }
            *sc = dot * self.scale;
        }
        let inv = self.softmax(scores);
        for (p, &w) in scores.iter().enumerate() {
            for (a, &b) in out.iter_mut().zip(&self.values[self.at(p)]) {
                *a += w * b;
            }
        }
        for a in out.iter_mut() {
            *a *= inv;
        }
    }
}

/// Heads of 64 in AVX2 intrinsics: eight positions' scores per step, reduced together (a
/// transpose by horizontal adds, not eight chains of scalar adds), and the weighted sum of the
/// values in eight fused multiply-add chains held in registers.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The head width these kernels are written for.
    pub const HEAD: usize = 64;

    /// `scores[p] = scale · q · k_p`, with position `p`'s keys at `keys + p · stride`.
    ///
    /// # Safety
    /// AVX2 and FMA; `q` holds `HEAD` values and so does every position's keys.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn scores(
        q: &[f32],
        keys: *const f32,
        stride: usize,
        scale: f32,
        scores: &mut [f32],
    ) {
        // SAFETY: reads inside `q` and the keys (the caller's contract); writes inside `scores`.
        unsafe {
            // A loop, not `array::from_fn`: intrinsics in a closure may compile as calls.
            let mut qv = [_mm256_setzero_ps(); 8];
            for (c, v) in qv.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(q.as_ptr().add(8 * c));
            }
            let n = scores.len();
            let scale = _mm256_set1_ps(scale);
            let mut p = 0;
            while p + 8 <= n {
                let mut acc = [_mm256_setzero_ps(); 8];
                for (j, acc) in acc.iter_mut().enumerate() {
                    let k = keys.add((p + j) * stride);
                    for (c, &qc) in qv.iter().enumerate() {
                        *acc = _mm256_fmadd_ps(qc, _mm256_loadu_ps(k.add(8 * c)), *acc);
                    }
                }
                // Per 128-bit half: [sum of positions 0-3's low quads | their high quads]...
                let s01 = _mm256_hadd_ps(acc[0], acc[1]);
                let s23 = _mm256_hadd_ps(acc[2], acc[3]);
                let s45 = _mm256_hadd_ps(acc[4], acc[5]);
                let s67 = _mm256_hadd_ps(acc[6], acc[7]);
                let a = _mm256_hadd_ps(s01, s23);
                let b = _mm256_hadd_ps(s45, s67);
                // ...and the two halves of each added: positions 0..8 in order.
                let lo = _mm256_permute2f128_ps(a, b, 0x20);
                let hi = _mm256_permute2f128_ps(a, b, 0x31);
                let sums = _mm256_mul_ps(_mm256_add_ps(lo, hi), scale);
                _mm256_storeu_ps(scores.as_mut_ptr().add(p), sums);
                p += 8;
            }
            for (p, sc) in scores.iter_mut().enumerate().skip(p) {
                let k = keys.add(p * stride);
                let mut acc = _mm256_setzero_ps();
                for (c, &qc) in qv.iter().enumerate() {
                    acc = _mm256_fmadd_ps(qc, _mm256_loadu_ps(k.add(8 * c)), acc);
                }
                let h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
                let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
                let h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
                *sc = _mm_cvtss_f32(h) * _mm256_cvtss_f32(scale);
            }
        }
    }

    /// `out = inv · Σ_p w[p] · v_p`, with position `p`'s values at `values + p · stride`.
    ///
    /// # Safety
    /// AVX2 and FMA; `out` and every position's values hold `HEAD` values.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn weighted_sum(
        w: &[f32],
        values: *const f32,
        stride: usize,
        inv: f32,
        out: &mut [f32],
    ) {
        assert!(out.len() == HEAD);
        // SAFETY: reads inside the values (the caller's contract); writes inside `out`.
        unsafe {
            let mut o = [_mm256_setzero_ps(); 8];
            for (p, &wp) in w.iter().enumerate() {
                let v = values.add(p * stride);
                let wv = _mm256_set1_ps(wp);
                for (c, o) in o.iter_mut().enumerate() {
                    *o = _mm256_fmadd_ps(wv, _mm256_loadu_ps(v.add(8 * c)), *o);
                }
            }
            let inv = _mm256_set1_ps(inv);
            for (c, o) in o.iter().enumerate() {
                _mm256_storeu_ps(out.as_mut_ptr().add(8 * c), _mm256_mul_ps(*o, inv));
            }
        }
    }
}
