//! Q5_1: 32 weights as 5-bit integers with an f16 scale and minimum. Layout:
//! `d: f16, m: f16, qh: u32, qs: [u8; 16]` (bits as in Q5_0); value `d * q + m`.

use super::q5_0::five_bit_values;
use super::{BlockFormat, f16_at};

/// The Q5_1 block format.
pub struct Q5_1;

impl BlockFormat for Q5_1 {
    const ELEMS: usize = 32;
    const BYTES: usize = 24;
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        for (o, q) in out.iter_mut().zip(five_bit_values(b, 4)) {
            *o = d * q as f32 + m;
        }
    }
}
