//! Weights repacked at load into strips of [`STRIP`] interleaved rows (Q4_0, Q4_1, Q5_0, Q5_1,
//! Q8_0).
//!
//! In the file a row's blocks follow each other; the strip kernels want, for each block column,
//! the eight rows' scales side by side and their codes in 4-byte units interleaved by row, so
//! one 32-byte load is four consecutive codes (or nibble pairs) of all eight rows — the operand
//! `vpdpbusd` multiplies with four broadcast activation bytes. Repacking moves bytes without
//! changing them, so a strip takes exactly the bytes of its eight rows: the file's pages can be
//! released once their tensor is repacked, and memory does not double. Decode and prefill then run
//! the same kernel, with no unpacking or transposing per token.

use super::STRIP;
use crate::quant::GgmlType;

/// How a 32-element format is laid out, as the repacking sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripLayout {
    /// f16 fields at the start of each block (scale; scale and min).
    pub halves: usize,
    /// Bytes of fifth bits after them (Q5_0/Q5_1: a u32, bit `i` for element `i`).
    pub high_bytes: usize,
    /// Code bytes per block (16 nibble pairs, or 32 bytes).
    pub code_bytes: usize,
}

impl StripLayout {
    /// The layout of `t`, if it is repacked.
    pub fn of(t: GgmlType) -> Option<StripLayout> {
        let (halves, high_bytes, code_bytes) = match t {
            GgmlType::Q4_0 => (1, 0, 16),
            GgmlType::Q4_1 => (2, 0, 16),
            GgmlType::Q5_0 => (1, 4, 16),
            GgmlType::Q5_1 => (2, 4, 16),
            GgmlType::Q8_0 => (1, 0, 32),
            _ => return None,
        };
        Some(StripLayout {
            halves,
            high_bytes,
            code_bytes,
        })
    }

    /// Bytes of one block of one row.
    pub fn block_bytes(self) -> usize {
        2 * self.halves + self.high_bytes + self.code_bytes
    }

    /// Bytes of one block column of a strip.
    pub fn strip_block_bytes(self) -> usize {
        STRIP * self.block_bytes()
    }
}

/// A weight's whole strips, repacked (rows past the last whole strip stay in the file).
#[derive(Clone, Debug)]
pub struct Strips {
    /// The block format.
    pub dtype: GgmlType,
    /// Its layout.
    pub layout: StripLayout,
    /// Number of strips.
    pub strips: usize,
    /// Blocks per row.
    pub blocks: usize,
    /// Strip after strip; in each, block column after block column: the eight rows' f16 fields
    /// (field-major), their fifth-bit words, then the codes in 4-byte units, unit-major and
    /// row-minor.
    pub bytes: Vec<u8>,
}

impl Strips {
    /// Repacks the whole strips of `rows` rows of `row_bytes` bytes each, or `None` when `t` is
    /// not repacked or there is no whole strip.
    pub fn repack(t: GgmlType, data: &[u8], rows: usize, row_bytes: usize) -> Option<Strips> {
        let layout = StripLayout::of(t)?;
        let strips = rows / STRIP;
        if strips == 0 {
            return None;
        }
        let bb = layout.block_bytes();
        let blocks = row_bytes / bb;
        let mut bytes = vec![0u8; strips * blocks * layout.strip_block_bytes()];
        for (s, strip) in bytes
            .chunks_exact_mut(blocks * layout.strip_block_bytes())
            .enumerate()
        {
            for (b, column) in strip
                .chunks_exact_mut(layout.strip_block_bytes())
                .enumerate()
            {
                let (head, rest) = column.split_at_mut(STRIP * 2 * layout.halves);
                let (high, codes) = rest.split_at_mut(STRIP * layout.high_bytes);
                for r in 0..STRIP {
                    let at = (s * STRIP + r) * row_bytes + b * bb;
                    let block = &data[at..at + bb];
                    for f in 0..layout.halves {
                        let to = 2 * (f * STRIP + r);
                        head[to..to + 2].copy_from_slice(&block[2 * f..2 * f + 2]);
                    }
                    let (hb, h0) = (layout.high_bytes, 2 * layout.halves);
                    high[hb * r..hb * (r + 1)].copy_from_slice(&block[h0..h0 + hb]);
                    let src = &block[h0 + hb..];
                    for u in 0..layout.code_bytes / 4 {
                        let to = 4 * (u * STRIP + r);
                        codes[to..to + 4].copy_from_slice(&src[4 * u..4 * u + 4]);
                    }
                }
            }
        }
        Some(Strips {
            dtype: t,
            layout,
            strips,
            blocks,
            bytes,
        })
    }

    /// The bytes of strip `s`.
    pub fn strip(&self, s: usize) -> &[u8] {
        let n = self.blocks * self.layout.strip_block_bytes();
        &self.bytes[s * n..(s + 1) * n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Repacking is a permutation of the strip's bytes: every byte lands exactly once.
    #[test]
    fn repacking_permutes_bytes() {
        for t in [
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
            GgmlType::Q8_0,
        ] {
            let layout = StripLayout::of(t).unwrap();
            let (rows, blocks) = (2 * STRIP + 3, 3);
            let row_bytes = blocks * layout.block_bytes();
            let data: Vec<u8> = (0..rows * row_bytes).map(|i| (i * 7 % 251) as u8).collect();
            let s = Strips::repack(t, &data, rows, row_bytes).unwrap();
            assert_eq!(s.strips, 2);
            let mut a = s.bytes.clone();
            let mut b = data[..2 * STRIP * row_bytes].to_vec();
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b, "{}", t.name());
        }
        assert!(Strips::repack(GgmlType::Q4K, &[], 8, 144).is_none());
    }
}
