//! Q4_0: 32 weights as 4-bit integers with one f16 scale. Layout: `d: f16, qs: [u8; 16]`;
//! element `j` is the low nibble of `qs[j]`, element `j + 16` the high nibble; value `d * (q - 8)`.

use super::{BlockFormat, f16_at};

/// The Q4_0 block format.
pub struct Q4_0;

impl BlockFormat for Q4_0 {
    const ELEMS: usize = 32;
    const BYTES: usize = 18;
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let d = f16_at(b, 0);
        for (j, &q) in b[2..18].iter().enumerate() {
            out[j] = d * ((q & 0x0f) as i32 - 8) as f32;
            out[j + 16] = d * ((q >> 4) as i32 - 8) as f32;
        }
    }
}
