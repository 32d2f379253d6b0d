//! Q8_0: 32 weights as signed bytes with one f16 scale. Layout: `d: f16, qs: [i8; 32]`; value `d * q`.

use super::{AffineGroups, Quantize, affine_block_format, f16_at, put_f16};

/// The Q8_0 block format.
pub struct Q8_0;

affine_block_format!(Q8_0, 32, 34);

impl Quantize for Q8_0 {
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(out, 0, d);
        for (o, &v) in out[2..34].iter_mut().zip(x) {
            *o = (v * id).round() as i8 as u8;
        }
    }
}

/// One group of signed bytes: the integer dot products use them as they are.
impl AffineGroups for Q8_0 {
    const GROUP: usize = 32;
    const SIGNED: bool = true;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        f(0, &b[2..34], f16_at(b, 0), 0.0);
    }
}
