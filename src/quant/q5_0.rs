//! Q5_0: 32 weights as 5-bit integers with one f16 scale. Layout: `d: f16, qh: u32, qs: [u8; 16]`;
//! the low four bits come from nibbles as in Q4_0, bit 4 of element `i` is bit `i` of `qh`;
//! value `d * (q - 16)`.

use super::{BlockFormat, f16_at};

/// The Q5_0 block format.
pub struct Q5_0;

/// Decodes the 32 five-bit integers shared by Q5_0 and Q5_1 (`qh` then `qs` at `b[at..]`).
pub(super) fn five_bit_values(b: &[u8], at: usize) -> [u8; 32] {
    let qh = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let mut q = [0u8; 32];
    for (j, &byte) in b[at + 4..at + 20].iter().enumerate() {
        q[j] = (byte & 0x0f) | ((((qh >> j) & 1) as u8) << 4);
        q[j + 16] = (byte >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
    }
    q
}

impl BlockFormat for Q5_0 {
    const ELEMS: usize = 32;
    const BYTES: usize = 22;
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let d = f16_at(b, 0);
        for (o, q) in out.iter_mut().zip(five_bit_values(b, 2)) {
            *o = d * (q as i32 - 16) as f32;
        }
    }
}
