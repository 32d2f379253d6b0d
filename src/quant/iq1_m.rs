//! IQ1_M: 256 weights in 56 bytes (1.75 bits each). Layout: `qs: [u8; 32], qh: [u8; 16],
//! scales: [u16; 4]`. The f16 super-scale `d` is the top nibbles of the four `scales` words
//! (word `k`'s nibble is bits 4k..4k+4 of its bits); each 16 weights have a 3-bit scale `s`
//! (group `g`: bits 3(g % 4).. of `scales[g / 4]`), weight `d * (2s + 1) * (value ± 1/8)`. Run
//! `r` (8 weights) is entry `qs[r] | (bits 4(r % 2)..4(r % 2) + 3 of qh[r / 2]) << 8` of IQ1_S's
//! grid; bit 3 of that nibble is the sign of its 1/8. Codes as IQ1_S's.

use super::f16_bits_to_f32;
use super::iq1_s::{iq1_scale, put_shifted};
use super::iq1_search::{
    MINUS, PLUS, accumulate, ascending, max_magnitude, place_runs, split_levels,
};
use super::lattice::{lattice_format, u16_at};
use super::lattice_search::{Grid, GridKind, lattice_quantizer};
use super::search::nearest_int;
use super::sum_squares;

/// The IQ1_M block format.
pub struct Iq1M;

lattice_format!(Iq1M, 56, 16, super_scale, group_codes);

/// The super-scale: the top nibble of each scale word.
#[inline(always)]
fn super_scale(b: &[u8]) -> f32 {
    let bits = (0..4).fold(0, |acc, k| acc | (u16_at(b, 48 + 2 * k) >> 12) << (4 * k));
    f16_bits_to_f32(bits as u16)
}

/// Group `g` of 16: two runs of 8 shifted grid values, and its scale.
#[inline(always)]
fn group_codes(b: &[u8], d: f32, g: usize, codes: &mut [u8; 16]) -> f32 {
    for l in 0..2 {
        let r = 2 * g + l;
        let nibble = usize::from(b[32 + r / 2] >> (4 * (r % 2)) & 15);
        let delta = if nibble & 8 != 0 { -1 } else { 1 };
        put_shifted(
            &mut codes[8 * l..],
            usize::from(b[r]) | (nibble & 7) << 8,
            delta,
        );
    }
    iq1_scale(d, u16_at(b, 48 + 2 * (g / 4)) >> (3 * (g % 4)) & 7)
}

/// Groups whose largest magnitude is below this are all zero (llama.cpp's
/// `GROUP_MAX_EPS_IQ1_M`).
const GROUP_MAX_EPS_IQ1_M: f32 = 1e-7;

/// The level values of run `k` (0 or 1) of a group with shift choice `shift`: bit 1 says the
/// first run's shift is `-1/8`, bit 0 the second's.
fn run_levels(shift: usize, k: usize) -> &'static [f32; 3] {
    let minus = if k == 0 { shift >= 2 } else { shift % 2 == 1 };
    if minus { &MINUS } else { &PLUS }
}

/// A group's fit: the split `(i1, i2)` of its ascending order, the shift choice and the scale,
/// searched exhaustively as llama.cpp does (prefix sums per half, since each half has its own
/// shift, and the fit of a split collapses to `T v₂ - S(i1) - S(i2)` as the levels are 1 apart).
fn best_split(xb: &[f32], w: &[f32], order: &[usize]) -> Option<(usize, usize, usize, f32)> {
    let (mut px, mut pw) = ([[0.0f32; 17]; 2], [[0.0f32; 17]; 2]);
    for (j, &i) in order.iter().enumerate() {
        let h = usize::from(i >= 8);
        px[h][j + 1] = px[h][j] + w[i] * xb[i];
        px[1 - h][j + 1] = px[1 - h][j];
        pw[h][j + 1] = pw[h][j] + w[i];
        pw[1 - h][j + 1] = pw[1 - h][j];
    }
    let (txs, tws) = ([px[0][16], px[1][16]], [pw[0][16], pw[1][16]]);
    let (p2, m2) = (PLUS[2], MINUS[2]);
    let cp1 = PLUS[0] * PLUS[0] - PLUS[1] * PLUS[1];
    let cp2 = PLUS[1] * PLUS[1] - PLUS[2] * PLUS[2];
    let cm1 = MINUS[0] * MINUS[0] - MINUS[1] * MINUS[1];
    let cm2 = MINUS[1] * MINUS[1] - MINUS[2] * MINUS[2];
    let (mut best_score, mut best) = (-f32::MAX, None);
    for i1 in 0..=16 {
        for i2 in i1..=16 {
            let (mut qx_p, mut qx_m, mut q2_p, mut q2_m) =
                ([0.0f32; 2], [0.0; 2], [0.0; 2], [0.0; 2]);
            for h in 0..2 {
                let sx = px[h][i1] + px[h][i2];
                qx_p[h] = txs[h] * p2 - sx;
                qx_m[h] = txs[h] * m2 - sx;
                q2_p[h] = tws[h] * p2 * p2 + pw[h][i1] * cp1 + pw[h][i2] * cp2;
                q2_m[h] = tws[h] * m2 * m2 + pw[h][i1] * cm1 + pw[h][i2] * cm2;
            }
            let sumqx = [
                qx_p[0] + qx_p[1],
                qx_p[0] + qx_m[1],
                qx_m[0] + qx_p[1],
                qx_m[0] + qx_m[1],
            ];
            let sumq2 = [
                q2_p[0] + q2_p[1],
                q2_p[0] + q2_m[1],
                q2_m[0] + q2_p[1],
                q2_m[0] + q2_m[1],
            ];
            for k in 0..4 {
                if sumq2[k] > 0.0 && sumqx[k] * sumqx[k] > best_score * sumq2[k] {
                    let scale = sumqx[k] / sumq2[k];
                    best_score = scale * sumqx[k];
                    best = Some((i1, i2, k, scale));
                }
            }
        }
    }
    best
}

