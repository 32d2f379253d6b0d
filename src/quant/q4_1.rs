//! Q4_1: 32 weights as 4-bit integers with an f16 scale and an f16 minimum. Layout:
//! `d: f16, m: f16, qs: [u8; 16]` (nibbles as in Q4_0); value `d * q + m`.

use super::search::make_qkx2_quants;
use super::{
    AffineGroups, BlockFormat, Quantize, affine_dot, f16_at, importance_weights, min_max, nibbles,
    put_f16,
};

/// The Q4_1 block format.
pub struct Q4_1;

impl BlockFormat for Q4_1 {
    const ELEMS: usize = 32;
    const BYTES: usize = 20;
    #[inline(always)]
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        for (j, &q) in b[4..20].iter().enumerate() {
            out[j] = d * (q & 0x0f) as f32 + m;
            out[j + 16] = d * (q >> 4) as f32 + m;
        }
    }

    #[inline(always)]
    fn dot_run(bytes: &[u8], x: &[f32], acc: &mut [f32; 8]) {
        for (b, xs) in bytes.chunks_exact(Self::BYTES).zip(x.chunks_exact(32)) {
            affine_dot(&nibbles(&b[4..20]), xs, f16_at(b, 0), f16_at(b, 2), acc);
        }
    }
}

impl Quantize for Q4_1 {
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(out, 0, d);
        put_f16(out, 2, min);
        let q = |v: f32| (((v - min) * id + 0.5) as i8).min(15) as u8;
        for j in 0..16 {
            out[4 + j] = q(x[j]) | (q(x[j + 16]) << 4);
        }
    }

    /// llama.cpp's `--imatrix` quantizer: an asymmetric search weighted by the importances.
    fn quantize_block_weighted(x: &[f32], importance: &[f32], row_sigma2: f32, out: &mut [u8]) {
        let weights = importance_weights(importance, x, row_sigma2);
        let mut l = [0u8; 32];
        let (d, min) = make_qkx2_quants(15, x, &weights, &mut l, -0.9, 0.05, 36, false);
        put_f16(out, 0, d);
        put_f16(out, 2, -min);
        for j in 0..16 {
            out[4 + j] = l[j] | (l[j + 16] << 4);
        }
    }
}

impl AffineGroups for Q4_1 {
    const GROUP: usize = 32;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        f(0, &nibbles(&b[4..20]), f16_at(b, 0), f16_at(b, 2));
    }
}
