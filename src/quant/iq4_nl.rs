//! IQ4_NL: 32 weights as 4-bit indices into a fixed non-linear table of signed levels, with one
//! f16 scale. Layout: `d: f16, qs: [u8; 16]` (low nibbles elements 0..16, high nibbles 16..32, as
//! Q4_0); value `d * KVALUES[index]`.

use super::{AffineGroups, BlockFormat, affine_dot, f16_at, nibbles};

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

/// `acc += scale * levels · x` for 32 levels (signed bytes) and 32 activations: the levels
/// biased to unsigned (`l + 128`), so `scale * l` is `scale * u - 128 * scale`.
#[inline(always)]
pub(crate) fn levels_dot(levels: &[u8; 32], x: &[f32], scale: f32, acc: &mut [f32; 8]) {
    let u = levels.map(|l| l ^ 0x80);
    affine_dot(&u, x, scale, -128.0 * scale, acc);
}

impl BlockFormat for Iq4Nl {
    const ELEMS: usize = 32;
    const BYTES: usize = 18;
    #[inline(always)]
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let d = f16_at(b, 0);
        for (o, l) in out.iter_mut().zip(levels(&b[2..18])) {
            *o = d * (l as i8) as f32;
        }
    }

    #[inline(always)]
    fn dot_run(bytes: &[u8], x: &[f32], acc: &mut [f32; 8]) {
        for (b, xs) in bytes.chunks_exact(Self::BYTES).zip(x.chunks_exact(32)) {
            levels_dot(&levels(&b[2..18]), xs, f16_at(b, 0), acc);
        }
    }
}

/// One group of signed levels (as Q8_0's bytes).
impl AffineGroups for Iq4Nl {
    const GROUP: usize = 32;
    const SIGNED: bool = true;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        f(0, &levels(&b[2..18]), f16_at(b, 0), 0.0);
    }
}
