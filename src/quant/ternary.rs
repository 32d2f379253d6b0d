//! The ternary formats TQ1_0 and TQ2_0: 256 weights in -1, 0, 1 times one f16 scale.
//!
//! - TQ2_0 (66 bytes: `qs: [u8; 64], d: f16`): 2-bit codes `q` (weight `(q - 1) * d`); byte `m`
//!   of each 32-byte half `h` holds elements `128h + 32k + m` in bits `2k..2k + 2`.
//! - TQ1_0 (54 bytes: `qs: [u8; 48], qh: [u8; 4], d: f16`): five base-3 digits per `qs` byte and
//!   four per `qh` byte, stored as a fixed-point fraction (`byte ≈ value / 3^5 * 256`): digit `n`
//!   is the top "trit" of `byte * 3^n` (wrapping), `(x * 3) >> 8`. Bytes `qs[0..32]` give
//!   elements `32n + m`, `qs[32..48]` elements `160 + 16n + m`, `qh` elements `240 + 4n + m`.

use super::{AffineGroups, QK_K, Quantize, affine_block_format, f16_at, put_f16};

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

/// `v / d` rounded to -1, 0 or 1, as the trit 0, 1 or 2.
#[inline]
fn trit_of(v: f32, id: f32) -> u8 {
    ((v * id).round() as i32 + 1).clamp(0, 2) as u8
}

/// Up to five trits (first the most significant, padded to five) as TQ1_0's fixed-point byte:
/// `⌈q · 256 / 243⌉`, so that multiplying by `3^n` brings trit `n` to the top.
fn trit_byte(trits: impl Iterator<Item = u8>, count: u32) -> u8 {
    let q = trits.fold(0u16, |q, t| q * 3 + u16::from(t)) * 3u16.pow(5 - count);
    (q * 256).div_ceil(243) as u8
}

/// The block's largest magnitude as the scale (stored at `at`), and its inverse.
fn ternary_scale(x: &[f32], out: &mut [u8], at: usize) -> f32 {
    let d = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    put_f16(out, at, d);
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

impl Quantize for Tq1_0 {
    /// llama.cpp's: every value rounded to -1, 0 or 1 times the largest magnitude.
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        let id = ternary_scale(x, out, 52);
        // (first byte, bytes, trits per byte, first element), as the layout says.
        for (start, width, digits, first) in [(0, 32, 5, 0), (32, 16, 5, 160), (48, 4, 4, 240)] {
            for m in 0..width {
                let trits = (0..digits).map(|n| trit_of(x[first + width * n + m], id));
                out[start + m] = trit_byte(trits, digits as u32);
            }
        }
    }
}

impl Quantize for Tq2_0 {
    /// llama.cpp's: every value rounded to -1, 0 or 1 times the largest magnitude.
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        let id = ternary_scale(x, out, 64);
        for h in 0..2 {
            for m in 0..32 {
                out[32 * h + m] = (0..4).fold(0, |q, k| {
                    q | trit_of(x[128 * h + 32 * k + m], id) << (2 * k)
                });
            }
        }
    }
}
