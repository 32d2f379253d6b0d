//! Weights repacked at load into strips of [`STRIP`] interleaved rows (Q4_0, Q4_1, Q5_0, Q5_1,
//! Q8_0, Q4_K, Q6_K).
//!
//! In the file a row's blocks follow each other; the strip kernels want, for each block column,
//! the eight rows' scales side by side and their codes in 4-byte units interleaved by row, so
//! one 32-byte load is four consecutive codes (or nibble pairs) of all eight rows — the operand
//! `vpdpbusd` multiplies with four broadcast activation bytes. Repacking moves bytes without
//! changing them (Q4_K's twelve bytes of packed 6-bit scales and mins become sixteen plain
//! bytes, +3%), so a strip takes the bytes of its eight rows: the file's pages can be released
//! once their tensor is repacked, and memory does not double. Decode and prefill then run
//! the same kernel, with no unpacking or transposing per token.

use super::STRIP;
use crate::quant::{GgmlType, k_scale_min};

/// How a format is laid out, as the repacking sees it: per row and block, f16 fields, then
/// `extra` bytes (stored `extra_unit` bytes at a time, unit-major and row-minor), then codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripLayout {
    /// f16 fields at the start of each block (scale; scale and min).
    pub halves: usize,
    /// Extra bytes per block: Q5_0/Q5_1's fifth bits (a u32, bit `i` for element `i`); Q4_K's
    /// eight 6-bit scales then eight mins, one byte each; Q6_K's sixteen signed scales.
    pub extra: usize,
    /// Bytes per unit of the extra bytes (4 for the fifth-bit word, 1 for Q4_K's scales).
    pub extra_unit: usize,
    /// Code bytes per block (nibble pairs, or bytes).
    pub code_bytes: usize,
}

impl StripLayout {
    /// The layout of `t`, if it is repacked.
    pub fn of(t: GgmlType) -> Option<StripLayout> {
        let (halves, extra, extra_unit, code_bytes) = match t {
            GgmlType::Q4_0 => (1, 0, 1, 16),
            GgmlType::Q4_1 => (2, 0, 1, 16),
            GgmlType::Q5_0 => (1, 4, 4, 16),
            GgmlType::Q5_1 => (2, 4, 4, 16),
            GgmlType::Q8_0 => (1, 0, 1, 32),
            GgmlType::Q4K => (2, 16, 1, 128),
            GgmlType::Q6K => (1, 16, 1, 192),
            _ => return None,
        };
        Some(StripLayout {
            halves,
            extra,
            extra_unit,
            code_bytes,
        })
    }

    /// Bytes of one block of one row, repacked.
    pub fn block_bytes(self) -> usize {
        2 * self.halves + self.extra + self.code_bytes
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
    /// not repacked or there is no whole strip. `done(range)` is told, a megabyte or so at a
    /// time, which bytes of `data` have been repacked (so their pages can be released while the
    /// rest is read, and a large tensor never sits in memory twice).
    pub fn repack(
        t: GgmlType,
        data: &[u8],
        rows: usize,
        row_bytes: usize,
        done: &mut dyn FnMut(std::ops::Range<usize>),
    ) -> Option<Strips> {
        let layout = StripLayout::of(t)?;
        let strips = rows / STRIP;
        if strips == 0 {
            return None;
        }
        let bb = t.block_bytes();
        let blocks = row_bytes / bb;
        let strip_bytes = STRIP * row_bytes;
        let per_report = (1 << 20) / strip_bytes.max(1) + 1;
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
                let (extra, codes) = rest.split_at_mut(STRIP * layout.extra);
                for r in 0..STRIP {
                    let at = (s * STRIP + r) * row_bytes + b * bb;
                    let block = &data[at..at + bb];
                    let h0 = if t == GgmlType::Q6K { 208 } else { 0 };
                    for f in 0..layout.halves {
                        let (to, from) = (2 * (f * STRIP + r), h0 + 2 * f);
                        head[to..to + 2].copy_from_slice(&block[from..from + 2]);
                    }
                    let (own, src) = extra_bytes(t, &layout, block);
                    let unit = layout.extra_unit;
                    for u in 0..layout.extra / unit {
                        let to = unit * (u * STRIP + r);
                        extra[to..to + unit].copy_from_slice(&own[unit * u..unit * (u + 1)]);
                    }
                    for u in 0..layout.code_bytes / 4 {
                        let to = 4 * (u * STRIP + r);
                        codes[to..to + 4].copy_from_slice(&src[4 * u..4 * u + 4]);
                    }
                }
            }
            if (s + 1) % per_report == 0 || s + 1 == strips {
                let first = s / per_report * per_report;
                done(first * strip_bytes..(s + 1) * strip_bytes);
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

    /// Runs of 32 codes per block.
    pub fn runs_per_block(&self) -> usize {
        self.dtype.block_elems() / 32
    }

    /// The bytes of strip `s`.
    pub fn strip(&self, s: usize) -> &[u8] {
        let n = self.blocks * self.layout.strip_block_bytes();
        &self.bytes[s * n..(s + 1) * n]
    }
}

/// A block's extra bytes as the strip stores them, and its code bytes; `layout` is `t`'s.
fn extra_bytes<'a>(t: GgmlType, layout: &StripLayout, block: &'a [u8]) -> ([u8; 16], &'a [u8]) {
    let mut own = [0u8; 16];
    match t {
        GgmlType::Q5_0 => own[..4].copy_from_slice(&block[2..6]),
        GgmlType::Q5_1 => own[..4].copy_from_slice(&block[4..8]),
        GgmlType::Q4K => {
            for g in 0..8 {
                (own[g], own[8 + g]) = k_scale_min(g, &block[4..16]);
            }
            return (own, &block[16..144]);
        }
        // Q6_K keeps its f16 at the end; the strip puts it first, like the others.
        GgmlType::Q6K => {
            own.copy_from_slice(&block[192..208]);
            return (own, &block[..192]);
        }
        _ => {}
    }
    (own, &block[2 * layout.halves + layout.extra..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Repacking is a permutation of the strip's bytes: every byte lands exactly once (Q4_K,
    /// whose scales are unpacked, is checked by the kernel tests).
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
            let mut seen = 0;
            let s = Strips::repack(t, &data, rows, row_bytes, &mut |r| {
                assert_eq!(r.start, seen);
                seen = r.end;
            })
            .unwrap();
            assert_eq!(
                seen,
                2 * STRIP * row_bytes,
                "every repacked byte is reported"
            );
            assert_eq!(s.strips, 2);
            let mut a = s.bytes.clone();
            let mut b = data[..2 * STRIP * row_bytes].to_vec();
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b, "{}", t.name());
        }
        assert!(Strips::repack(GgmlType::Q5K, &[], 8, 176, &mut |_| {}).is_none());
    }
}
