//! Q5_1: 32 weights as 5-bit integers with an f16 scale and minimum. Layout:
//! `d: f16, m: f16, qh: u32, qs: [u8; 16]` (bits as in Q5_0); value `d * q + m`.

use super::q5_0::{five_bit_values, pack_five_bit};
use super::search::make_qkx2_quants;
use super::{
    AffineGroups, BlockFormat, Quantize, affine_dot, f16_at, importance_weights, min_max, put_f16,
};

/// The Q5_1 block format.
pub struct Q5_1;

impl BlockFormat for Q5_1 {
    const ELEMS: usize = 32;
    const BYTES: usize = 24;
    #[inline(always)]
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        for (o, q) in out.iter_mut().zip(five_bit_values(b, 4)) {
            *o = d * q as f32 + m;
        }
    }

    #[inline(always)]
    fn dot_run(bytes: &[u8], x: &[f32], acc: &mut [f32; 8]) {
        for (b, xs) in bytes.chunks_exact(Self::BYTES).zip(x.chunks_exact(32)) {
            affine_dot(&five_bit_values(b, 4), xs, f16_at(b, 0), f16_at(b, 2), acc);
        }
    }
}

impl Quantize for Q5_1 {
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(out, 0, d);
        put_f16(out, 2, min);
        let q: [u8; 32] = std::array::from_fn(|i| (((x[i] - min) * id + 0.5) as i8).min(31) as u8);
        pack_five_bit(&q, out, 4);
    }

    /// llama.cpp's `--imatrix` quantizer: an asymmetric search weighted by the importances.
    fn quantize_block_weighted(x: &[f32], importance: &[f32], row_sigma2: f32, out: &mut [u8]) {
        let weights = importance_weights(importance, x, row_sigma2);
        let mut l = [0u8; 32];
        let (d, min) = make_qkx2_quants(31, x, &weights, &mut l, -0.9, 0.05, 36, false);
        put_f16(out, 0, d);
        put_f16(out, 2, -min);
        pack_five_bit(&l, out, 4);
    }
}

impl AffineGroups for Q5_1 {
    const GROUP: usize = 32;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        f(0, &five_bit_values(b, 4), f16_at(b, 0), f16_at(b, 2));
    }
}
