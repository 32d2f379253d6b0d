//! The ternary formats TQ1_0 and TQ2_0: 256 weights in -1, 0, 1 times one f16 scale.
//!
//! - TQ2_0 (66 bytes: `qs: [u8; 64], d: f16`): 2-bit codes `q` (weight `(q - 1) * d`); byte `m`
//!   of each 32-byte half `h` holds elements `128h + 32k + m` in bits `2k..2k + 2`.
//! - TQ1_0 (54 bytes: `qs: [u8; 48], qh: [u8; 4], d: f16`): five base-3 digits per `qs` byte and
//!   four per `qh` byte, stored as a fixed-point fraction (`byte ≈ value / 3^5 * 256`): digit `n`
//!   is the top "trit" of `byte * 3^n` (wrapping), `(x * 3) >> 8`. Bytes `qs[0..32]` give
//!   elements `32n + m`, `qs[32..48]` elements `160 + 16n + m`, `qh` elements `240 + 4n + m`.

use super::{AffineGroups, QK_K, affine_block_format, f16_at};

/// The TQ1_0 block format.
pub struct Tq1_0;
/// The TQ2_0 block format.
pub struct Tq2_0;

affine_block_format!(Tq1_0, QK_K, 54);
affine_block_format!(Tq2_0, QK_K, 66);

/// Digit `n` of a TQ1_0 byte, as -1, 0 or 1.
#[inline(always)]
fn trit(byte: u8, n: u32) -> u8 {
    let q = byte.wrapping_mul(3u8.pow(n));
    (((u16::from(q) * 3) >> 8) as u8).wrapping_sub(1)
}

/// Calls `f` with the eight groups of 32 codes of a block, all with scale `d`.
#[inline(always)]
fn groups_of(codes: &[u8; QK_K], d: f32, mut f: impl FnMut(usize, &[u8], f32, f32)) {
    for (g, c) in codes.chunks_exact(32).enumerate() {
        f(g, c, d, 0.0);
    }
}

/// Eight groups of 32 ternary codes.
impl AffineGroups for Tq1_0 {
    const GROUP: usize = 32;
    const SIGNED: bool = true;
    #[inline(always)]
    fn groups(b: &[u8], f: impl FnMut(usize, &[u8], f32, f32)) {
        let mut codes = [0u8; QK_K];
        // (first byte, bytes per run, digits, first element)
        for (start, width, digits, first) in [(0, 32, 5, 0), (32, 16, 5, 160), (48, 4, 4, 240)] {
            for n in 0..digits {
                for m in 0..width {
                    codes[first + width * n as usize + m] = trit(b[start + m], n);
                }
            }
        }
        groups_of(&codes, f16_at(b, 52), f);
    }
}

/// Eight groups of 32 ternary codes.
impl AffineGroups for Tq2_0 {
    const GROUP: usize = 32;
    const SIGNED: bool = true;
    #[inline(always)]
    fn groups(b: &[u8], f: impl FnMut(usize, &[u8], f32, f32)) {
        let codes = std::array::from_fn(|e| {
            let (h, k, m) = (e / 128, e % 128 / 32, e % 32);
            (b[32 * h + m] >> (2 * k) & 3).wrapping_sub(1)
        });
        groups_of(&codes, f16_at(b, 64), f);
    }
}
