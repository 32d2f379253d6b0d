//! IQ1_S: 256 weights in 50 bytes (1.56 bits each). Layout: `d: f16, qs: [u8; 32],
//! qh: [u16; 8]`. Run `r` (8 weights) of group `g` is entry `qs[r] | (bits 3(r % 4).. of
//! qh[g]) << 8` of the 2048-entry grid of values -1, 0, 1; the group's weights are
//! `d * (2s + 1) * (value ± 1/8)`, `s` = bits 12..15 of `qh[g]`, bit 15 the sign of the 1/8.
//! As codes: `8 * value ± 1` (signed bytes) with scale `d * (2s + 1) / 8` — exactly the same
//! products, since dividing by 8 is exact.

use super::iq_grids::IQ1S;
use super::iq1_search::{
    GROUP_MAX_EPS_IQ1_S, MINUS, PLUS, ascending, max_magnitude, place_runs, split_levels,
};
use super::lattice::{lattice_format, leading_f16, u16_at};
use super::lattice_search::{Grid, GridKind, lattice_quantizer};
use super::search::nearest_int;
use super::{put_f16, sum_squares};

/// The IQ1_S block format.
pub struct Iq1S;

lattice_format!(Iq1S, 50, 32, leading_f16, group_codes);

/// Writes grid entry `entry` as codes `8 * value + delta`.
#[inline(always)]
pub(crate) fn put_shifted(out: &mut [u8], entry: usize, delta: i8) {
    for (o, &v) in out.iter_mut().zip(&IQ1S[entry]) {
        *o = (8 * v + delta) as u8;
    }
}

/// The IQ1 group scale `d * (2s + 1)`, over 8 for codes of [`put_shifted`].
#[inline(always)]
pub(crate) fn iq1_scale(d: f32, s: u32) -> f32 {
    d * (2 * s + 1) as f32 * 0.125
}

/// Group `g` of 32: four runs of 8 shifted grid values, and its scale.
#[inline(always)]
fn group_codes(b: &[u8], d: f32, g: usize, codes: &mut [u8; 32]) -> f32 {
    let qh = u16_at(b, 34 + 2 * g) as usize;
    let delta = if qh & 0x8000 != 0 { -1 } else { 1 };
    for l in 0..4 {
        let entry = usize::from(b[2 + 4 * g + l]) | (qh >> (3 * l) & 7) << 8;
        put_shifted(&mut codes[8 * l..], entry, delta);
    }
    iq1_scale(d, (qh >> 12 & 7) as u32)
}

/// Encodes a block with llama.cpp's IQ1_S quantizer (`quantize_row_iq1_s_impl`; llama.cpp only
/// runs it with an importance matrix, and so does Ember — without one each value weighs `x²`).
fn quantize_iq1s(x: &[f32], importance: Option<&[f32]>, out: &mut [u8]) {
    out.fill(0);
    let grid = Grid::of(GridKind::Iq1S);
    let sigma2 = 2.0 * sum_squares(x) / 256.0;
    let (mut scales, mut minus, mut max_scale) = ([0.0f32; 8], [false; 8], 0.0f32);
    for ib in 0..8 {
        let xb = &x[32 * ib..32 * ib + 32];
        let w: [f32; 32] = std::array::from_fn(|i| match importance {
            Some(imp) => imp[32 * ib + i] * (sigma2 + xb[i] * xb[i]).sqrt(),
            None => xb[i] * xb[i],
        });
        if max_magnitude(xb) < GROUP_MAX_EPS_IQ1_S {
            continue;
        }
        // Prefix sums of w·x and w over the values in ascending order: a split's fit for each
        // shift is then three differences.
        let order = ascending(xb);
        let (mut sumx, mut sumw) = ([0.0f32; 33], [0.0f32; 33]);
        for (j, &i) in order.iter().enumerate() {
            sumx[j + 1] = sumx[j] + w[i] * xb[i];
            sumw[j + 1] = sumw[j] + w[i];
        }
        let (mut best_score, mut scale) = (-f32::MAX, 0.0f32);
        let mut best: Option<(usize, usize, bool)> = None;
        for i1 in 0..=32 {
            for i2 in i1..=32 {
                for (shift_minus, v) in [(false, &PLUS), (true, &MINUS)] {
                    let sumqx = (sumx[i1] - sumx[0]) * v[0]
                        + (sumx[i2] - sumx[i1]) * v[1]
                        + (sumx[32] - sumx[i2]) * v[2];
                    let sumq2 = (sumw[i1] - sumw[0]) * v[0] * v[0]
                        + (sumw[i2] - sumw[i1]) * v[1] * v[1]
                        + (sumw[32] - sumw[i2]) * v[2] * v[2];
                    if sumq2 > 0.0 && sumqx * sumqx > best_score * sumq2 {
                        scale = sumqx / sumq2;
                        best_score = scale * sumqx;
                        best = Some((i1, i2, shift_minus));
                    }
                }
            }
        }
        let Some((i1, i2, mut shift_minus)) = best else {
            continue;
        };
        // A negative scale: the mirrored levels with the opposite shift fit as well.
        let levels = split_levels(&order, i1, i2, scale < 0.0);
        if scale < 0.0 {
            scale = -scale;
            shift_minus = !shift_minus;
        }
        let xx = if shift_minus { &MINUS } else { &PLUS };
        let (index, scale) = place_runs(grid, &levels, xb, &w, scale, |_| xx);
        let mut h = 0u16;
        for (k, &e) in index.iter().enumerate() {
            out[2 + 4 * ib + k] = e as u8;
            h |= (e >> 8) << (3 * k);
        }
        out[34 + 2 * ib..36 + 2 * ib].copy_from_slice(&h.to_le_bytes());
        scales[ib] = scale;
        minus[ib] = shift_minus;
        max_scale = if max_scale > scale { max_scale } else { scale };
    }
    if max_scale == 0.0 {
        return;
    }
    let d = max_scale / 15.0;
    // llama.cpp's adjustment: the stored scale is a little larger than the fit's.
    put_f16(out, 0, d * 1.125);
    let id = 1.0 / d;
    for ib in 0..8 {
        let l = nearest_int(0.5 * (id * scales[ib] - 1.0)).clamp(0, 7) as u16;
        let h = u16_at(out, 34 + 2 * ib) as u16 | (l | u16::from(minus[ib]) << 3) << 12;
        out[34 + 2 * ib..36 + 2 * ib].copy_from_slice(&h.to_le_bytes());
    }
}

lattice_quantizer!(Iq1S, quantize_iq1s);
