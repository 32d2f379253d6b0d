//! IQ3_S: 256 weights in 110 bytes (3.44 bits each). Layout: `d: f16, qs: [u8; 64],
//! qh: [u8; 8], signs: [u8; 32], scales: [u8; 4]`. Each 4 weights are entry
//! `qs[k] | (bit k % 8 of qh[k / 8]) << 8` of the 512-entry grid; `signs[r]` are the eight sign
//! bits of run `r`; group `g` (32 weights) has the 4-bit scale `s` (nibble `g % 2` of
//! `scales[g / 2]`): `d * (1 + 2s)`.

use super::iq_grids::IQ3S;
use super::lattice::put_signed;
use super::{AffineGroups, QK_K, affine_block_format, f16_at};

/// The IQ3_S block format.
pub struct Iq3S;

affine_block_format!(Iq3S, QK_K, 110);

/// Eight groups of 32 signed grid values.
impl AffineGroups for Iq3S {
    const GROUP: usize = 32;
    const SIGNED: bool = true;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        let d = f16_at(b, 0);
        for g in 0..8 {
            let qh = usize::from(b[66 + g]);
            let mut codes = [0u8; 32];
            for k in 0..8 {
                let entry = &IQ3S[usize::from(b[2 + 8 * g + k]) | (qh >> k & 1) << 8];
                let signs = b[74 + 4 * g + k / 2] >> (4 * (k % 2));
                put_signed(&mut codes[4 * k..], entry, signs);
            }
            let s = b[106 + g / 2] >> (4 * (g % 2)) & 15;
            f(g, &codes, d * f32::from(1 + 2 * s), 0.0);
        }
    }
}
