//! Q2_K: 256 weights in 16 groups of 16, 2-bit values. Layout:
//! `scales: [u8; 16]` (low nibble scale, high nibble min, per group), `qs: [u8; 64]`,
//! `d: f16`, `dmin: f16`. Value `d * scale * q - dmin * min`. Each 32-byte half of `qs` holds
//! 128 weights: bit pair `2k` of byte `l` belongs to weight `32k + l` of that half.

use super::{AffineGroups, BlockFormat, f16_at};

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
