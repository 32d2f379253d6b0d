//! IQ2_XXS: 256 weights in 66 bytes (2.06 bits each). Layout: `d: f16, qs: [u8; 64]`; each group
//! of 32 has 8 bytes: four indices into the 256-entry grid (8 magnitudes each), then a u32 whose
//! four 7-bit fields are the runs' signs ([`parity_signs`]) and whose top 4 bits `s` give the
//! group's scale `d * (0.5 + s) / 4`.

use super::iq_grids::IQ2XXS;
use super::lattice::{iq2_scale, lattice_format, leading_f16, parity_signs, put_signed, u32_at};

/// The IQ2_XXS block format.
pub struct Iq2Xxs;

lattice_format!(Iq2Xxs, 66, 32, leading_f16, group_codes);

/// Group `g` of 32: four runs of 8 signed grid values, and its scale.
#[inline(always)]
fn group_codes(b: &[u8], d: f32, g: usize, codes: &mut [u8; 32]) -> f32 {
    let at = 2 + 8 * g;
    let aux = u32_at(b, at + 4);
    for l in 0..4 {
        let signs = parity_signs(aux >> (7 * l));
        put_signed(&mut codes[8 * l..], &IQ2XXS[b[at + l] as usize], signs);
    }
    iq2_scale(d, aux >> 28)
}
