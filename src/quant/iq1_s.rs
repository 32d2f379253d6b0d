//! IQ1_S: 256 weights in 50 bytes (1.56 bits each). Layout: `d: f16, qs: [u8; 32],
//! qh: [u16; 8]`. Run `r` (8 weights) of group `g` is entry `qs[r] | (bits 3(r % 4).. of
//! qh[g]) << 8` of the 2048-entry grid of values -1, 0, 1; the group's weights are
//! `d * (2s + 1) * (value ± 1/8)`, `s` = bits 12..15 of `qh[g]`, bit 15 the sign of the 1/8.
//! As codes: `8 * value ± 1` (signed bytes) with scale `d * (2s + 1) / 8` — exactly the same
//! products, since dividing by 8 is exact.

use super::iq_grids::IQ1S;
use super::lattice::u16_at;
use super::{AffineGroups, QK_K, affine_block_format, f16_at};

/// The IQ1_S block format.
pub struct Iq1S;

affine_block_format!(Iq1S, QK_K, 50);

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

/// Eight groups of 32 codes.
impl AffineGroups for Iq1S {
    const GROUP: usize = 32;
    const SIGNED: bool = true;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        let d = f16_at(b, 0);
        for g in 0..8 {
            let qh = u16_at(b, 34 + 2 * g) as usize;
            let delta = if qh & 0x8000 != 0 { -1 } else { 1 };
            let mut codes = [0u8; 32];
            for l in 0..4 {
                let entry = usize::from(b[2 + 4 * g + l]) | (qh >> (3 * l) & 7) << 8;
                put_shifted(&mut codes[8 * l..], entry, delta);
            }
            f(g, &codes, iq1_scale(d, (qh >> 12 & 7) as u32), 0.0);
        }
    }
}
