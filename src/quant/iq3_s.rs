//! IQ3_S: 256 weights in 110 bytes (3.44 bits each). Layout: `d: f16, qs: [u8; 64],
//! qh: [u8; 8], signs: [u8; 32], scales: [u8; 4]`. Each 4 weights are entry
//! `qs[k] | (bit k % 8 of qh[k / 8]) << 8` of the 512-entry grid; `signs[r]` are the eight sign
//! bits of run `r`; group `g` (32 weights) has the 4-bit scale `s` (nibble `g % 2` of
//! `scales[g / 2]`): `d * (1 + 2s)`.

use super::iq_grids::IQ3S;
use super::iq3_xxs::group_weights;
use super::lattice::{lattice_format, leading_f16, put_signed};
use super::lattice_search::{Grid4, Iq3Search, fit_iq3, iq3_scale_code};
use super::{Quantize, put_f16, sum_squares};

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

/// llama.cpp's IQ3_S quantizer (weights from the importances, else `x²`). Like llama.cpp's, it
/// writes the runs and signs of the groups with any nonzero value one after another: after an
/// all-zero group, later groups' `qs` and `signs` move up a slot (their `qh` bits do not). The
/// decoder reads such a block otherwise, but llama.cpp's files are so, and Ember's are the same.
fn quantize_iq3s(x: &[f32], importance: Option<&[f32]>, out: &mut [u8]) {
    out.fill(0);
    let grid = Grid4::iq3s();
    let how = Iq3Search {
        steps: 9,
        start_on_grid: false,
        resnap_all: true,
    };
    let sigma2 = 2.0 * sum_squares(x) / 256.0;
    let (mut scales, mut max_scale) = ([0.0f32; 8], 0.0f32);
    let mut slot = 0;
    for ib in 0..8 {
        let xb = &x[32 * ib..32 * ib + 32];
        let (w, waux) = group_weights(xb, importance.map(|i| &i[32 * ib..32 * ib + 32]), sigma2);
        let mut xval = [0.0f32; 32];
        let mut signs = [0u8; 4];
        for (i, &v) in xb.iter().enumerate() {
            xval[i] = if v >= 0.0 { v } else { -v };
            if v < 0.0 {
                signs[i / 8] |= 1 << (i % 8);
            }
        }
        let max = xval.iter().copied().fold(xval[0], f32::max);
        if max == 0.0 {
            continue;
        }
        let (mut scale, entries) = fit_iq3(grid, &xval, &w, &waux, max, &how);
        if scale < 0.0 {
            scale = -scale;
            signs = signs.map(|s| !s);
        }
        for (k, &e) in entries.iter().enumerate() {
            out[2 + 8 * slot + k] = e as u8;
            out[66 + ib] |= ((e >> 8) as u8) << k;
        }
        out[74 + 4 * slot..78 + 4 * slot].copy_from_slice(&signs);
        slot += 1;
        scales[ib] = scale;
        max_scale = max_scale.max(scale);
    }
    if max_scale == 0.0 {
        return;
    }
    let d = max_scale / 31.0;
    // llama.cpp's small improvement: the stored scale is a little larger than the fit's.
    put_f16(out, 0, d * 1.033);
    let id = 1.0 / d;
    for j in 0..4 {
        out[106 + j] =
            iq3_scale_code(id, scales[2 * j]) | iq3_scale_code(id, scales[2 * j + 1]) << 4;
    }
}

impl Quantize for Iq3S {
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        quantize_iq3s(x, None, out)
    }

    fn quantize_block_weighted(x: &[f32], importance: &[f32], _: f32, out: &mut [u8]) {
        quantize_iq3s(x, Some(importance), out)
    }
}
