//! Q5_K: Q4_K plus a fifth bit. Layout: `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32],
//! qs: [u8; 128]`; bit `g` of `qh[l]` is the high bit of weight `l` of group `g`.

use super::q4_k::{k_quantize_groups, k_scale_min};
use super::{AffineGroups, Quantize, affine_block_format, f16_at};

/// The Q5_K block format.
pub struct Q5K;

/// Eight groups of 32 five-bit integers, each with its scale and `-dmin * min` as offset.
impl AffineGroups for Q5K {
    const GROUP: usize = 32;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
        let mut q = [0u8; 32];
        for g in 0..8 {
            let (sc, m) = k_scale_min(g, scales);
            let chunk = &qs[(g / 2) * 32..(g / 2) * 32 + 32];
            let shift = 4 * (g % 2);
            for ((q, &low), &high) in q.iter_mut().zip(chunk).zip(qh) {
                *q = ((low >> shift) & 0x0f) | (((high >> g) & 1) << 4);
            }
            f(g, &q, d * sc as f32, -dmin * m as f32);
        }
    }
}

affine_block_format!(Q5K, 256, 176);

impl Quantize for Q5K {
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        pack_q5k(&k_quantize_groups(x, None, 31, -0.5, 15, out), out);
    }

    fn quantize_block_weighted(x: &[f32], importance: &[f32], _: f32, out: &mut [u8]) {
        pack_q5k(
            &k_quantize_groups(x, Some(importance), 31, 0.0, 0, out),
            out,
        );
    }
}

/// Packs Q5_K's 5-bit integers: the fifth bits into `qh`, the rest as Q4_K's nibbles.
fn pack_q5k(l: &[u8; 256], out: &mut [u8]) {
    out[16..48].fill(0);
    for (c, chunk) in l.chunks_exact(64).enumerate() {
        for i in 0..32 {
            let (lo, hi) = (chunk[i], chunk[i + 32]);
            out[16 + i] |= ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1));
            out[48 + 32 * c + i] = (lo & 0x0f) | ((hi & 0x0f) << 4);
        }
    }
}
