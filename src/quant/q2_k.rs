//! Q2_K: 256 weights in 16 groups of 16, 2-bit values. Layout:
//! `scales: [u8; 16]` (low nibble scale, high nibble min, per group), `qs: [u8; 64]`,
//! `d: f16`, `dmin: f16`. Value `d * scale * q - dmin * min`. Each 32-byte half of `qs` holds
//! 128 weights: bit pair `2k` of byte `l` belongs to weight `32k + l` of that half.

use super::search::{make_qkx2_quants, make_qp_quants, nearest_int};
use super::{
    AffineGroups, BlockFormat, Quantize, f16_at, importance_weights, put_f16, sum_squares,
};

/// The Q2_K block format.
pub struct Q2K;

impl BlockFormat for Q2K {
    const ELEMS: usize = 256;
    const BYTES: usize = 84;
    #[inline(always)]
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let (scales, qs) = (&b[0..16], &b[16..80]);
        let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
        for (i, o) in out.iter_mut().enumerate() {
            let (half, k, l) = (i / 128, (i % 128) / 32, i % 32);
            let group = i / 16;
            let q = (qs[half * 32 + l] >> (2 * k)) & 3;
            let sc = scales[group];
            *o = d * (sc & 0x0f) as f32 * q as f32 - dmin * (sc >> 4) as f32;
        }
    }
}

/// Sixteen groups of 16 two-bit codes; group `g` sits at bit pair `(g % 8) / 2` of bytes
/// `32 * (g / 8) + 16 * (g % 2)..` and has a 4-bit scale and a 4-bit min.
impl AffineGroups for Q2K {
    const GROUP: usize = 16;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        let (scales, qs) = (&b[0..16], &b[16..80]);
        let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
        let mut q = [0u8; 16];
        for (g, &sc) in scales.iter().enumerate() {
            let at = 32 * (g / 8) + 16 * (g % 2);
            let shift = 2 * ((g % 8) / 2);
            for (q, &byte) in q.iter_mut().zip(&qs[at..at + 16]) {
                *q = (byte >> shift) & 3;
            }
            f(g, &q, d * (sc & 0x0f) as f32, -dmin * (sc >> 4) as f32);
        }
    }
}

/// Packs 2-bit integers as Q2_K and Q3_K store them: bit pair `2k` of byte `l` of each 32-byte
/// half is value `32k + l` of that half's 128.
pub(super) fn pack_pairs(l: &[u8; 256], qs: &mut [u8]) {
    for (half, vals) in l.chunks_exact(128).enumerate() {
        for i in 0..32 {
            qs[32 * half + i] =
                vals[i] | (vals[i + 32] << 2) | (vals[i + 64] << 4) | (vals[i + 96] << 6);
        }
    }
}

impl Quantize for Q2K {
    /// llama.cpp's reference: each 16 values fitted by a mean-absolute-error search weighted by
    /// `|x|`, scales and minimums then scaled to 4 bits by their largest.
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        let mut l = [0u8; 256];
        let (mut scales, mut mins) = ([0.0f32; 16], [0.0f32; 16]);
        for j in 0..16 {
            let g = &x[16 * j..16 * j + 16];
            let weights: Vec<f32> = g.iter().map(|v| v.abs()).collect();
            let group = &mut l[16 * j..16 * j + 16];
            (scales[j], mins[j]) = make_qkx2_quants(3, g, &weights, group, -0.5, 0.1, 15, true);
        }
        let max_scale = scales.iter().copied().fold(0.0f32, f32::max);
        let max_min = mins.iter().copied().fold(0.0f32, f32::max);
        out[..16].fill(0);
        let (mut d, mut dmin) = (0.0, 0.0);
        if max_scale > 0.0 {
            let iscale = 15.0 / max_scale;
            for j in 0..16 {
                out[j] = nearest_int(iscale * scales[j]) as u8;
            }
            d = max_scale / 15.0;
        }
        if max_min > 0.0 {
            let iscale = 15.0 / max_min;
            for j in 0..16 {
                out[j] |= (nearest_int(iscale * mins[j]) as u8) << 4;
            }
            dmin = max_min / 15.0;
        }
        finish_q2k(x, &mut l, d, dmin, out);
    }

    /// llama.cpp's `--imatrix` quantizer: weights from the importances, a squared-error search,
    /// scales and minimums fitted to 4 bits by [`make_qp_quants`].
    fn quantize_block_weighted(x: &[f32], importance: &[f32], _: f32, out: &mut [u8]) {
        let mut l = [0u8; 256];
        let (mut scales, mut mins, mut sw) = ([0.0f32; 16], [0.0f32; 16], [0.0f32; 16]);
        let sigma2 = sum_squares(x) / 256.0;
        for j in 0..16 {
            let g = &x[16 * j..16 * j + 16];
            let weights = importance_weights(&importance[16 * j..16 * j + 16], g, sigma2);
            sw[j] = weights.iter().sum();
            let group = &mut l[16 * j..16 * j + 16];
            (scales[j], mins[j]) = make_qkx2_quants(3, g, &weights, group, -0.9, 0.05, 36, false);
        }
        let (mut ls, mut lm) = ([0u8; 16], [0u8; 16]);
        let d = make_qp_quants(15, &scales, &mut ls, &sw);
        let dmin = make_qp_quants(15, &mins, &mut lm, &sw);
        for j in 0..16 {
            out[j] = ls[j] | (lm[j] << 4);
        }
        finish_q2k(x, &mut l, d, dmin, out);
    }
}

/// Stores `d` and `dmin`, re-rounds every value against the scales as stored, packs them.
fn finish_q2k(x: &[f32], l: &mut [u8; 256], d: f32, dmin: f32, out: &mut [u8]) {
    put_f16(out, 80, d);
    put_f16(out, 82, dmin);
    let (d, dmin) = (f16_at(out, 80), f16_at(out, 82));
    for (j, &sc) in out[..16].iter().enumerate() {
        let dl = d * (sc & 0x0f) as f32;
        if dl == 0.0 {
            continue;
        }
        let ml = dmin * (sc >> 4) as f32;
        for i in 16 * j..16 * j + 16 {
            l[i] = nearest_int((x[i] + ml) / dl).clamp(0, 3) as u8;
        }
    }
    pack_pairs(l, &mut out[16..80]);
}
