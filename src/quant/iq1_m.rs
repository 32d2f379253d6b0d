//! IQ1_M: 256 weights in 56 bytes (1.75 bits each). Layout: `qs: [u8; 32], qh: [u8; 16],
//! scales: [u16; 4]`. The f16 super-scale `d` is the top nibbles of the four `scales` words
//! (word `k`'s nibble is bits 4k..4k+4 of its bits); each 16 weights have a 3-bit scale `s`
//! (group `g`: bits 3(g % 4).. of `scales[g / 4]`), weight `d * (2s + 1) * (value ± 1/8)`. Run
//! `r` (8 weights) is entry `qs[r] | (bits 4(r % 2)..4(r % 2) + 3 of qh[r / 2]) << 8` of IQ1_S's
//! grid; bit 3 of that nibble is the sign of its 1/8. Codes as IQ1_S's.

use super::f16_bits_to_f32;
use super::iq1_s::{iq1_scale, put_shifted};
use super::lattice::{lattice_format, u16_at};

/// The IQ1_M block format.
pub struct Iq1M;

lattice_format!(Iq1M, 56, 16, super_scale, group_codes);

/// The super-scale: the top nibble of each scale word.
#[inline(always)]
fn super_scale(b: &[u8]) -> f32 {
    let bits = (0..4).fold(0, |acc, k| acc | (u16_at(b, 48 + 2 * k) >> 12) << (4 * k));
    f16_bits_to_f32(bits as u16)
}

/// Group `g` of 16: two runs of 8 shifted grid values, and its scale.
#[inline(always)]
fn group_codes(b: &[u8], d: f32, g: usize, codes: &mut [u8; 16]) -> f32 {
    for l in 0..2 {
        let r = 2 * g + l;
        let nibble = usize::from(b[32 + r / 2] >> (4 * (r % 2)) & 15);
        let delta = if nibble & 8 != 0 { -1 } else { 1 };
        put_shifted(
            &mut codes[8 * l..],
            usize::from(b[r]) | (nibble & 7) << 8,
            delta,
        );
    }
    iq1_scale(d, u16_at(b, 48 + 2 * (g / 4)) >> (3 * (g % 4)) & 7)
}
