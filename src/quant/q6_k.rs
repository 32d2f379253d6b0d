//! Q6_K: 256 weights in 16 groups of 16, 6-bit values. Layout: `ql: [u8; 128]` (low nibbles),
//! `qh: [u8; 64]` (high bit pairs), `scales: [i8; 16]`, `d: f16`. Value `d * scale * (q - 32)`.
//! Per 128-weight half: `ql` 64 bytes, `qh` 32 bytes; weight `32k + l` takes nibble `k / 2` of
//! `ql[l + 32 * (k % 2)]` and bit pair `k` of `qh[l]`.

use super::{BlockFormat, f16_at};

/// The Q6_K block format.
pub struct Q6K;

impl BlockFormat for Q6K {
    const ELEMS: usize = 256;
    const BYTES: usize = 210;
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
        let d = f16_at(b, 208);
        for (i, o) in out.iter_mut().enumerate() {
            let (half, k, l) = (i / 128, (i % 128) / 32, i % 32);
            let low = (ql[half * 64 + l + 32 * (k % 2)] >> (4 * (k / 2))) & 0x0f;
            let high = (qh[half * 32 + l] >> (2 * k)) & 3;
            let q = (low | (high << 4)) as i32 - 32;
            *o = d * (scales[i / 16] as i8) as f32 * q as f32;
        }
    }
}
