//! Quantizing to the lattice i-quants: each run of values (4 for IQ3, 8 for IQ2) must be one of
//! the grid's entries. A run is first rounded level by level; if that point of the full lattice
//! is an entry, it is taken, else the nearest entries of that point (precomputed, as llama.cpp's
//! `iq2xs_init_impl` and `iq3xs_init_impl` do: every entry at the smallest few distances) are
//! tried against the values and the one with the least weighted error wins. The search over
//! scales and the final re-snapping follow llama.cpp's quantizers, so the bytes are the same.

use std::sync::OnceLock;

use super::iq_grids::{
    IQ1S_CODES, IQ2S_CODES, IQ2XS_CODES, IQ2XXS_CODES, IQ3S_CODES, IQ3XXS_CODES,
};
use super::search::{make_qp_quants, nearest_int};
use super::{put_f16, sum_squares};

/// The lattice grids, as llama.cpp's quantizers search them: entries of 4 values from 8 levels
/// (IQ3) or of 8 from 3 (IQ2, IQ1), each off-grid point's nearest entries kept at its 2
/// smallest distances (3 for IQ3_S and IQ1, only the smallest for IQ2_S).
#[derive(Clone, Copy)]
pub(crate) enum GridKind {
    /// IQ3_XXS's 256 entries.
    Iq3Xxs,
    /// IQ3_S's 512 entries.
    Iq3S,
    /// IQ2_XXS's 256 entries.
    Iq2Xxs,
    /// IQ2_XS's 512 entries.
    Iq2Xs,
    /// IQ2_S's 1024 entries.
    Iq2S,
    /// IQ1_S's 2048 entries (IQ1_M's too).
    Iq1S,
}

/// A grid of runs of values `2l + 1`, and for every point of the full lattice the quantizers can
/// round to (a level index per value, packed into a code, first lowest) its entry, or its
/// nearest entries.
pub(crate) struct Grid {
    /// Values per entry.
    run: usize,
    /// Bits per level index in a code.
    bits: u32,
    /// Levels the quantizers round to (indices `0..reach`).
    reach: i32,
    /// Entries as values `2l + 1` (the first `run` of each).
    points: Vec<[i8; 8]>,
    /// Per lattice point: its entry, if it is one.
    entry: Vec<Option<u16>>,
    /// Per reachable lattice point off the grid: the entries at its `nwant` smallest distances,
    /// nearest first (ties by index).
    near: Vec<Vec<u16>>,
}

