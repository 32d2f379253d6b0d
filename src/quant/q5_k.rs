//! Q5_K: Q4_K plus a fifth bit. Layout: `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32],
//! qs: [u8; 128]`; bit `g` of `qh[l]` is the high bit of weight `l` of group `g`.

use super::q4_k::k_scale_min;
use super::{BlockFormat, f16_at};

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
