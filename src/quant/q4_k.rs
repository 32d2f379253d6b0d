//! Q4_K: 256 weights in 8 groups of 32, 4-bit values. Layout: `d: f16, dmin: f16,
//! scales: [u8; 12]` (eight 6-bit scales and eight 6-bit mins), `qs: [u8; 128]`. Each 32-byte
//! chunk of `qs` holds two groups: low nibbles first, then high nibbles. Value
//! `d * scale * q - dmin * min`.

use super::search::{make_qkx2_quants, make_qp_quants, nearest_int};
use super::{
    AffineGroups, Quantize, affine_block_format, f16_at, importance_weights, put_f16, sum_squares,
};

/// The Q4_K block format.
pub struct Q4K;

/// Scale and min of group `j` (0..8) from the 12 packed bytes shared by Q4_K and Q5_K.
#[inline]
pub fn k_scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Eight groups of 32 four-bit integers, each with its scale and `-dmin * min` as offset.
impl AffineGroups for Q4K {
    const GROUP: usize = 32;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let (scales, qs) = (&b[4..16], &b[16..144]);
        let mut q = [0u8; 32];
        for g in 0..8 {
            let (sc, m) = k_scale_min(g, scales);
            let chunk = &qs[(g / 2) * 32..(g / 2) * 32 + 32];
            let shift = 4 * (g % 2);
            for (q, &byte) in q.iter_mut().zip(chunk) {
                *q = (byte >> shift) & 0x0f;
            }
            f(g, &q, d * sc as f32, -dmin * m as f32);
        }
    }
}

affine_block_format!(Q4K, 256, 144);

/// Packs eight 6-bit scales and mins into the 12 bytes Q4_K and Q5_K use (inverse of
/// [`k_scale_min`]).
pub(super) fn pack_scale_min(ls: &[u8; 8], lm: &[u8; 8], s: &mut [u8]) {
    s[..12].fill(0);
    for j in 0..8 {
        if j < 4 {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4);
            s[j - 4] |= (ls[j] >> 4) << 6;
            s[j] |= (lm[j] >> 4) << 6;
        }
    }
}

/// The 4- or 5-bit integers (`nmax` 15 or 31) of one Q4_K/Q5_K super-block, writing `d`, `dmin`
/// and the packed scales into `out[0..16]`. Shared by both formats. Without an importance
/// vector, llama.cpp's reference search (`rmin`, `nstep`); with one, its `--imatrix` search
/// (weights from the importances, scales and mins fitted to 6 bits by [`make_qp_quants`]).
pub(super) fn k_quantize_groups(
    x: &[f32],
    importance: Option<&[f32]>,
    nmax: i32,
    rmin: f32,
    nstep: i32,
    out: &mut [u8],
) -> [u8; 256] {
    let mut l = [0u8; 256];
    let (mut scales, mut mins) = ([0.0f32; 8], [0.0f32; 8]);
    let sigma2 = 2.0 * sum_squares(x) / 256.0;
    let mut sw = [0.0f32; 8];
    for j in 0..8 {
        let g = &x[32 * j..32 * j + 32];
        let group = &mut l[32 * j..32 * j + 32];
        (scales[j], mins[j]) = match importance {
            Some(imp) => {
                let weights = importance_weights(&imp[32 * j..32 * j + 32], g, sigma2);
                sw[j] = weights.iter().sum();
                make_qkx2_quants(nmax, g, &weights, group, -0.9, 0.05, 36, false)
            }
            None => {
                let av_x = (g.iter().map(|v| v * v).sum::<f32>() / 32.0).sqrt();
                let weights: Vec<f32> = g.iter().map(|v| av_x + v.abs()).collect();
                make_qkx2_quants(nmax, g, &weights, group, rmin, 0.1, nstep, false)
            }
        };
    }
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    let (d, dmin) = if importance.is_some() {
        (
            make_qp_quants(63, &scales, &mut ls, &sw),
            make_qp_quants(63, &mins, &mut lm, &sw),
        )
    } else {
        let max_scale = scales.iter().copied().fold(0.0f32, f32::max);
        let max_min = mins.iter().copied().fold(0.0f32, f32::max);
        let inv = |m: f32| if m > 0.0 { 63.0 / m } else { 0.0 };
        let (inv_scale, inv_min) = (inv(max_scale), inv(max_min));
        ls = std::array::from_fn(|j| nearest_int(inv_scale * scales[j]).min(63) as u8);
        lm = std::array::from_fn(|j| nearest_int(inv_min * mins[j]).min(63) as u8);
        (max_scale / 63.0, max_min / 63.0)
    };
    put_f16(out, 0, d);
    put_f16(out, 2, dmin);
    pack_scale_min(&ls, &lm, &mut out[4..16]);
    // Re-round every value against the scales as stored (f16 and 6-bit).
    let (d, dmin) = (f16_at(out, 0), f16_at(out, 2));
    for j in 0..8 {
        let (sc, m) = k_scale_min(j, &out[4..16]);
        let dl = d * sc as f32;
        if dl == 0.0 {
            continue;
        }
        let ml = dmin * m as f32;
        for i in 32 * j..32 * j + 32 {
            l[i] = nearest_int((x[i] + ml) / dl).clamp(0, nmax) as u8;
        }
    }
    l
}

/// Packs Q4_K's 4-bit integers: each 32-byte chunk holds two groups, low nibbles first.
fn pack_q4k(l: &[u8; 256], out: &mut [u8]) {
    for (c, chunk) in l.chunks_exact(64).enumerate() {
        for i in 0..32 {
            out[16 + 32 * c + i] = chunk[i] | (chunk[i + 32] << 4);
        }
    }
}

impl Quantize for Q4K {
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        pack_q4k(&k_quantize_groups(x, None, 15, -1.0, 20, out), out);
    }

    fn quantize_block_weighted(x: &[f32], importance: &[f32], _: f32, out: &mut [u8]) {
        pack_q4k(
            &k_quantize_groups(x, Some(importance), 15, 0.0, 0, out),
            out,
        );
    }
}
