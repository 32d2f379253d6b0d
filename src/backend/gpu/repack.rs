//! The GPU's layout of weight rows. WGSL reads storage only as 32-bit words, so a block whose
//! size is not a multiple of 4 (Q4_0's 18 bytes, Q5_0's 22, Q8_0's 34, Q3_K's 110, Q6_K's 210)
//! starts mid-word every other time, and each of its quant words costs two loads and two shifts.
//! At upload, such rows are regrouped by pairs of blocks: each field of the two blocks side by
//! side, in the block's field order (Q4_0: `d0 d1 qs0 qs1`). Every pair, and every field in it, is
//! then word-aligned, the bytes and their meaning are unchanged (nothing is dequantized), and a
//! row's size stays the same (an odd block count adds one zero block). Rows of the other formats
//! already start on words and are uploaded as they are. The decoders in `shaders/quant/` read
//! this layout.
//!
//! The lattice i-quants (IQ2_*, IQ3_*, IQ1_*) index tables of up to 2048 entries. WGSL has no
//! cheap way to hold those in a shader (a runtime-indexed constant array is copied to every
//! thread's registers), and another binding would change every weight-reading kernel, so each
//! weight buffer of such a type starts with its format's table ([`gpu_prefix`]), and its rows
//! follow.

use std::borrow::Cow;

use crate::quant::GgmlType;

/// Byte sizes of the fields of a block, in file order, for the formats regrouped by pairs.
fn pair_fields(t: GgmlType) -> Option<&'static [usize]> {
    Some(match t {
        GgmlType::Q4_0 => &[2, 16],
        GgmlType::Q5_0 => &[2, 4, 16],
        GgmlType::Q8_0 => &[2, 32],
        GgmlType::Iq4Nl => &[2, 16],
        GgmlType::Iq2Xxs => &[2, 64],
        GgmlType::Iq2Xs => &[2, 64, 8],
        GgmlType::Iq2S => &[2, 64, 8, 8],
        GgmlType::Iq3Xxs => &[2, 64, 32],
        GgmlType::Iq3S => &[2, 64, 8, 32, 4],
        GgmlType::Iq1S => &[2, 32, 16],
        GgmlType::Tq1_0 => &[48, 4, 2],
        GgmlType::Tq2_0 => &[64, 2],
        GgmlType::Q3K => &[32, 64, 12, 2],
        GgmlType::Q6K => &[128, 64, 16, 2],
        _ => return None,
    })
}

/// The bytes every weight buffer of type `t` starts with: its lattice table as signed bytes
/// (entry `e` of IQ2's and IQ1's 8 values at byte `8e`, of IQ3's 4 values at `4e`), or nothing.
pub fn gpu_prefix(t: GgmlType) -> &'static [u8] {
    bytemuck::cast_slice(crate::quant::lattice_table(t))
}

/// Bytes of one row of `file_row_bytes` (in the file's encoding) in the GPU's layout.
pub fn gpu_row_bytes(t: GgmlType, file_row_bytes: usize) -> usize {
    match pair_fields(t) {
        Some(_) => {
            let block = t.block_bytes();
            file_row_bytes.div_ceil(2 * block) * 2 * block
        }
        None => file_row_bytes,
    }
}

/// `bytes` (whole rows of `file_row_bytes`) in the GPU's layout.
pub fn gpu_rows(t: GgmlType, bytes: &[u8], file_row_bytes: usize) -> Cow<'_, [u8]> {
    let Some(fields) = pair_fields(t) else {
        return bytes.into();
    };
    let block = t.block_bytes();
    debug_assert_eq!(fields.iter().sum::<usize>(), block);
    let out_row = gpu_row_bytes(t, file_row_bytes);
    let mut out = Vec::with_capacity(bytes.len() / file_row_bytes.max(1) * out_row);
    let zero = vec![0u8; block];
    for row in bytes.chunks_exact(file_row_bytes) {
        for pair in row.chunks(2 * block) {
            let (b0, b1) = pair.split_at(block);
            let b1 = if b1.is_empty() { &zero[..] } else { b1 };
            let mut at = 0;
            for &size in fields {
                out.extend_from_slice(&b0[at..at + size]);
                out.extend_from_slice(&b1[at..at + size]);
                at += size;
            }
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_put_each_field_side_by_side_and_pad_odd_rows() {
        // Two rows of three Q4_0 blocks; block k holds bytes 100k.. so moves are visible.
        let block: Vec<Vec<u8>> = (0..6)
            .map(|k| (0..18).map(|i| (k * 20 + i) as u8).collect())
            .collect();
        let bytes: Vec<u8> = block.concat();
        let out = gpu_rows(GgmlType::Q4_0, &bytes, 54);
        assert_eq!(gpu_row_bytes(GgmlType::Q4_0, 54), 72);
        assert_eq!(out.len(), 144);
        for row in 0..2 {
            let r = &out[row * 72..(row + 1) * 72];
            let b = |k: usize| &block[row * 3 + k];
            assert_eq!(&r[0..2], &b(0)[0..2]);
            assert_eq!(&r[2..4], &b(1)[0..2]);
            assert_eq!(&r[4..20], &b(0)[2..18]);
            assert_eq!(&r[20..36], &b(1)[2..18]);
            assert_eq!(&r[36..38], &b(2)[0..2]);
            assert_eq!(&r[38..40], &[0, 0]);
            assert_eq!(&r[40..56], &b(2)[2..18]);
            assert!(r[56..72].iter().all(|&v| v == 0));
        }
        // Word-aligned formats are left alone.
        let q41 = vec![7u8; 40];
        assert!(matches!(
            gpu_rows(GgmlType::Q4_1, &q41, 20),
            Cow::Borrowed(_)
        ));
        assert_eq!(gpu_row_bytes(GgmlType::Q4K, 144), 144);
    }
}
