//! Q3_K: 256 weights in 16 groups of 16, 3-bit values. Layout: `hmask: [u8; 32]` (the third bit),
//! `qs: [u8; 64]` (low two bits, packed as in Q2_K), `scales: [u8; 12]` (sixteen 6-bit signed
//! scales), `d: f16`. Value `d * (scale - 32) * (q - 4)`, where `q` has its high bit *cleared*
//! when the mask bit is 0 (hence the `- 4` only then).

use super::q2_k::pack_pairs;
use super::search::{make_q3_quants, make_qx_quants, nearest_int};
use super::{
    AffineGroups, BlockFormat, Quantize, f16_at, importance_weights, put_f16, sum_squares,
};

/// The Q3_K block format.
pub struct Q3K;

/// Unpacks the sixteen 6-bit scales: low four bits from bytes 0..8, high two from bytes 8..12.
fn scales(s: &[u8]) -> [i32; 16] {
    let mut out = [0i32; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0x0f } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = (low | (high << 4)) as i32 - 32;
    }
    out
}

impl BlockFormat for Q3K {
    const ELEMS: usize = 256;
    const BYTES: usize = 110;
    #[inline(always)]
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let (hmask, qs) = (&b[0..32], &b[32..96]);
        let sc = scales(&b[96..108]);
        let d = f16_at(b, 108);
        for (i, o) in out.iter_mut().enumerate() {
            let (half, k, l) = (i / 128, (i % 128) / 32, i % 32);
            let low = ((qs[half * 32 + l] >> (2 * k)) & 3) as i32;
            let bit = 4 * half + k;
            let q = if hmask[l] & (1 << bit) != 0 {
                low
            } else {
                low - 4
            };
            *o = d * sc[i / 16] as f32 * q as f32;
        }
    }
}

/// Sixteen groups of 16 three-bit codes `low + 4 * mask bit` (0..8), each worth
/// `d * scale * (code - 4)`.
impl AffineGroups for Q3K {
    const GROUP: usize = 16;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        let (hmask, qs) = (&b[0..32], &b[32..96]);
        let sc = scales(&b[96..108]);
        let d = f16_at(b, 108);
        let mut q = [0u8; 16];
        for (g, &s) in sc.iter().enumerate() {
            let l0 = 16 * (g % 2);
            let (at, k) = (32 * (g / 8) + l0, (g % 8) / 2);
            let bit = 4 * (g / 8) + k;
            for (i, q) in q.iter_mut().enumerate() {
                let low = (qs[at + i] >> (2 * k)) & 3;
                *q = low | (((hmask[l0 + i] >> bit) & 1) << 2);
            }
            let scale = d * s as f32;
            f(g, &q, scale, -4.0 * scale);
        }
    }
}

impl Quantize for Q3K {
    /// llama.cpp's reference: each 16 values by [`make_q3_quants`], the scales to 6 bits by
    /// their largest.
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        let mut l = [0u8; 256];
        let mut scales = [0.0f32; 16];
        let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
        for (j, s) in scales.iter_mut().enumerate() {
            *s = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
            if s.abs() > amax {
                amax = s.abs();
                max_scale = *s;
            }
        }
        out[96..108].fill(0);
        let mut d = 0.0;
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            let codes: [u8; 16] = std::array::from_fn(|j| {
                (nearest_int(iscale * scales[j]) as i8)
                    .clamp(-32, 31)
                    .wrapping_add(32) as u8
            });
            pack_scales(&codes, &mut out[96..108]);
            d = 1.0 / iscale;
        }
        finish_q3k(x, &mut l, d, out);
    }

    /// llama.cpp's `--imatrix` quantizer: each 16 values by [`make_qx_quants`] weighted by the
    /// importances, the 16 scales fitted to 6 bits the same way weighted by their groups' sums.
    fn quantize_block_weighted(x: &[f32], importance: &[f32], _: f32, out: &mut [u8]) {
        let mut l = [0u8; 256];
        let (mut scales, mut sw) = ([0.0f32; 16], [0.0f32; 16]);
        let sigma2 = 2.0 * sum_squares(x) / 256.0;
        for j in 0..16 {
            let g = &x[16 * j..16 * j + 16];
            let weights = importance_weights(&importance[16 * j..16 * j + 16], g, sigma2);
            sw[j] = weights.iter().sum();
            scales[j] = make_qx_quants(4, g, &mut l[16 * j..16 * j + 16], Some(&weights));
        }
        out[96..108].fill(0);
        let mut codes = [0u8; 16];
        let d = make_qx_quants(32, &scales, &mut codes, Some(&sw));
        pack_scales(&codes, &mut out[96..108]);
        finish_q3k(x, &mut l, d, out);
    }
}

/// Packs sixteen 6-bit scale codes (biased by 32): low nibbles in bytes 0..8, high bit pairs in
/// bytes 8..12 (inverse of [`scales`]).
fn pack_scales(codes: &[u8; 16], s: &mut [u8]) {
    for (j, &c) in codes.iter().enumerate() {
        if j < 8 {
            s[j] = c & 0x0f;
        } else {
            s[j - 8] |= (c & 0x0f) << 4;
        }
        s[8 + j % 4] |= (c >> 4) << (2 * (j / 4));
    }
}

/// Stores `d`, re-rounds every value against the scales as stored, and packs the 3-bit values:
/// the high bit of value `j` into bit `j / 32` of `hmask[j % 32]`, the low two as Q2_K's.
fn finish_q3k(x: &[f32], l: &mut [u8; 256], d: f32, out: &mut [u8]) {
    put_f16(out, 108, d);
    let d = f16_at(out, 108);
    for (j, sc) in scales(&out[96..108]).into_iter().enumerate() {
        let dl = d * sc as f32;
        if dl == 0.0 {
            continue;
        }
        for i in 16 * j..16 * j + 16 {
            l[i] = (nearest_int(x[i] / dl).clamp(-4, 3) + 4) as u8;
        }
    }
    out[..32].fill(0);
    for (j, v) in l.iter_mut().enumerate() {
        if *v > 3 {
            out[j % 32] |= 1 << (j / 32);
            *v -= 4;
        }
    }
    pack_pairs(l, &mut out[32..96]);
}
