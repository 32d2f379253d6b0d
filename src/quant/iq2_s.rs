//! IQ2_S: 256 weights in 82 bytes (2.56 bits each). Layout: `d: f16, qs: [u8; 32],
//! signs: [u8; 32], qh: [u8; 8], scales: [u8; 8]`. Run `r` (8 weights) is entry
//! `qs[r] | (bits 2(r % 4)..2(r % 4) + 2 of qh[r / 4]) << 8` of the 1024-entry grid, with the
//! eight sign bits `signs[r]`; each 16 weights have a 4-bit scale as IQ2_XS's.

use super::iq_grids::IQ2S;
use super::lattice::{iq2_scale, put_signed};
use super::{AffineGroups, QK_K, affine_block_format, f16_at};

/// The IQ2_S block format.
pub struct Iq2S;

affine_block_format!(Iq2S, QK_K, 82);

/// Sixteen groups of 16 signed grid values.
impl AffineGroups for Iq2S {
    const GROUP: usize = 16;
    const SIGNED: bool = true;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        let d = f16_at(b, 0);
        for g in 0..16 {
            let mut codes = [0u8; 16];
            for l in 0..2 {
                let r = 2 * g + l;
                let high = (usize::from(b[66 + r / 4]) >> (2 * (r % 4)) & 3) << 8;
                let entry = &IQ2S[usize::from(b[2 + r]) | high];
                put_signed(&mut codes[8 * l..], entry, b[34 + r]);
            }
            let s = u32::from(b[74 + g / 2] >> (4 * (g % 2)) & 15);
            f(g, &codes, iq2_scale(d, s), 0.0);
        }
    }
}