/// Encodes a block with llama.cpp's IQ1_M quantizer (`quantize_row_iq1_m_impl`; weights from
/// the importances, else `x²`).
fn quantize_iq1m(x: &[f32], importance: Option<&[f32]>, out: &mut [u8]) {
    out.fill(0);
    let grid = Grid::of(GridKind::Iq1S);
    let sigma2 = 2.0 * sum_squares(x) / 256.0;
    let weights = |ib: usize| -> [f32; 16] {
        let xb = &x[16 * ib..16 * ib + 16];
        std::array::from_fn(|i| match importance {
            Some(imp) => imp[16 * ib + i] * (sigma2 + xb[i] * xb[i]).sqrt(),
            None => xb[i] * xb[i],
        })
    };
    let (mut scales, mut shifts, mut max_scale) = ([0.0f32; 16], [0usize; 16], 0.0f32);
    for ib in 0..16 {
        let xb = &x[16 * ib..16 * ib + 16];
        let w = weights(ib);
        if max_magnitude(xb) < GROUP_MAX_EPS_IQ1_M {
            continue;
        }
        let order = ascending(xb);
        let Some((i1, i2, mut shift, mut scale)) = best_split(xb, &w, &order) else {
            continue;
        };
        // A negative scale: the mirrored levels with both shifts swapped fit as well.
        let levels = split_levels(&order, i1, i2, scale < 0.0);
        if scale < 0.0 {
            scale = -scale;
            shift = 3 - shift;
        }
        let (index, scale) = place_runs(grid, &levels, xb, &w, scale, |k| run_levels(shift, k));
        out[2 * ib] = index[0] as u8;
        out[2 * ib + 1] = index[1] as u8;
        out[32 + ib] = (index[0] >> 8) as u8 | ((index[1] >> 8) as u8) << 4;
        scales[ib] = scale;
        shifts[ib] = shift;
        max_scale = if max_scale > scale { max_scale } else { scale };
    }
    if max_scale == 0.0 {
        return;
    }
    // The group scales' codes, then the super-scale refitted to the values as coded (every
    // group, all-zero ones too: they decode as entry 0 at the smallest scale).
    let mut d = max_scale / 15.0;
    let id = 1.0 / d;
    let mut sc = [0u16; 4];
    let mut acc = (0.0f32, 0.0f32);
    for ib in 0..16 {
        let l = nearest_int(0.5 * (id * scales[ib] - 1.0)).clamp(0, 7);
        sc[ib / 4] |= (l as u16) << (3 * (ib % 4));
        out[32 + ib] |= [0x00, 0x80, 0x08, 0x88][shifts[ib]];
        let qh = usize::from(out[32 + ib]);
        let index = [
            u16::from(out[2 * ib]) | ((qh << 8) & 0x700) as u16,
            u16::from(out[2 * ib + 1]) | ((qh << 4) & 0x700) as u16,
        ];
        let xb = &x[16 * ib..16 * ib + 16];
        let mult = (2 * l + 1) as f32;
        let xx = |k| run_levels(shifts[ib], k);
        accumulate(&mut acc, grid, &index, xb, &weights(ib), xx, mult);
    }
    if acc.1 > 0.0 {
        d = acc.0 / acc.1;
    }
    // llama.cpp's adjustment: the stored scale is a little larger than the fit's.
    let bits = half::f16::from_f32(d * 1.1125).to_bits();
    sc[0] |= (bits & 0x000f) << 12;
    sc[1] |= (bits & 0x00f0) << 8;
    sc[2] |= (bits & 0x0f00) << 4;
    sc[3] |= bits & 0xf000;
    for (k, v) in sc.iter().enumerate() {
        out[48 + 2 * k..50 + 2 * k].copy_from_slice(&v.to_le_bytes());
    }
}

lattice_quantizer!(Iq1M, quantize_iq1m);
