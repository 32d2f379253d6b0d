//! IQ3_XXS: 256 weights in 98 bytes (3.06 bits each). Layout: `d: f16, qs: [u8; 64],
//! scales_and_signs: [u32; 8]`. Each `qs` byte indexes the 256-entry grid of 4 magnitudes; group
//! `g`'s u32 holds four 7-bit sign fields ([`parity_signs`], one per 8 weights) and in its top 4
//! bits `s` the group scale `d * (0.5 + s) / 2`.

use super::iq_grids::IQ3XXS;
use super::lattice::{lattice_format, leading_f16, parity_signs, put_signed, u32_at};

/// The IQ3_XXS block format.
pub struct Iq3Xxs;

lattice_format!(Iq3Xxs, 98, 32, leading_f16, group_codes);

/// Group `g` of 32: eight runs of 4 signed grid values, and its scale.
#[inline(always)]
fn group_codes(b: &[u8], d: f32, g: usize, codes: &mut [u8; 32]) -> f32 {
    let aux = u32_at(b, 66 + 4 * g);
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
    d * (0.5 + (aux >> 28) as f32) * 0.5
}
