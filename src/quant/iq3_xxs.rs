//! IQ3_XXS: 256 weights in 98 bytes (3.06 bits each). Layout: `d: f16, qs: [u8; 64],
//! scales_and_signs: [u32; 8]`. Each `qs` byte indexes the 256-entry grid of 4 magnitudes; group
//! `g`'s u32 holds four 7-bit sign fields ([`parity_signs`], one per 8 weights) and in its top 4
//! bits `s` the group scale `d * (0.5 + s) / 2`.

use super::iq_grids::IQ3XXS;
use super::lattice::{parity_signs, put_signed, u32_at};
use super::{AffineGroups, QK_K, affine_block_format, f16_at};

/// The IQ3_XXS block format.
pub struct Iq3Xxs;

affine_block_format!(Iq3Xxs, QK_K, 98);

/// Eight groups of 32 signed grid values.
impl AffineGroups for Iq3Xxs {
    const GROUP: usize = 32;
    const SIGNED: bool = true;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        let d = f16_at(b, 0);
        for g in 0..8 {
            let aux = u32_at(b, 66 + 4 * g);
            let mut codes = [0u8; 32];
            for l in 0..4 {
                let signs = parity_signs(aux >> (7 * l));
                let qs = 2 + 8 * g + 2 * l;
                put_signed(&mut codes[8 * l..], &IQ3XXS[b[qs] as usize], signs);
                put_signed(
                    &mut codes[8 * l + 4..],
                    &IQ3XXS[b[qs + 1] as usize],
                    signs >> 4,
                );
            }
            f(g, &codes, d * (0.5 + (aux >> 28) as f32) * 0.5, 0.0);
        }
    }
}
