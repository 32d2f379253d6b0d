//! IQ3_S: 256 weights in 110 bytes (3.44 bits each). Layout: `d: f16, qs: [u8; 64],
//! qh: [u8; 8], signs: [u8; 32], scales: [u8; 4]`. Each 4 weights are entry
//! `qs[k] | (bit k % 8 of qh[k / 8]) << 8` of the 512-entry grid; `signs[r]` are the eight sign
//! bits of run `r`; group `g` (32 weights) has the 4-bit scale `s` (nibble `g % 2` of
//! `scales[g / 2]`): `d * (1 + 2s)`.

use super::iq_grids::IQ3S;
use super::lattice::{lattice_format, leading_f16, put_signed};
use super::lattice_search::{GridKind, Lattice, Resnap, Search, lattice_quantizer};

/// The IQ3_S block format.
pub struct Iq3S;

lattice_format!(Iq3S, 110, 32, leading_f16, group_codes);

/// Group `g` of 32: eight runs of 4 signed grid values, and its scale.
#[inline(always)]
fn group_codes(b: &[u8], d: f32, g: usize, codes: &mut [u8; 32]) -> f32 {
    let qh = usize::from(b[66 + g]);
    for k in 0..8 {
        let entry = &IQ3S[usize::from(b[2 + 8 * g + k]) | (qh >> k & 1) << 8];
        let signs = b[74 + 4 * g + k / 2] >> (4 * (k % 2));
        put_signed(&mut codes[4 * k..], entry, signs);
    }
    d * f32::from(1 + 2 * (b[106 + g / 2] >> (4 * (g % 2)) & 15))
}

/// llama.cpp's IQ3_S quantizer (`quantize_row_iq3_s_impl`, groups of 32).
const LATTICE: Lattice = Lattice {
    grid: GridKind::Iq3S,
    search: Search {
        step: 0.2,
        steps: 9,
        start_on_grid: false,
        resnap: Resnap::AllIfAnyOff,
    },
    group: 32,
    parity: false,
    eps: 0.0,
    integer_start: false,
    sigma2_factor: 2.0,
    plain_sigma2: 0.0,
};

/// Encodes a block with llama.cpp's IQ3_S quantizer (weights from the importances, else `x²`).
/// Like llama.cpp's, it writes the runs and signs of the groups with any nonzero value one after
/// another: after an all-zero group, later groups' `qs` and `signs` move up a slot (their `qh`
/// bits do not). The decoder reads such a block otherwise, but llama.cpp's files are so, and
/// Ember's are the same.
fn quantize_iq3s(x: &[f32], importance: Option<&[f32]>, out: &mut [u8]) {
    // llama.cpp's small improvement: the stored scale is a little larger than the fit's.
    let Some(fit) = LATTICE.fit_into(x, importance, 1.033, out) else {
        return;
    };
    for (slot, (ib, g)) in fit
        .groups
        .iter()
        .enumerate()
        .filter_map(|(ib, g)| Some((ib, g.as_ref()?)))
        .enumerate()
    {
        for (k, &e) in g.entries.iter().enumerate() {
            out[2 + 8 * slot + k] = e as u8;
            out[66 + ib] |= ((e >> 8) as u8) << k;
        }
        out[74 + 4 * slot..78 + 4 * slot].copy_from_slice(&g.signs);
    }
    out[106..110].copy_from_slice(&fit.code_pairs());
}

lattice_quantizer!(Iq3S, quantize_iq3s);
