//! IQ2_XXS: 256 weights in 66 bytes (2.06 bits each). Layout: `d: f16, qs: [u8; 64]`; each group
//! of 32 has 8 bytes: four indices into the 256-entry grid (8 magnitudes each), then a u32 whose
//! four 7-bit fields are the runs' signs ([`parity_signs`]) and whose top 4 bits `s` give the
//! group's scale `d * (0.5 + s) / 4`.

use super::iq_grids::IQ2XXS;
use super::lattice::{iq2_scale, lattice_format, leading_f16, parity_signs, put_signed, u32_at};
use super::lattice_search::{GridKind, Lattice, Resnap, Search, lattice_quantizer};

/// The IQ2_XXS block format.
pub struct Iq2Xxs;

lattice_format!(Iq2Xxs, 66, 32, leading_f16, group_codes);

/// Group `g` of 32: four runs of 8 signed grid values, and its scale.
#[inline(always)]
fn group_codes(b: &[u8], d: f32, g: usize, codes: &mut [u8; 32]) -> f32 {
    let at = 2 + 8 * g;
    let aux = u32_at(b, at + 4);
    for l in 0..4 {
        let signs = parity_signs(aux >> (7 * l));
        put_signed(&mut codes[8 * l..], &IQ2XXS[b[at + l] as usize], signs);
    }
    iq2_scale(d, aux >> 28)
}

/// llama.cpp's IQ2_XXS quantizer (`quantize_row_iq2_xxs_impl`; llama.cpp only runs it with an
/// importance matrix, and so does Ember).
const LATTICE: Lattice = Lattice {
    grid: GridKind::Iq2Xxs,
    search: Search {
        step: 0.1,
        steps: 6,
        start_on_grid: true,
        resnap: Resnap::Always,
    },
    group: 32,
    parity: true,
    eps: 1e-15,
    integer_start: true,
    sigma2_factor: 1.0,
    plain_sigma2: 0.0,
};

/// Encodes a block with llama.cpp's IQ2_XXS quantizer.
fn quantize_iq2xxs(x: &[f32], importance: Option<&[f32]>, out: &mut [u8]) {
    let Some(fit) = LATTICE.fit_into(x, importance, 1.0, out) else {
        return;
    };
    for (ib, (group, &code)) in fit.groups.iter().zip(&fit.codes).enumerate() {
        let mut word = u32::from(code) << 28;
        if let Some(g) = group {
            for (k, &e) in g.entries[..4].iter().enumerate() {
                out[2 + 8 * ib + k] = e as u8;
            }
            for (k, &s) in g.signs.iter().enumerate() {
                word |= u32::from(s) << (7 * k);
            }
        }
        out[6 + 8 * ib..10 + 8 * ib].copy_from_slice(&word.to_le_bytes());
    }
}

lattice_quantizer!(Iq2Xxs, quantize_iq2xxs);