impl Grid {
    fn build(codes: &[u16], run: usize, bits: u32, reach: i32, nwant: usize) -> Grid {
        let mask = (1usize << bits) - 1;
        let level = |code: usize, i: usize| (code >> (bits as usize * i)) & mask;
        let points: Vec<[i8; 8]> = codes
            .iter()
            .map(|&c| std::array::from_fn(|i| (2 * level(c as usize, i) + 1) as i8))
            .collect();
        let size = 1usize << (bits as usize * run);
        let mut entry = vec![None; size];
        for (i, &c) in codes.iter().enumerate() {
            entry[c as usize] = Some(i as u16);
        }
        let near = (0..size)
            .map(|p: usize| {
                if entry[p].is_some() || (0..run).any(|k| level(p, k) >= reach as usize) {
                    return Vec::new();
                }
                let mut by_distance: Vec<(i32, u16)> = points
                    .iter()
                    .enumerate()
                    .map(|(j, g)| {
                        let d2 = (0..run)
                            .map(|k| (g[k] as i32 - (2 * level(p, k) + 1) as i32).pow(2))
                            .sum();
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
        Grid {
            run,
            bits,
            reach,
            points,
            entry,
            near,
        }
    }

    /// The grid of `kind`, built on first use.
    pub(crate) fn of(kind: GridKind) -> &'static Grid {
        static GRIDS: [OnceLock<Grid>; 6] = [const { OnceLock::new() }; 6];
        GRIDS[kind as usize].get_or_init(|| {
            // (codes, values per entry, bits per level, levels rounded to, distances kept)
            let (codes, run, bits, reach, nwant): (&[u16], _, _, _, _) = match kind {
                GridKind::Iq3Xxs => (&IQ3XXS_CODES, 4, 3, 8, 2),
                GridKind::Iq3S => (&IQ3S_CODES, 4, 3, 8, 3),
                GridKind::Iq2Xxs => (&IQ2XXS_CODES, 8, 2, 3, 2),
                GridKind::Iq2Xs => (&IQ2XS_CODES, 8, 2, 3, 2),
                GridKind::Iq2S => (&IQ2S_CODES, 8, 2, 3, 1),
                GridKind::Iq1S => (&IQ1S_CODES, 8, 2, 3, 3),
            };
            Grid::build(codes, run, bits, reach, nwant)
        })
    }

    /// The entry whose level indices are `levels` (one run), or if there is none the entries
    /// nearest to that point.
    pub(crate) fn lookup(&self, levels: &[u8]) -> Result<u16, &[u16]> {
        let u = levels
            .iter()
            .take(self.run)
            .enumerate()
            .fold(0usize, |u, (i, &l)| {
                u | (l as usize) << (self.bits as usize * i)
            });
        self.entry[u].ok_or(&self.near[u][..])
    }

    /// The largest value `2l + 1` of the levels the quantizers round to.
    fn top(&self) -> f32 {
        (2 * self.reach - 1) as f32
    }

    /// The entry for one run of values at inverse scale `id` (`scale` its inverse, for the
    /// neighbour search, weighted by `w`), its level indices, and whether the rounded point was
    /// an entry itself.
    fn snap(&self, x: &[f32], w: &[f32], id: f32, scale: f32) -> (u16, [u8; 8], bool) {
        let mut levels = [0u8; 8];
        for (l, &v) in levels.iter_mut().zip(x).take(self.run) {
            *l = nearest_int(0.5 * (id * v - 1.0)).clamp(0, self.reach - 1) as u8;
        }
        let near = match self.lookup(&levels) {
            Ok(e) => return (e, self.levels(e), true),
            Err(near) => near,
        };
        let mut best = (f32::MAX, near[0]);
        for &j in near {
            let g = &self.points[j as usize];
            let mut d2 = 0.0f32;
            for i in 0..self.run {
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
    pub(crate) fn levels(&self, e: u16) -> [u8; 8] {
        self.points[e as usize].map(|v| ((v - 1) / 2) as u8)
    }
}

/// Which runs the final re-snap (at the best scale found) redoes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resnap {
    /// Those off the grid, if any is.
    OffGrid,
    /// All of them, if any is off the grid.
    AllIfAnyOff,
    /// All of them, always.
    Always,
}

/// How one of llama.cpp's lattice quantizers searches.
pub(crate) struct Search {
    /// Candidate inverse scales `(top + step s) / base` for `s` in `-steps..=steps`.
    pub step: f32,
    /// See `step`.
    pub steps: i32,
    /// Whether a run counts as on the grid before any candidate improved the fit.
    pub start_on_grid: bool,
    /// The final re-snap.
    pub resnap: Resnap,
}

/// The scale search of llama.cpp's IQ2_XS and IQ2_S quantizers.
pub(crate) const IQ2_SEARCH: Search = Search {
    step: 0.1,
    steps: 9,
    start_on_grid: true,
    resnap: Resnap::OffGrid,
};

/// The fit of non-negative values `x` (signs taken out; 16 or 32 of them) to a grid: its scale
/// and each run's entry. `w` weighs the errors of the fit, `waux` (its square roots) those of the
/// neighbour search; candidates are scaled from `base` (the largest value, or a first fit's
/// effective maximum), and `scale` is the fit kept if none of them improves on nothing.
pub(crate) fn fit(
    grid: &Grid,
    x: &[f32],
    w: &[f32],
    waux: &[f32],
    base: f32,
    mut scale: f32,
    how: &Search,
) -> (f32, [u16; 8]) {
    let (n, run) = (x.len(), grid.run);
    let sums = |levels: &[u8; 32]| {
        let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
        for i in 0..n {
            let q = (2 * levels[i] as i32 + 1) as f32;
            sumqx += w[i] * x[i] * q;
            sumq2 += w[i] * q * q;
        }
        (sumqx, sumq2)
    };
    let snap_all = |id: f32, scale: f32, entries: &mut [u16; 8], on: &mut [bool; 8]| {
        let mut levels = [0u8; 32];
        for k in 0..n / run {
            let r = run * k..run * k + run;
            let (e, l, on_grid) = grid.snap(&x[r.clone()], &waux[r.clone()], id, scale);
            (entries[k], on[k]) = (e, on_grid);
            levels[r].copy_from_slice(&l[..run]);
        }
        levels
    };
    let mut best = 0.0f32;
    let mut entries = [0u16; 8];
    let mut on_grid = [how.start_on_grid; 8];
    for s in -how.steps..=how.steps {
        let id = (grid.top() + s as f32 * how.step) / base;
        let (mut cand, mut cand_on) = ([0u16; 8], [true; 8]);
        let levels = snap_all(id, 1.0 / id, &mut cand, &mut cand_on);
        let (sumqx, sumq2) = sums(&levels);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            entries = cand;
            on_grid = cand_on;
        }
    }
    let runs = n / run;
    let resnap = match how.resnap {
        Resnap::Always => true,
        _ => on_grid[..runs].contains(&false),
    };
    if resnap && scale > 0.0 {
        let id = 1.0 / scale;
        for k in 0..runs {
            if on_grid[k] && how.resnap == Resnap::OffGrid {
                continue;
            }
            let r = run * k..run * k + run;
            entries[k] = grid.snap(&x[r.clone()], &waux[r], id, scale).0;
        }
        let mut levels = [0u8; 32];
        for k in 0..runs {
            levels[run * k..run * k + run].copy_from_slice(&grid.levels(entries[k])[..run]);
        }
        let (sumqx, sumq2) = sums(&levels);
        if sumq2 > 0.0 {
            scale = sumqx / sumq2;
        }
    }
    (scale, entries)
}

/// One of llama.cpp's lattice quantizers, as far as they differ.
pub(crate) struct Lattice {
    /// The grid.
    pub grid: GridKind,
    /// The scale search.
    pub search: Search,
    /// Values per group (each group has its own scale): 32 or 16.
    pub group: usize,
    /// Whether each 8 values store seven sign bits, the eighth being their parity.
    pub parity: bool,
    /// Groups whose largest magnitude is below this are all zero.
    pub eps: f32,
    /// Whether the search starts from a fit of the magnitudes to integers (IQ2_XXS) rather than
    /// from the largest one.
    pub integer_start: bool,
    /// The row variance `σ²` that weighs the importances is this times the block's mean square.
    pub sigma2_factor: f32,
    /// Without importances, each value weighs `x² + this · σ²`.
    pub plain_sigma2: f32,
}

/// A group's fit: its scale, its runs' grid entries, and the sign bits of each 8 values (seven
/// of them if the format keeps parity).
pub(crate) struct GroupFit {
    /// The group's scale.
    pub scale: f32,
    /// Each run's grid entry.
    pub entries: [u16; 8],
    /// Each 8 values' sign bits.
    pub signs: [u8; 4],
}

/// A block's fit: each group's (`None` for all-zero groups), the super-scale `d` (before any
/// format's adjustment; 0 if the block is all zero) and each group scale's 4-bit code under it.
pub(crate) struct BlockFit {
    /// Per group.
    pub groups: Vec<Option<GroupFit>>,
    /// The super-scale.
    pub d: f32,
    /// Per group: its scale's code, `scale ≈ d (2l + 1)`.
    pub codes: Vec<u8>,
}

impl BlockFit {
    /// The group scales' codes two to a byte, the even group's in the low nibble.
    pub(crate) fn code_pairs(&self) -> Vec<u8> {
        self.codes.chunks(2).map(|c| c[0] | c[1] << 4).collect()
    }
}

impl Lattice {
    /// Clears `out` and fits a block into it as far as the formats share: the super-scale
    /// (times the format's `adjust`, llama.cpp's empirical factor) as the leading f16. `None`
    /// for an all-zero block, which stays all zero.
    pub(crate) fn fit_into(
        &self,
        x: &[f32],
        importance: Option<&[f32]>,
        adjust: f32,
        out: &mut [u8],
    ) -> Option<BlockFit> {
        out.fill(0);
        let fit = self.fit_block(x, importance);
        if fit.d == 0.0 {
            return None;
        }
        put_f16(out, 0, fit.d * adjust);
        Some(fit)
    }

    /// Fits a block of 256 values, weighted by `importance` where given.
    pub(crate) fn fit_block(&self, x: &[f32], importance: Option<&[f32]>) -> BlockFit {
        let sigma2 = self.sigma2_factor * sum_squares(x) / 256.0;
        let groups: Vec<Option<GroupFit>> = x
            .chunks_exact(self.group)
            .enumerate()
            .map(|(g, xb)| {
                let n = self.group;
                let mut w = [0.0f32; 32];
                for i in 0..n {
                    w[i] = match importance {
                        Some(imp) => imp[g * n + i] * (sigma2 + xb[i] * xb[i]).sqrt(),
                        None => self.plain_sigma2 * sigma2 + xb[i] * xb[i],
                    };
                }
                self.fit_group(xb, &w[..n])
            })
            .collect();
        let max_scale = groups
            .iter()
            .flatten()
            .fold(0.0f32, |m, f| if m > f.scale { m } else { f.scale });
        if max_scale == 0.0 {
            let codes = vec![0; groups.len()];
            return BlockFit {
                groups,
                d: 0.0,
                codes,
            };
        }
        let d = max_scale / 31.0;
        let id = 1.0 / d;
        let codes = groups
            .iter()
            .map(|f| scale_code(id, f.as_ref().map_or(0.0, |f| f.scale)))
            .collect();
        BlockFit { groups, d, codes }
    }

    /// Fits one group of values `xb` weighted by `w`.
    fn fit_group(&self, xb: &[f32], w: &[f32]) -> Option<GroupFit> {
        let n = xb.len();
        let waux: [f32; 32] = std::array::from_fn(|i| if i < n { w[i].sqrt() } else { 0.0 });
        let mut xval = [0.0f32; 32];
        let mut signs = [0u8; 4];
        for (k, s) in signs.iter_mut().take(n / 8).enumerate() {
            let run = 8 * k..8 * k + 8;
            for i in run.clone() {
                xval[i] = if xb[i] >= 0.0 { xb[i] } else { -xb[i] };
                if xb[i] < 0.0 {
                    *s |= 1 << (i - 8 * k);
                }
            }
            // Seven sign bits are stored, the eighth is their parity: with an odd count of
            // negatives, the value that matters least changes sign.
            if self.parity && s.count_ones() % 2 == 1 {
                let cost = |i: usize| w[i] * xb[i] * xb[i];
                let imin = run
                    .clone()
                    .fold(8 * k, |m, i| if cost(i) < cost(m) { i } else { m });
                xval[imin] = -xval[imin];
                *s ^= 1 << (imin - 8 * k);
            }
            if self.parity {
                *s &= 127;
            }
        }
        let xval = &xval[..n];
        let max = xval[1..]
            .iter()
            .fold(xval[0], |m, &v| if m > v { m } else { v });
        if max == 0.0 || max < self.eps {
            return None;
        }
        let grid = Grid::of(self.grid);
        let (base, start) = if self.integer_start {
            let mut l = [0u8; 32];
            let scale = make_qp_quants(grid.reach + 1, xval, &mut l[..n], w);
            let eff_max = scale * grid.reach as f32;
            if eff_max <= 0.0 {
                return None;
            }
            (eff_max, scale)
        } else {
            (max, max / grid.top())
        };
        let (mut scale, entries) = fit(grid, xval, w, &waux[..n], base, start, &self.search);
        if scale < 0.0 {
            scale = -scale;
            let keep = if self.parity { 127 } else { 255 };
            signs = signs.map(|s| !s & keep);
        }
        Some(GroupFit {
            scale,
            entries,
            signs,
        })
    }
}

/// The 4-bit code of a group scale under super-scale `d` (`id` its inverse): `scale ≈ d (2l + 1)`.
pub(crate) fn scale_code(id: f32, scale: f32) -> u8 {
    nearest_int(0.5 * (id * scale - 1.0)).clamp(0, 15) as u8
}

/// Implements [`Quantize`](super::Quantize) for a lattice format by its encoder
/// `fn(x, Option<importance>, out)`.
macro_rules! lattice_quantizer {
    ($t:ty, $encode:expr) => {
        impl $crate::quant::Quantize for $t {
            fn quantize_block(x: &[f32], out: &mut [u8]) {
                $encode(x, None, out)
            }

            fn quantize_block_weighted(x: &[f32], importance: &[f32], _: f32, out: &mut [u8]) {
                $encode(x, Some(importance), out)
            }
        }
    };
}
pub(crate) use lattice_quantizer;
