//! Q8_0: 32 weights as signed bytes with one f16 scale. Layout: `d: f16, qs: [i8; 32]`; value `d * q`.

use super::{AffineGroups, BlockFormat, Quantize, affine_dot, f16_at, put_f16};

/// The Q8_0 block format.
pub struct Q8_0;

impl BlockFormat for Q8_0 {
    const ELEMS: usize = 32;
    const BYTES: usize = 34;
    #[inline(always)]
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let d = f16_at(b, 0);
        for (o, &q) in out.iter_mut().zip(&b[2..34]) {
            *o = d * (q as i8) as f32;
        }
    }

    /// Signed bytes with the sign bit flipped are `q + 128`, so `d * q` is `d * u - 128 * d`.
    #[inline(always)]
    fn dot_run(bytes: &[u8], x: &[f32], acc: &mut [f32; 8]) {
        for (b, xs) in bytes.chunks_exact(Self::BYTES).zip(x.chunks_exact(32)) {
            let d = f16_at(b, 0);
            let mut u = [0u8; 32];
            for (u, &q) in u.iter_mut().zip(&b[2..34]) {
                *u = q ^ 0x80;
            }
            affine_dot(&u, xs, d, -128.0 * d, acc);
        }
    }
}

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
