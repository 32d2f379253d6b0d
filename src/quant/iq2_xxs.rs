//! IQ2_XXS: 256 weights in 66 bytes (2.06 bits each). Layout: `d: f16, qs: [u8; 64]`; each group
//! of 32 has 8 bytes: four indices into the 256-entry grid (8 magnitudes each), then a u32 whose
//! four 7-bit fields are the runs' signs ([`parity_signs`]) and whose top 4 bits `s` give the
//! group's scale `d * (0.5 + s) / 4`.

use super::iq_grids::IQ2XXS;
use super::lattice::{iq2_scale, parity_signs, put_signed, u32_at};
use super::{AffineGroups, QK_K, affine_block_format, f16_at};

/// The IQ2_XXS block format.
pub struct Iq2Xxs;

affine_block_format!(Iq2Xxs, QK_K, 66);

/// Eight groups of 32 signed grid values.
impl AffineGroups for Iq2Xxs {
    const GROUP: usize = 32;
    const SIGNED: bool = true;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        let d = f16_at(b, 0);
        for g in 0..8 {
            let at = 2 + 8 * g;
            let aux = u32_at(b, at + 4);
            let mut codes = [0u8; 32];
            for l in 0..4 {
                let signs = parity_signs(aux >> (7 * l));
                put_signed(&mut codes[8 * l..], &IQ2XXS[b[at + l] as usize], signs);
            }
            f(g, &codes, iq2_scale(d, aux >> 28), 0.0);
        }
    }
}
