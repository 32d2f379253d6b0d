//! IQ4_NL: 32 weights as 4-bit indices into a fixed non-linear table of signed levels, with one
//! f16 scale. Layout: `d: f16, qs: [u8; 16]` (low nibbles elements 0..16, high nibbles 16..32, as
//! Q4_0); value `d * KVALUES[index]`.

use super::{AffineGroups, affine_block_format, f16_at, nibbles};

/// The IQ4_NL block format.
pub struct Iq4Nl;

/// The 16 levels of IQ4_NL and IQ4_XS (llama.cpp's `kvalues_iq4nl`): denser near zero.
pub const KVALUES: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// The 32 levels of 16 `qs` bytes in element order, as signed bytes stored in `u8`.
#[inline(always)]
pub(crate) fn levels(qs: &[u8]) -> [u8; 32] {
    nibbles(qs).map(|n| KVALUES[n as usize] as u8)
}

affine_block_format!(Iq4Nl, 32, 18);

/// One group of signed levels (as Q8_0's bytes).
impl AffineGroups for Iq4Nl {
    const GROUP: usize = 32;
    const SIGNED: bool = true;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        f(0, &levels(&b[2..18]), f16_at(b, 0), 0.0);
    }
}
