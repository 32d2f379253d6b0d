//! Q4_0: 32 weights as 4-bit integers with one f16 scale. Layout: `d: f16, qs: [u8; 16]`;
//! element `j` is the low nibble of `qs[j]`, element `j + 16` the high nibble; value `d * (q - 8)`.

use super::search::make_qx_quants;
use super::{
    AffineGroups, BlockFormat, Quantize, affine_dot, f16_at, importance_weights, nibbles, put_f16,
    signed_absmax,
};

/// The Q4_0 block format.
pub struct Q4_0;

impl BlockFormat for Q4_0 {
    const ELEMS: usize = 32;
    const BYTES: usize = 18;
    #[inline(always)]
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let d = f16_at(b, 0);
        for (j, &q) in b[2..18].iter().enumerate() {
            out[j] = d * ((q & 0x0f) as i32 - 8) as f32;
            out[j + 16] = d * ((q >> 4) as i32 - 8) as f32;
        }
    }

    #[inline(always)]
    fn dot_run(bytes: &[u8], x: &[f32], acc: &mut [f32; 8]) {
        for (b, xs) in bytes.chunks_exact(Self::BYTES).zip(x.chunks_exact(32)) {
            let d = f16_at(b, 0);
            affine_dot(&nibbles(&b[2..18]), xs, d, -8.0 * d, acc);
        }
    }
}

impl Quantize for Q4_0 {
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        // The value of largest magnitude maps to -8, so the full range [-8, 7] is used.
        let d = signed_absmax(x) / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(out, 0, d);
        let q = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
        for j in 0..16 {
            out[2 + j] = q(x[j]) | (q(x[j + 16]) << 4);
        }
    }

    /// llama.cpp's `--imatrix` quantizer: a symmetric scale search weighted by the importances.
    fn quantize_block_weighted(x: &[f32], importance: &[f32], row_sigma2: f32, out: &mut [u8]) {
        let weights = importance_weights(importance, x, row_sigma2);
        let mut l = [0u8; 32];
        put_f16(out, 0, make_qx_quants(8, x, &mut l, Some(&weights)));
        for j in 0..16 {
            out[2 + j] = l[j] | (l[j + 16] << 4);
        }
    }
}

impl AffineGroups for Q4_0 {
    const GROUP: usize = 32;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        let d = f16_at(b, 0);
        f(0, &nibbles(&b[2..18]), d, -8.0 * d);
    }
}
