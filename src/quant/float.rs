//! Unquantized element types. A "block" is one element.

use super::{BlockFormat, Quantize};

/// 32-bit IEEE float.
pub struct F32;
/// 16-bit IEEE half float.
pub struct F16;
/// bfloat16: the top half of an f32.
pub struct Bf16;

impl BlockFormat for F32 {
    const ELEMS: usize = 1;
    const BYTES: usize = 4;
    #[inline(always)]
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        out[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

impl BlockFormat for F16 {
    const ELEMS: usize = 1;
    const BYTES: usize = 2;
    #[inline(always)]
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        out[0] = super::f16_at(b, 0);
    }

    /// Converts 64 values at a time with `half`'s slice conversion (F16C/NEON where present):
    /// element by element, each conversion would check the CPU's features again.
    #[inline(always)]
    fn dequantize_run(bytes: &[u8], out: &mut [f32]) {
        use half::slice::HalfFloatSliceExt;
        let mut h = [half::f16::ZERO; 64];
        for (bytes, out) in bytes.chunks(128).zip(out.chunks_mut(64)) {
            let h = &mut h[..out.len()];
            for (v, b) in h.iter_mut().zip(bytes.chunks_exact(2)) {
                *v = half::f16::from_le_bytes([b[0], b[1]]);
            }
            h.convert_to_f32_slice(out);
        }
    }
}

impl BlockFormat for Bf16 {
    const ELEMS: usize = 1;
    const BYTES: usize = 2;
    #[inline(always)]
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        out[0] = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
    }
}

impl Quantize for F32 {
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        out.copy_from_slice(&x[0].to_le_bytes());
    }
}

impl Quantize for F16 {
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        out.copy_from_slice(&half::f16::from_f32(x[0]).to_le_bytes());
    }
}

impl Quantize for Bf16 {
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        // Round to nearest even, as converters do (not truncation).
        out.copy_from_slice(&half::bf16::from_f32(x[0]).to_le_bytes());
    }
}
