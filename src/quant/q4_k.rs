//! Q4_K: 256 weights in 8 groups of 32, 4-bit values. Layout: `d: f16, dmin: f16,
//! scales: [u8; 12]` (eight 6-bit scales and eight 6-bit mins), `qs: [u8; 128]`. Each 32-byte
//! chunk of `qs` holds two groups: low nibbles first, then high nibbles. Value
//! `d * scale * q - dmin * min`.

use super::{BlockFormat, f16_at};

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

impl BlockFormat for Q4K {
    const ELEMS: usize = 256;
    const BYTES: usize = 144;
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let (scales, qs) = (&b[4..16], &b[16..144]);
        for (g, group) in out.chunks_exact_mut(32).enumerate() {
            let (sc, m) = k_scale_min(g, scales);
            let (dl, ml) = (d * sc as f32, dmin * m as f32);
            let chunk = &qs[(g / 2) * 32..(g / 2) * 32 + 32];
            let shift = 4 * (g % 2);
            for (o, &q) in group.iter_mut().zip(chunk) {
                *o = dl * ((q >> shift) & 0x0f) as f32 - ml;
            }
        }
    }
}
