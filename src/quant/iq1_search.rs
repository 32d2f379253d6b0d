//! Quantizing to IQ1_S and IQ1_M, as llama.cpp's quantizers do. With three levels (-1, 0, 1,
//! shifted by ±1/8) a group's best split is found exactly: its values sorted, every pair of
//! boundaries is scored from prefix sums. Each run of 8 levels is then snapped to IQ1_S's grid
//! (the nearest entries of an off-grid point, compared by weighted error), and the scale refitted
//! if any run moved.

use super::lattice_search::Grid;

/// Level values with the shift `+1/8`.
pub(crate) const PLUS: [f32; 3] = [-1.0 + 0.125, 0.125, 1.0 + 0.125];
/// Level values with the shift `-1/8`.
pub(crate) const MINUS: [f32; 3] = [-1.0 - 0.125, -0.125, 1.0 - 0.125];

/// Groups whose largest magnitude is below this are all zero (llama.cpp's
/// `GROUP_MAX_EPS_IQ1_S`; IQ1_M's is larger).
pub(crate) const GROUP_MAX_EPS_IQ1_S: f32 = 1e-12;

/// The largest magnitude of `xb` (llama.cpp's `MAX` fold of `fabsf`).
pub(crate) fn max_magnitude(xb: &[f32]) -> f32 {
    xb[1..]
        .iter()
        .fold(xb[0].abs(), |m, v| if m > v.abs() { m } else { v.abs() })
}

/// The indices of `xb` in ascending order of value, equal values in index order: llama.cpp
/// sorts with the C library's `qsort`, which in glibc is a stable merge sort for arrays this
/// small, and any stable sort gives the same order.
pub(crate) fn ascending(xb: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..xb.len()).collect();
    order.sort_by(|&a, &b| {
        xb[a]
            .partial_cmp(&xb[b])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    order
}

/// Levels of a split: the `i1` smallest values at level 0, those up to `i2` at 1, the rest at 2;
/// `flip` mirrors them (for a negative scale).
pub(crate) fn split_levels(order: &[usize], i1: usize, i2: usize, flip: bool) -> [u8; 32] {
    let mut levels = [0u8; 32];
    for (j, &i) in order.iter().enumerate() {
        let l = if j < i1 {
            0
        } else if j < i2 {
            1
        } else {
            2
        };
        levels[i] = if flip { 2 - l } else { l };
    }
    levels
}

/// Places a group's runs of 8 on the grid (see [`snap`]; run `k`'s level values `xx(k)`) and,
/// if any run moved, refits the scale to the entries. Returns the entries and the scale.
pub(crate) fn place_runs<'a>(
    grid: &Grid,
    levels: &[u8; 32],
    xb: &[f32],
    w: &[f32],
    mut scale: f32,
    xx: impl Fn(usize) -> &'a [f32; 3] + Copy,
) -> ([u16; 4], f32) {
    let mut index = [0u16; 4];
    let mut all_on_grid = true;
    for (k, e) in index.iter_mut().enumerate().take(xb.len() / 8) {
        let r = 8 * k..8 * k + 8;
        let on;
        (*e, on) = snap(
            grid,
            &levels[r.clone()],
            &xb[r.clone()],
            &w[r],
            scale,
            xx(k),
        );
        all_on_grid &= on;
    }
    if !all_on_grid {
        let mut acc = (0.0, 0.0);
        accumulate(&mut acc, grid, &index[..xb.len() / 8], xb, w, xx, 1.0);
        if acc.0 > 0.0 && acc.1 > 0.0 {
            scale = acc.0 / acc.1;
        }
    }
    (index, scale)
}

/// The grid entry for a run of 8 values `xb` (weights `w`) whose levels are `levels`: that point
/// if it is an entry, else of its nearest entries the one closest to the values at `scale` with
/// level values `xx`. Also says whether the point was on the grid.
fn snap(
    grid: &Grid,
    levels: &[u8],
    xb: &[f32],
    w: &[f32],
    scale: f32,
    xx: &[f32; 3],
) -> (u16, bool) {
    let near = match grid.lookup(levels) {
        Ok(e) => return (e, true),
        Err(near) => near,
    };
    // (llama.cpp would scan the whole grid if no neighbour scored below f32::MAX, which only
    // non-finite values cause; the first neighbour stands in for that.)
    let mut best = (f32::MAX, near[0]);
    for &j in near {
        let l = grid.levels(j);
        let mut d2 = 0.0f32;
        for i in 0..8 {
            let diff = scale * xx[l[i] as usize] - xb[i];
            d2 += w[i] * diff * diff;
        }
        if d2 < best.0 {
            best = (d2, j);
        }
    }
    (best.1, false)
}

/// Adds to `acc` = `(Σ w q x, Σ w q²)` the terms of a group's values `xb` (weights `w`) for its
/// runs' entries `index`, run `k`'s level values `xx(k)` times `mult`, one by one in llama.cpp's
/// order (its sums run across groups, so the order of every addition matters).
pub(crate) fn accumulate<'a>(
    acc: &mut (f32, f32),
    grid: &Grid,
    index: &[u16],
    xb: &[f32],
    w: &[f32],
    xx: impl Fn(usize) -> &'a [f32; 3],
    mult: f32,
) {
    for (k, &e) in index.iter().enumerate() {
        let l = grid.levels(e);
        for j in 0..8 {
            let (wj, q) = (w[8 * k + j], xx(k)[l[j] as usize] * mult);
            acc.0 += wj * q * xb[8 * k + j];
            acc.1 += wj * q * q;
        }
    }
}
