//! Q8_0: 32 weights as signed bytes with one f16 scale. Layout: `d: f16, qs: [i8; 32]`; value `d * q`.

use super::{BlockFormat, f16_at};

/// The Q8_0 block format.
pub struct Q8_0;

impl BlockFormat for Q8_0 {
    const ELEMS: usize = 32;
    const BYTES: usize = 34;
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let d = f16_at(b, 0);
        for (o, &q) in out.iter_mut().zip(&b[2..34]) {
            *o = d * (q as i8) as f32;
        }
    }
}
