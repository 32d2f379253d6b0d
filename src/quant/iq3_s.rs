//! IQ3_S: 256 weights in 110 bytes (3.44 bits each). Layout: `d: f16, qs: [u8; 64],
//! qh: [u8; 8], signs: [u8; 32], scales: [u8; 4]`. Each 4 weights are entry
//! `qs[k] | (bit k % 8 of qh[k / 8]) << 8` of the 512-entry grid; `signs[r]` are the eight sign
//! bits of run `r`; group `g` (32 weights) has the 4-bit scale `s` (nibble `g % 2` of
//! `scales[g / 2]`): `d * (1 + 2s)`.

use super::iq_grids::IQ3S;
use super::lattice::{lattice_format, leading_f16, put_signed};

/// The IQ3_S block format.
pub struct Iq3S;

lattice_format!(Iq3S, 110, 32, leading_f16, group_codes);

/// Group `g` of 32: eight runs of 4 signed grid values, and its scale.
#[inline(always)]
fn group_codes(b: &[u8], d: f32, g: usize, codes: &mut [u8; 32]) -> f32 {
    let qh = usize::from(b[66 + g]);
    for k in 0..8 {
        let entry = &IQ3S[usize::from(b[2 + 8 * g + k]) | (qh >> k & 1) << 8];
        let signs = b[74 + 4 * g + k / 2] >> (4 * (k % 2));
        put_signed(&mut codes[4 * k..], entry, signs);
    }
    d * f32::from(1 + 2 * (b[106 + g / 2] >> (4 * (g % 2)) & 15))
}
