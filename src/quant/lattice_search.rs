//! Quantizing to the lattice i-quants: each run of values (4 for IQ3) must be one of the grid's
//! entries. A run is first rounded level by level; if that point of the full lattice is an
//! entry, it is taken, else the nearest entries of that point (precomputed, as llama.cpp's
//! `iq3xs_init_impl` does: every entry at the smallest few distances) are tried against the
//! values and the one with the least weighted error wins. The search over scales and the final
//! re-snapping follow llama.cpp's quantizers, so the bytes are the same.

use std::sync::OnceLock;

use super::iq_grids::{IQ3S_CODES, IQ3XXS_CODES};
use super::search::nearest_int;

/// Levels per value of the IQ3 lattices (values `2l + 1`, `l` in `0..8`).
const IQ3_LEVELS: i32 = 8;

/// A grid of runs of 4 values, and for every point of the full lattice (four 3-bit level indices,
/// first lowest) its entry, or its nearest entries.
pub(crate) struct Grid4 {
    /// Entries as values `2l + 1`.
    points: Vec<[i8; 4]>,
    /// Per lattice point: its entry, if it is one.
    entry: Vec<Option<u16>>,
    /// Per lattice point off the grid: the entries at its `nwant` smallest distances, nearest
    /// first (ties by index).
    near: Vec<Vec<u16>>,
}

impl Grid4 {
    fn build(codes: &[u16], nwant: usize) -> Grid4 {
        let value = |code: usize, i: usize| 2 * ((code >> (3 * i)) & 7) as i32 + 1;
        let points: Vec<[i8; 4]> = codes
            .iter()
            .map(|&c| std::array::from_fn(|i| value(c as usize, i) as i8))
            .collect();
        let mut entry = vec![None; 1 << 12];
        for (i, &c) in codes.iter().enumerate() {
            entry[c as usize] = Some(i as u16);
        }
        let near = (0..1 << 12)
            .map(|p: usize| {
                if entry[p].is_some() {
                    return Vec::new();
                }
                let mut by_distance: Vec<(i32, u16)> = points
                    .iter()
                    .enumerate()
                    .map(|(j, g)| {
                        let d2 = (0..4).map(|k| (g[k] as i32 - value(p, k)).pow(2)).sum();
                        (d2, j as u16)
                    })
                    .collect();
                by_distance.sort_unstable();
                let (mut have, mut current) = (1, by_distance[0].0);
                let mut out = Vec::new();
                for &(d2, j) in &by_distance {
                    if d2 > current {
                        if have == nwant {
                            break;
                        }
                        current = d2;
                        have += 1;
                    }
                    out.push(j);
                }
                out
            })
            .collect();
        Grid4 {
            points,
            entry,
            near,
        }
    }

    /// IQ3_XXS's grid (256 entries, neighbours at the 2 smallest distances).
    pub(crate) fn iq3xxs() -> &'static Grid4 {
        static GRID: OnceLock<Grid4> = OnceLock::new();
        GRID.get_or_init(|| Grid4::build(&IQ3XXS_CODES, 2))
    }

    /// IQ3_S's grid (512 entries, neighbours at the 3 smallest distances).
    pub(crate) fn iq3s() -> &'static Grid4 {
        static GRID: OnceLock<Grid4> = OnceLock::new();
        GRID.get_or_init(|| Grid4::build(&IQ3S_CODES, 3))
    }

    /// The entry for 4 values at inverse scale `id` (`scale` its inverse, for the neighbour
    /// search, weighted by `w`), and its level indices.
    fn snap(&self, x: &[f32], w: &[f32], id: f32, scale: f32) -> (u16, [u8; 4], bool) {
        let mut u = 0usize;
        for (i, &v) in x.iter().enumerate().take(4) {
            let l = nearest_int(0.5 * (id * v - 1.0)).clamp(0, IQ3_LEVELS - 1);
            u |= (l as usize) << (3 * i);
        }
        if let Some(e) = self.entry[u] {
            return (e, self.levels(e), true);
        }
        let mut best = (f32::MAX, self.near[u][0]);
        for &j in &self.near[u] {
            let g = &self.points[j as usize];
            let mut d2 = 0.0f32;
            for i in 0..4 {
                let diff = scale * g[i] as f32 - x[i];
                d2 += w[i] * diff * diff;
            }
            if d2 < best.0 {
                best = (d2, j);
            }
        }
        (best.1, self.levels(best.1), false)
    }

    /// The level indices of entry `e`.
    fn levels(&self, e: u16) -> [u8; 4] {
        self.points[e as usize].map(|v| ((v - 1) / 2) as u8)
    }
}

