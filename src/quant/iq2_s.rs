//! IQ2_S: 256 weights in 82 bytes (2.56 bits each). Layout: `d: f16, qs: [u8; 32],
//! signs: [u8; 32], qh: [u8; 8], scales: [u8; 8]`. Run `r` (8 weights) is entry
//! `qs[r] | (bits 2(r % 4)..2(r % 4) + 2 of qh[r / 4]) << 8` of the 1024-entry grid, with the
//! eight sign bits `signs[r]`; each 16 weights have a 4-bit scale as IQ2_XS's.

use super::iq_grids::IQ2S;
use super::lattice::{iq2_scale, lattice_format, leading_f16, put_signed};

/// The IQ2_S block format.
pub struct Iq2S;

lattice_format!(Iq2S, 82, 16, leading_f16, group_codes);

/// Group `g` of 16: two runs of 8 signed grid values, and its scale.
#[inline(always)]
fn group_codes(b: &[u8], d: f32, g: usize, codes: &mut [u8; 16]) -> f32 {
    for l in 0..2 {
        let r = 2 * g + l;
        let high = (usize::from(b[66 + r / 4]) >> (2 * (r % 4)) & 3) << 8;
        let entry = &IQ2S[usize::from(b[2 + r]) | high];
        put_signed(&mut codes[8 * l..], entry, b[34 + r]);
    }
    iq2_scale(d, u32::from(b[74 + g / 2] >> (4 * (g % 2)) & 15))
}
