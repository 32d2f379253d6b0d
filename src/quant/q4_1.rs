//! Q4_1: 32 weights as 4-bit integers with an f16 scale and an f16 minimum. Layout:
//! `d: f16, m: f16, qs: [u8; 16]` (nibbles as in Q4_0); value `d * q + m`.

use super::{BlockFormat, f16_at};

/// The Q4_1 block format.
pub struct Q4_1;

impl BlockFormat for Q4_1 {
    const ELEMS: usize = 32;
    const BYTES: usize = 20;
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        for (j, &q) in b[4..20].iter().enumerate() {
            out[j] = d * (q & 0x0f) as f32 + m;
            out[j + 16] = d * (q >> 4) as f32 + m;
        }
    }
}