/// How llama.cpp's two IQ3 quantizers search.
pub(crate) struct Iq3Search {
    /// Candidate inverse scales `(15 + 0.2 s) / max` for `s` in `-steps..=steps`.
    pub steps: i32,
    /// Whether a group counts as on the grid before any candidate improved the fit.
    pub start_on_grid: bool,
    /// Whether the final re-snap redoes every run, or only those that were off the grid.
    pub resnap_all: bool,
}

/// The fit of 32 non-negative values `x` (signs taken out) to a grid: its scale and each run of
/// 4's entry. `w` weighs the errors of the fit, `waux` (its square roots) those of the neighbour
/// search; `max` is the largest value.
pub(crate) fn fit_iq3(
    grid: &Grid4,
    x: &[f32; 32],
    w: &[f32; 32],
    waux: &[f32; 32],
    max: f32,
    how: &Iq3Search,
) -> (f32, [u16; 8]) {
    let sums = |levels: &[u8; 32]| {
        let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
        for i in 0..32 {
            let q = (2 * levels[i] as i32 + 1) as f32;
            sumqx += w[i] * x[i] * q;
            sumq2 += w[i] * q * q;
        }
        (sumqx, sumq2)
    };
    let top = (2 * IQ3_LEVELS - 1) as f32;
    let (mut best, mut scale) = (0.0f32, max / top);
    let mut entries = [0u16; 8];
    let mut on_grid = [how.start_on_grid; 8];
    for s in -how.steps..=how.steps {
        let id = (top + s as f32 * 0.2) / max;
        let this_scale = 1.0 / id;
        let mut levels = [0u8; 32];
        let (mut cand, mut cand_on) = ([0u16; 8], [true; 8]);
        for k in 0..8 {
            let run = 4 * k..4 * k + 4;
            let (e, l, on) = grid.snap(&x[run.clone()], &waux[run], id, this_scale);
            (cand[k], cand_on[k]) = (e, on);
            levels[4 * k..4 * k + 4].copy_from_slice(&l);
        }
        let (sumqx, sumq2) = sums(&levels);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            entries = cand;
            on_grid = cand_on;
        }
    }
    if on_grid.contains(&false) && scale > 0.0 {
        let id = 1.0 / scale;
        for k in 0..8 {
            if on_grid[k] && !how.resnap_all {
                continue;
            }
            let run = 4 * k..4 * k + 4;
            entries[k] = grid.snap(&x[run.clone()], &waux[run], id, scale).0;
        }
        let mut levels = [0u8; 32];
        for k in 0..8 {
            levels[4 * k..4 * k + 4].copy_from_slice(&grid.levels(entries[k]));
        }
        let (sumqx, sumq2) = sums(&levels);
        if sumq2 > 0.0 {
            scale = sumqx / sumq2;
        }
    }
    (scale, entries)
}

/// The 4-bit code of a group scale under super-scale `d` (`id` its inverse): `scale ≈ d (2l + 1)`.
pub(crate) fn iq3_scale_code(id: f32, scale: f32) -> u8 {
    nearest_int(0.5 * (id * scale - 1.0)).clamp(0, 15) as u8
}
