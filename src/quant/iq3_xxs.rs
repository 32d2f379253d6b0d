//! IQ3_XXS: 256 weights in 98 bytes (3.06 bits each). Layout: `d: f16, qs: [u8; 64],
//! scales_and_signs: [u32; 8]`. Each `qs` byte indexes the 256-entry grid of 4 magnitudes; group
//! `g`'s u32 holds four 7-bit sign fields ([`parity_signs`], one per 8 weights) and in its top 4
//! bits `s` the group scale `d * (0.5 + s) / 2`.

use super::iq_grids::IQ3XXS;
use super::lattice::{lattice_format, leading_f16, parity_signs, put_signed, u32_at};
use super::lattice_search::{Grid4, Iq3Search, fit_iq3, iq3_scale_code};
use super::{Quantize, put_f16, sum_squares};

/// Groups whose largest magnitude is below this are all zero (llama.cpp's
/// `GROUP_MAX_EPS_IQ3_XXS`).
const GROUP_MAX_EPS_IQ3_XXS: f32 = 1e-8;

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

/// The weights of a group of 32 (from the importances, else `x²`) and their square roots.
pub(super) fn group_weights(
    x: &[f32],
    importance: Option<&[f32]>,
    sigma2: f32,
) -> ([f32; 32], [f32; 32]) {
    let w: [f32; 32] = match importance {
        Some(imp) => std::array::from_fn(|i| imp[i] * (sigma2 + x[i] * x[i]).sqrt()),
        None => std::array::from_fn(|i| x[i] * x[i]),
    };
    (w, w.map(f32::sqrt))
}

/// llama.cpp's IQ3_XXS quantizer (weights from the importances, else `x²`).
fn quantize_iq3xxs(x: &[f32], importance: Option<&[f32]>, out: &mut [u8]) {
    out.fill(0);
    let grid = Grid4::iq3xxs();
    let how = Iq3Search {
        steps: 15,
        start_on_grid: true,
        resnap_all: false,
    };
    let sigma2 = 2.0 * sum_squares(x) / 256.0;
    let (mut scales, mut max_scale) = ([0.0f32; 8], 0.0f32);
    let mut words = [0u32; 8];
    for ib in 0..8 {
        let xb = &x[32 * ib..32 * ib + 32];
        let (w, waux) = group_weights(xb, importance.map(|i| &i[32 * ib..32 * ib + 32]), sigma2);
        let mut xval = [0.0f32; 32];
        let mut signs = [0u32; 4];
        for (k, s) in signs.iter_mut().enumerate() {
            let run = 8 * k..8 * k + 8;
            for i in run.clone() {
                xval[i] = if xb[i] >= 0.0 { xb[i] } else { -xb[i] };
                if xb[i] < 0.0 {
                    *s |= 1 << (i - 8 * k);
                }
            }
            // Seven sign bits are stored, the eighth is their parity: with an odd count of
            // negatives, the value that matters least changes sign.
            if s.count_ones() % 2 == 1 {
                let cost = |i: usize| w[i] * xb[i] * xb[i];
                let imin = run
                    .clone()
                    .fold(8 * k, |m, i| if cost(i) < cost(m) { i } else { m });
                xval[imin] = -xval[imin];
                *s ^= 1 << (imin - 8 * k);
            }
            *s &= 127;
        }
        let max = xval.iter().copied().fold(xval[0], f32::max);
        if max < GROUP_MAX_EPS_IQ3_XXS {
            continue;
        }
        let (mut scale, entries) = fit_iq3(grid, &xval, &w, &waux, max, &how);
        if scale < 0.0 {
            scale = -scale;
            signs = signs.map(|s| !s & 127);
        }
        for (k, &e) in entries.iter().enumerate() {
            out[2 + 8 * ib + k] = e as u8;
        }
        words[ib] = signs[0] | signs[1] << 7 | signs[2] << 14 | signs[3] << 21;
        scales[ib] = scale;
        max_scale = max_scale.max(scale);
    }
    if max_scale == 0.0 {
        out.fill(0);
        return;
    }
    let d = max_scale / 31.0;
    // llama.cpp's small improvement: the stored scale is a little larger than the fit's.
    put_f16(out, 0, d * 1.0125);
    let id = 1.0 / d;
    for ib in 0..8 {
        let word = words[ib] | u32::from(iq3_scale_code(id, scales[ib])) << 28;
        out[66 + 4 * ib..70 + 4 * ib].copy_from_slice(&word.to_le_bytes());
    }
}

impl Quantize for Iq3Xxs {
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        quantize_iq3xxs(x, None, out)
    }

    fn quantize_block_weighted(x: &[f32], importance: &[f32], _: f32, out: &mut [u8]) {
        quantize_iq3xxs(x, Some(importance), out)
    }
}
