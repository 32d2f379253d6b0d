//! IQ3_XXS: 256 weights in 98 bytes (3.06 bits each). Layout: `d: f16, qs: [u8; 64],
//! scales_and_signs: [u32; 8]`. Each `qs` byte indexes the 256-entry grid of 4 magnitudes; group
//! `g`'s u32 holds four 7-bit sign fields ([`parity_signs`], one per 8 weights) and in its top 4
//! bits `s` the group scale `d * (0.5 + s) / 2`.

use super::iq_grids::IQ3XXS;
use super::lattice::{lattice_format, leading_f16, parity_signs, put_signed, u32_at};
use super::lattice_search::{GridKind, Lattice, Resnap, Search, lattice_quantizer};

/// The IQ3_XXS block format.
pub struct Iq3Xxs;

lattice_format!(Iq3Xxs, 98, 32, leading_f16, group_codes);

/// Group `g` of 32: eight runs of 4 signed grid values, and its scale.
#[inline(always)]
fn group_codes(b: &[u8], d: f32, g: usize, codes: &mut [u8; 32]) -> f32 {
    let aux = u32_at(b, 66 + 4 * g);
    for l in 0..4 {
        let signs = parity_signs(aux >> (7 * l));
        let qs = 2 + 8 * g + 2 * l;
        put_signed(&mut codes[8 * l..], &IQ3XXS[b[qs] as usize], signs);
        put_signed(
            &mut codes[8 * l + 4..],
            &IQ3XXS[b[qs + 1] as usize],
            signs >> 4,
        );
    }
    d * (0.5 + (aux >> 28) as f32) * 0.5
}

/// llama.cpp's IQ3_XXS quantizer (`quantize_row_iq3_xxs_impl`).
const LATTICE: Lattice = Lattice {
    grid: GridKind::Iq3Xxs,
    search: Search {
        step: 0.2,
        steps: 15,
        start_on_grid: true,
        resnap: Resnap::OffGrid,
    },
    group: 32,
    parity: true,
    eps: 1e-8,
    integer_start: false,
    sigma2_factor: 2.0,
    plain_sigma2: 0.0,
};

/// Encodes a block with llama.cpp's IQ3_XXS quantizer (weights from the importances, else `x²`).
fn quantize_iq3xxs(x: &[f32], importance: Option<&[f32]>, out: &mut [u8]) {
    // llama.cpp's small improvement: the stored scale is a little larger than the fit's.
    let Some(fit) = LATTICE.fit_into(x, importance, 1.0125, out) else {
        return;
    };
    for (ib, (group, &code)) in fit.groups.iter().zip(&fit.codes).enumerate() {
        let mut word = u32::from(code) << 28;
        if let Some(g) = group {
            for (k, &e) in g.entries.iter().enumerate() {
                out[2 + 8 * ib + k] = e as u8;
            }
            for (k, &s) in g.signs.iter().enumerate() {
                word |= u32::from(s) << (7 * k);
            }
        }
        out[66 + 4 * ib..70 + 4 * ib].copy_from_slice(&word.to_le_bytes());
    }
}

lattice_quantizer!(Iq3Xxs, quantize_iq3xxs);
