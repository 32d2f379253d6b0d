//! What the lattice i-quants (IQ2_*, IQ3_*, IQ1_*) share: runs of grid magnitudes with sign bits.
//! Their codes are signed bytes (grid value times sign), so they are [`AffineGroups`] with
//! `SIGNED` codes and no offset, and the integer dot products take them as they take Q8_0's.
//!
//! [`AffineGroups`]: super::AffineGroups

use super::GgmlType;
use super::iq_grids::{IQ1S, IQ2S, IQ2XS, IQ2XXS, IQ3S, IQ3XXS};

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
