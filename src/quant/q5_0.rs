//! Q5_0: 32 weights as 5-bit integers with one f16 scale. Layout: `d: f16, qh: u32, qs: [u8; 16]`;
//! the low four bits come from nibbles as in Q4_0, bit 4 of element `i` is bit `i` of `qh`;
//! value `d * (q - 16)`.

use super::search::make_qx_quants;
use super::{
    AffineGroups, BlockFormat, Quantize, affine_dot, f16_at, importance_weights, put_f16,
    signed_absmax,
};

/// The Q5_0 block format.
pub struct Q5_0;

/// Decodes the 32 five-bit integers shared by Q5_0 and Q5_1 (`qh` then `qs` at `b[at..]`).
#[inline(always)]
pub(super) fn five_bit_values(b: &[u8], at: usize) -> [u8; 32] {
    let qh = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let mut q = [0u8; 32];
    for (j, &byte) in b[at + 4..at + 20].iter().enumerate() {
        q[j] = (byte & 0x0f) | ((((qh >> j) & 1) as u8) << 4);
        q[j + 16] = (byte >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
    }
    q
}

impl BlockFormat for Q5_0 {
    const ELEMS: usize = 32;
    const BYTES: usize = 22;
    #[inline(always)]
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let d = f16_at(b, 0);
        for (o, q) in out.iter_mut().zip(five_bit_values(b, 2)) {
            *o = d * (q as i32 - 16) as f32;
        }
    }

    #[inline(always)]
    fn dot_run(bytes: &[u8], x: &[f32], acc: &mut [f32; 8]) {
        for (b, xs) in bytes.chunks_exact(Self::BYTES).zip(x.chunks_exact(32)) {
            let d = f16_at(b, 0);
            affine_dot(&five_bit_values(b, 2), xs, d, -16.0 * d, acc);
        }
    }
}

/// Packs 32 five-bit integers as Q5_0/Q5_1 store them (`qh` then `qs` at `out[at..]`).
pub(super) fn pack_five_bit(q: &[u8; 32], out: &mut [u8], at: usize) {
    let mut qh = 0u32;
    for j in 0..16 {
        out[at + 4 + j] = (q[j] & 0x0f) | ((q[j + 16] & 0x0f) << 4);
        qh |= u32::from(q[j] >> 4) << j;
        qh |= u32::from(q[j + 16] >> 4) << (j + 16);
    }
    out[at..at + 4].copy_from_slice(&qh.to_le_bytes());
}

impl Quantize for Q5_0 {
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        let d = signed_absmax(x) / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(out, 0, d);
        let q: [u8; 32] = std::array::from_fn(|i| ((x[i] * id + 16.5) as i8).min(31) as u8);
        pack_five_bit(&q, out, 2);
    }

    /// llama.cpp's `--imatrix` quantizer: a symmetric scale search weighted by the importances.
    fn quantize_block_weighted(x: &[f32], importance: &[f32], row_sigma2: f32, out: &mut [u8]) {
        let weights = importance_weights(importance, x, row_sigma2);
        let mut l = [0u8; 32];
        put_f16(out, 0, make_qx_quants(16, x, &mut l, Some(&weights)));
        pack_five_bit(&l, out, 2);
    }
}

impl AffineGroups for Q5_0 {
    const GROUP: usize = 32;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        let d = f16_at(b, 0);
        f(0, &five_bit_values(b, 2), d, -16.0 * d);
    }
}
