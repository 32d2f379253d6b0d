//! Q5_K: Q4_K plus a fifth bit. Layout: `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32],
//! qs: [u8; 128]`; bit `g` of `qh[l]` is the high bit of weight `l` of group `g`.

use super::q4_k::{k_quantize_groups, k_scale_min};
use super::{BlockFormat, Quantize, f16_at};

/// The Q5_K block format.
pub struct Q5K;

impl BlockFormat for Q5K {
    const ELEMS: usize = 256;
    const BYTES: usize = 176;
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
        for (g, group) in out.chunks_exact_mut(32).enumerate() {
            let (sc, m) = k_scale_min(g, scales);
            let (dl, ml) = (d * sc as f32, dmin * m as f32);
            let chunk = &qs[(g / 2) * 32..(g / 2) * 32 + 32];
            let shift = 4 * (g % 2);
            for (l, o) in group.iter_mut().enumerate() {
                let q = ((chunk[l] >> shift) & 0x0f) | (((qh[l] >> g) & 1) << 4);
                *o = dl * q as f32 - ml;
            }
        }
    }
}

impl Quantize for Q5K {
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        let l = k_quantize_groups(x, 31, -0.5, 15, out);
        out[16..48].fill(0);
        for (c, chunk) in l.chunks_exact(64).enumerate() {
            for i in 0..32 {
                let (lo, hi) = (chunk[i], chunk[i + 32]);
                out[16 + i] |= ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1));
                out[48 + 32 * c + i] = (lo & 0x0f) | ((hi & 0x0f) << 4);
            }
        }
    }
}
