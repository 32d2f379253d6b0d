//! IQ1_S: 256 weights in 50 bytes (1.56 bits each). Layout: `d: f16, qs: [u8; 32],
//! qh: [u16; 8]`. Run `r` (8 weights) of group `g` is entry `qs[r] | (bits 3(r % 4).. of
//! qh[g]) << 8` of the 2048-entry grid of values -1, 0, 1; the group's weights are
//! `d * (2s + 1) * (value ± 1/8)`, `s` = bits 12..15 of `qh[g]`, bit 15 the sign of the 1/8.
//! As codes: `8 * value ± 1` (signed bytes) with scale `d * (2s + 1) / 8` — exactly the same
//! products, since dividing by 8 is exact.

use super::iq_grids::IQ1S;
use super::lattice::{lattice_format, leading_f16, u16_at};

/// The IQ1_S block format.
pub struct Iq1S;

lattice_format!(Iq1S, 50, 32, leading_f16, group_codes);

/// Writes grid entry `entry` as codes `8 * value + delta`.
#[inline(always)]
pub(crate) fn put_shifted(out: &mut [u8], entry: usize, delta: i8) {
    for (o, &v) in out.iter_mut().zip(&IQ1S[entry]) {
        *o = (8 * v + delta) as u8;
    }
}

/// The IQ1 group scale `d * (2s + 1)`, over 8 for codes of [`put_shifted`].
#[inline(always)]
pub(crate) fn iq1_scale(d: f32, s: u32) -> f32 {
    d * (2 * s + 1) as f32 * 0.125
}

/// Group `g` of 32: four runs of 8 shifted grid values, and its scale.
#[inline(always)]
fn group_codes(b: &[u8], d: f32, g: usize, codes: &mut [u8; 32]) -> f32 {
    let qh = u16_at(b, 34 + 2 * g) as usize;
    let delta = if qh & 0x8000 != 0 { -1 } else { 1 };
    for l in 0..4 {
        let entry = usize::from(b[2 + 4 * g + l]) | (qh >> (3 * l) & 7) << 8;
        put_shifted(&mut codes[8 * l..], entry, delta);
    }
    iq1_scale(d, (qh >> 12 & 7) as u32)
}
