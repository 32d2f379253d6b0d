//! IQ2_XS: 256 weights in 74 bytes (2.31 bits each). Layout: `d: f16, qs: [u16; 32],
//! scales: [u8; 8]`; each u16 of `qs` is a 9-bit index into the 512-entry grid (8 magnitudes)
//! and 7 sign bits ([`parity_signs`]); each 16 weights have a 4-bit scale `s` (low nibble of
//! `scales[g]` for the first half of group `g`, high for the second): `d * (0.5 + s) / 4`.

use super::iq_grids::IQ2XS;
use super::lattice::{iq2_scale, parity_signs, put_signed, u16_at};
use super::{AffineGroups, QK_K, affine_block_format, f16_at};

/// The IQ2_XS block format.
pub struct Iq2Xs;

affine_block_format!(Iq2Xs, QK_K, 74);

/// Sixteen groups of 16 signed grid values.
impl AffineGroups for Iq2Xs {
    const GROUP: usize = 16;
    const SIGNED: bool = true;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        let d = f16_at(b, 0);
        for g in 0..16 {
            let mut codes = [0u8; 16];
            for l in 0..2 {
                let q = u16_at(b, 2 + 2 * (2 * g + l));
                put_signed(
                    &mut codes[8 * l..],
                    &IQ2XS[q as usize & 511],
                    parity_signs(q >> 9),
                );
            }
            let s = u32::from(b[66 + g / 2] >> (4 * (g % 2)) & 15);
            f(g, &codes, iq2_scale(d, s), 0.0);
        }
    }
}
