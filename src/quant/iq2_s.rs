//! IQ2_S: 256 weights in 82 bytes (2.56 bits each). Layout: `d: f16, qs: [u8; 32],
//! signs: [u8; 32], qh: [u8; 8], scales: [u8; 8]`. Run `r` (8 weights) is entry
//! `qs[r] | (bits 2(r % 4)..2(r % 4) + 2 of qh[r / 4]) << 8` of the 1024-entry grid, with the
//! eight sign bits `signs[r]`; each 16 weights have a 4-bit scale as IQ2_XS's.

use super::iq_grids::IQ2S;
use super::lattice::{iq2_scale, lattice_format, leading_f16, put_signed};
use super::lattice_search::{GridKind, IQ2_SEARCH, Lattice, lattice_quantizer};

/// The IQ2_S block format.
pub struct Iq2S;

lattice_format!(Iq2S, 82, 16, leading_f16, group_codes);

/// Group `g` of 16: two runs of 8 signed grid values, and its scale.
#[inline(always)]
fn group_codes(b: &[u8], d: f32, g: usize, codes: &mut [u8; 16]) -> f32 {
    for l in 0..2 {
        let r = 2 * g + l;
        let high = (usize::from(b[66 + r / 4]) >> (2 * (r % 4)) & 3) << 8;
        let entry = &IQ2S[usize::from(b[2 + r]) | high];
        put_signed(&mut codes[8 * l..], entry, b[34 + r]);
    }
    iq2_scale(d, u32::from(b[74 + g / 2] >> (4 * (g % 2)) & 15))
}

/// llama.cpp's IQ2_S quantizer (`quantize_row_iq2_s_impl`).
const LATTICE: Lattice = Lattice {
    grid: GridKind::Iq2S,
    search: IQ2_SEARCH,
    group: 16,
    parity: false,
    eps: 1e-8,
    integer_start: false,
    sigma2_factor: 2.0,
    plain_sigma2: 0.25,
};

/// Encodes a block with llama.cpp's IQ2_S quantizer (without importances each value weighs
/// `σ²/4 + x²`).
fn quantize_iq2s(x: &[f32], importance: Option<&[f32]>, out: &mut [u8]) {
    // llama.cpp's adjustment: the stored scale is a little smaller than the fit's.
    let Some(fit) = LATTICE.fit_into(x, importance, 0.9875, out) else {
        return;
    };
    for (ib, group) in fit.groups.iter().enumerate() {
        if let Some(g) = group {
            for k in 0..2 {
                let r = 2 * ib + k;
                out[2 + r] = g.entries[k] as u8;
                out[66 + r / 4] |= ((g.entries[k] >> 8) as u8) << (2 * (r % 4));
                out[34 + r] = g.signs[k];
            }
        }
    }
    out[74..82].copy_from_slice(&fit.code_pairs());
}

lattice_quantizer!(Iq2S, quantize_iq2s);
