//! What the lattice i-quants (IQ2_*, IQ3_*, IQ1_*) share: runs of grid magnitudes with sign bits.
//! Their codes are signed bytes (grid value times sign), so they are [`AffineGroups`] with
//! `SIGNED` codes and no offset, and the integer dot products take them as they take Q8_0's.
//!
//! [`AffineGroups`]: super::AffineGroups

use super::iq_grids::{IQ1S, IQ2S, IQ2XS, IQ2XXS, IQ3S, IQ3XXS};
use super::{GgmlType, f16_at};

/// The lattice table format `t` indexes, its entries one after another (empty for formats
/// without one).
pub fn lattice_table(t: GgmlType) -> &'static [i8] {
    match t {
        GgmlType::Iq2Xxs => IQ2XXS.as_flattened(),
        GgmlType::Iq2Xs => IQ2XS.as_flattened(),
        GgmlType::Iq2S => IQ2S.as_flattened(),
        GgmlType::Iq3Xxs => IQ3XXS.as_flattened(),
        GgmlType::Iq3S => IQ3S.as_flattened(),
        GgmlType::Iq1S | GgmlType::Iq1M => IQ1S.as_flattened(),
        _ => &[],
    }
}

/// `BlockFormat` and `AffineGroups` of a lattice i-quant `$t`: 256 values in `$bytes` bytes, in
/// groups of `$group` signed codes. `$super_scale(b)` is a block's scale and
/// `$group_codes(b, d, g, codes)` writes group `g`'s codes and returns its scale.
macro_rules! lattice_format {
    ($t:ty, $bytes:expr, $group:expr, $super_scale:expr, $group_codes:expr) => {
        $crate::quant::affine_block_format!($t, $crate::quant::QK_K, $bytes);

        impl $crate::quant::AffineGroups for $t {
            const GROUP: usize = $group;
            const SIGNED: bool = true;
            #[inline(always)]
            fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
                let d = $super_scale(b);
                let mut codes = [0u8; $group];
                for g in 0..$crate::quant::QK_K / $group {
                    let scale = $group_codes(b, d, g, &mut codes);
                    f(g, &codes, scale, 0.0);
                }
            }
        }
    };
}
pub(crate) use lattice_format;

/// The scale of a block that starts with it (an f16 at byte 0).
#[inline(always)]
pub(crate) fn leading_f16(b: &[u8]) -> f32 {
    f16_at(b, 0)
}

/// The eight signs of a run from the seven stored ones: the eighth makes the count of negative
/// values even (llama.cpp's `ksigns_iq2xs`, computed rather than tabled).
#[inline(always)]
pub(crate) fn parity_signs(seven: u32) -> u8 {
    let s = seven & 0x7f;
    (s | (s.count_ones() & 1) << 7) as u8
}

/// Writes `grid` into `out` with bit `j` of `signs` negating value `j`.
#[inline(always)]
pub(crate) fn put_signed(out: &mut [u8], grid: &[i8], signs: u8) {
    for (j, (o, &g)) in out.iter_mut().zip(grid).enumerate() {
        *o = if signs >> j & 1 == 1 { -g } else { g } as u8;
    }
}

/// The little-endian u16 at `b[i..i + 2]`.
#[inline(always)]
pub(crate) fn u16_at(b: &[u8], i: usize) -> u32 {
    u32::from(u16::from_le_bytes([b[i], b[i + 1]]))
}

/// The little-endian u32 at `b[i..i + 4]`.
#[inline(always)]
pub(crate) fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// The scale of an IQ2 group from its 4-bit code: `d * (0.5 + s) / 4`, rounded as llama.cpp
/// rounds it (the product first, the exact quarter after).
#[inline(always)]
pub(crate) fn iq2_scale(d: f32, s: u32) -> f32 {
    d * (0.5 + s as f32) * 0.25
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parity_signs_make_an_even_count() {
        for s in 0..128 {
            let full = parity_signs(s);
            assert_eq!(u32::from(full) & 0x7f, s);
            assert_eq!(full.count_ones() % 2, 0);
        }
    }
}
