//! IQ2_XS: 256 weights in 74 bytes (2.31 bits each). Layout: `d: f16, qs: [u16; 32],
//! scales: [u8; 8]`; each u16 of `qs` is a 9-bit index into the 512-entry grid (8 magnitudes)
//! and 7 sign bits ([`parity_signs`]); each 16 weights have a 4-bit scale `s` (low nibble of
//! `scales[g]` for the first half of group `g`, high for the second): `d * (0.5 + s) / 4`.

use super::iq_grids::IQ2XS;
use super::lattice::{iq2_scale, lattice_format, leading_f16, parity_signs, put_signed, u16_at};
use super::lattice_search::{GridKind, IQ2_SEARCH, Lattice, lattice_quantizer};

/// The IQ2_XS block format.
pub struct Iq2Xs;

lattice_format!(Iq2Xs, 74, 16, leading_f16, group_codes);

/// Group `g` of 16: two runs of 8 signed grid values, and its scale.
#[inline(always)]
fn group_codes(b: &[u8], d: f32, g: usize, codes: &mut [u8; 16]) -> f32 {
    for l in 0..2 {
        let q = u16_at(b, 2 + 2 * (2 * g + l));
        put_signed(
            &mut codes[8 * l..],
            &IQ2XS[q as usize & 511],
            parity_signs(q >> 9),
        );
    }
    iq2_scale(d, u32::from(b[66 + g / 2] >> (4 * (g % 2)) & 15))
}

/// llama.cpp's IQ2_XS quantizer (`quantize_row_iq2_xs_impl`; llama.cpp only runs it with an
/// importance matrix, and so does Ember).
const LATTICE: Lattice = Lattice {
    grid: GridKind::Iq2Xs,
    search: IQ2_SEARCH,
    group: 16,
    parity: true,
    eps: 1e-15,
    integer_start: false,
    sigma2_factor: 1.0,
    plain_sigma2: 0.0,
};

/// Encodes a block with llama.cpp's IQ2_XS quantizer.
fn quantize_iq2xs(x: &[f32], importance: Option<&[f32]>, out: &mut [u8]) {
    let Some(fit) = LATTICE.fit_into(x, importance, 1.0, out) else {
        return;
    };
    for (ib, group) in fit.groups.iter().enumerate() {
        if let Some(g) = group {
            for k in 0..2 {
                let q = g.entries[k] | u16::from(g.signs[k]) << 9;
                let at = 2 + 2 * (2 * ib + k);
                out[at..at + 2].copy_from_slice(&q.to_le_bytes());
            }
        }
    }
    out[66..74].copy_from_slice(&fit.code_pairs());
}

lattice_quantizer!(Iq2Xs, quantize_iq2xs);
