//! Q3_K: 256 weights in 16 groups of 16, 3-bit values. Layout: `hmask: [u8; 32]` (the third bit),
//! `qs: [u8; 64]` (low two bits, packed as in Q2_K), `scales: [u8; 12]` (sixteen 6-bit signed
//! scales), `d: f16`. Value `d * (scale - 32) * (q - 4)`, where `q` has its high bit *cleared*
//! when the mask bit is 0 (hence the `- 4` only then).

use super::{AffineGroups, BlockFormat, f16_at};

/// The Q3_K block format.
pub struct Q3K;

/// Unpacks the sixteen 6-bit scales: low four bits from bytes 0..8, high two from bytes 8..12.
fn scales(s: &[u8]) -> [i32; 16] {
    let mut out = [0i32; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0x0f } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = (low | (high << 4)) as i32 - 32;
    }
    out
}

impl BlockFormat for Q3K {
    const ELEMS: usize = 256;
    const BYTES: usize = 110;
    #[inline(always)]
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let (hmask, qs) = (&b[0..32], &b[32..96]);
        let sc = scales(&b[96..108]);
        let d = f16_at(b, 108);
        for (i, o) in out.iter_mut().enumerate() {
            let (half, k, l) = (i / 128, (i % 128) / 32, i % 32);
            let low = ((qs[half * 32 + l] >> (2 * k)) & 3) as i32;
            let bit = 4 * half + k;
            let q = if hmask[l] & (1 << bit) != 0 {
                low
            } else {
                low - 4
            };
            *o = d * sc[i / 16] as f32 * q as f32;
        }
    }
}

/// Sixteen groups of 16 three-bit codes `low + 4 * mask bit` (0..8), each worth
/// `d * scale * (code - 4)`.
impl AffineGroups for Q3K {
    const GROUP: usize = 16;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        let (hmask, qs) = (&b[0..32], &b[32..96]);
        let sc = scales(&b[96..108]);
        let d = f16_at(b, 108);
        let mut q = [0u8; 16];
        for (g, &s) in sc.iter().enumerate() {
            let l0 = 16 * (g % 2);
            let (at, k) = (32 * (g / 8) + l0, (g % 8) / 2);
            let bit = 4 * (g / 8) + k;
            for (i, q) in q.iter_mut().enumerate() {
                let low = (qs[at + i] >> (2 * k)) & 3;
                *q = low | (((hmask[l0 + i] >> bit) & 1) << 2);
            }
            let scale = d * s as f32;
            f(g, &q, scale, -4.0 * scale);
        }
    }
}
