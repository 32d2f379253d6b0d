//! Scale searches shared by the K-quant quantizers: for a group of values, the scale (and
//! minimum) whose rounded integers reproduce the values with the least weighted squared error.
//! These follow the procedures of llama.cpp's quantizers — the reference ones, and those it
//! runs with an importance matrix — so files Ember writes have the same error as
//! llama-quantize's (in fact the same bytes).

use super::signed_absmax;

/// Round half to even, as llama.cpp's `nearest_int` does.
#[inline]
pub fn nearest_int(v: f32) -> i32 {
    v.round_ties_even() as i32
}

/// Values below this magnitude make a group all-zero.
pub const GROUP_MAX_EPS: f32 = 1e-15;

/// A group's error: weighted squared (or with `use_mad`, absolute) differences.
#[inline]
fn group_error(diff: f32, w: f32, use_mad: bool) -> f32 {
    w * if use_mad { diff.abs() } else { diff * diff }
}

/// Asymmetric search: integers in `0..=nmax` with `x ≈ scale * l - min`. Writes the integers to
/// `l` and returns `(scale, min)` (`min` >= 0). Tries `nstep + 1` candidate scales around
/// `nmax / (max - min)`, refitting scale and minimum by weighted least squares for each; the
/// error compared is squared, or absolute with `use_mad`.
#[allow(clippy::too_many_arguments)]
pub fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x.iter().copied().fold(f32::INFINITY, f32::min);
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum_w: f32 = weights.iter().sum();
    let sum_x: f32 = weights.iter().zip(x).map(|(w, v)| w * v).sum();
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.iter_mut().for_each(|v| *v = 0);
        return (0.0, -min);
    }
    let quant = |iscale: f32, min: f32, v: f32| nearest_int(iscale * (v - min)).clamp(0, nmax);
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let q = quant(iscale, min, x[i]);
        l[i] = q as u8;
        let diff = scale * q as f32 + min - x[i];
        best_error += group_error(diff, weights[i], use_mad);
    }
    let mut aux = vec![0u8; n];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let q = quant(iscale, min, x[i]);
            aux[i] = q as u8;
            let (w, q) = (weights[i], q as f32);
            sum_l += w * q;
            sum_l2 += w * q * q;
            sum_xl += w * q * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let err: f32 = (0..n)
                .map(|i| {
                    let diff = this_scale * aux[i] as f32 + this_min - x[i];
                    group_error(diff, weights[i], use_mad)
                })
                .sum();
            if err < best_error {
                l.copy_from_slice(&aux);
                best_error = err;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Symmetric search: integers in `-nmax..nmax` stored as `l + nmax`, `x ≈ scale * l`, weighted
/// by `weights` (by `x²` without). Returns the scale.
pub fn make_qx_quants(nmax: i32, x: &[f32], l: &mut [u8], weights: Option<&[f32]>) -> f32 {
    let max = signed_absmax(x);
    if max.abs() < GROUP_MAX_EPS {
        l.iter_mut().for_each(|v| *v = 0);
        return 0.0;
    }
    let fit = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for (i, &v) in x.iter().enumerate() {
            let q = nearest_int(iscale * v).clamp(-nmax, nmax - 1) as f32;
            let w = weights.map_or(v * v, |w| w[i]);
            sumlx += w * v * q;
            suml2 += w * q * q;
        }
        (sumlx, suml2)
    };
    let store = |iscale: f32, l: &mut [u8]| {
        for (o, &v) in l.iter_mut().zip(x) {
            *o = (nmax + nearest_int(iscale * v).clamp(-nmax, nmax - 1)) as u8;
        }
    };
    let iscale = -(nmax as f32) / max;
    let (sumlx, suml2) = fit(iscale);
    store(iscale, l);
    let mut scale = if suml2 > 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        let iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = fit(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            store(iscale, l);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Integers `q` of `x` (weights `weights`) with one shared scale, refined a coordinate at a time
/// (up to five sweeps): each integer moves to its best value given the others' fit, clamped to
/// `lo..=hi`, when that improves the least-squares fit `(Σ w·x·q)² / Σ w·q²`. llama.cpp's two
/// refinements differ only in when they skip a value: `qp` skips one unless the others' `Σ w·q²`
/// is positive, and keeps its integers in bytes (llama.cpp's `uint8_t L[]`: a negative integer,
/// which a value given a flipped sign can round to, reads back as 256 less than it is, while the
/// sums were taken with the integer itself). Returns the fitted scale.
fn refine_integers(
    x: &[f32],
    weights: impl Fn(usize) -> f32,
    q: &mut [i32],
    (lo, hi): (i32, i32),
    qp: bool,
) -> f32 {
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (i, &v) in x.iter().enumerate() {
        let (w, qi) = (weights(i), q[i] as f32);
        sumlx += w * v * qi;
        suml2 += w * qi * qi;
    }
    let store = |v: i32| if qp { i32::from(v as u8) } else { v };
    for v in q.iter_mut() {
        *v = store(*v);
    }
    for _ in 0..5 {
        let mut changed = false;
        for i in 0..x.len() {
            let (w, qi) = (weights(i), q[i] as f32);
            let mut slx = sumlx - w * x[i] * qi;
            let mut sl2 = suml2 - w * qi * qi;
            if slx <= 0.0 || (qp && sl2 <= 0.0) {
                continue;
            }
            let new = nearest_int(x[i] * sl2 / slx).clamp(lo, hi);
            if new != q[i] {
                let nf = new as f32;
                slx += w * x[i] * nf;
                sl2 += w * nf * nf;
                if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                    q[i] = store(new);
                    sumlx = slx;
                    suml2 = sl2;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// Positive values `x` (group scales or minimums) as integers `0..=nmax` times one scale,
/// weighted by `weights`; a few candidate scales, then coordinate-wise refinement of the
/// integers. Writes them to `l` and returns the scale.
pub fn make_qp_quants(nmax: i32, x: &[f32], l: &mut [u8], weights: &[f32]) -> f32 {
    let max = x.iter().copied().fold(0.0f32, f32::max);
    if max < GROUP_MAX_EPS {
        l.iter_mut().for_each(|v| *v = 0);
        return 0.0;
    }
    let mse = |iscale: f32, cap: bool| -> f32 {
        let scale = 1.0 / iscale;
        x.iter()
            .zip(weights)
            .map(|(&v, &w)| {
                let q = nearest_int(iscale * v);
                // (The first, uncapped, integers are stored in bytes before the error is taken.)
                let q = if cap { q.min(nmax) } else { i32::from(q as u8) };
                let diff = v - scale * q as f32;
                w * diff * diff
            })
            .sum()
    };
    let mut iscale = nmax as f32 / max;
    let mut best = mse(iscale, false);
    for is in -4..=4 {
        if is == 0 {
            continue;
        }
        let candidate = (0.1 * is as f32 + nmax as f32) / max;
        let e = mse(candidate, true);
        if e < best {
            best = e;
            iscale = candidate;
        }
    }
    let mut q: Vec<i32> = x
        .iter()
        .map(|&v| nearest_int(iscale * v).min(nmax))
        .collect();
    let scale = refine_integers(x, |i| weights[i], &mut q, (i32::MIN, nmax), true);
    for (o, &v) in l.iter_mut().zip(&q) {
        *o = v as u8;
    }
    scale
}

/// Q3_K's reference search: integers in `-nmax..nmax` (stored as `l + nmax`) weighted by `x²`,
/// refined coordinate-wise from the max-based scale. Returns the scale.
pub fn make_q3_quants(nmax: i32, x: &[f32], l: &mut [u8]) -> f32 {
    let max = signed_absmax(x);
    if max.abs() < GROUP_MAX_EPS {
        l.iter_mut().for_each(|v| *v = 0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut q: Vec<i32> = x
        .iter()
        .map(|&v| nearest_int(iscale * v).clamp(-nmax, nmax - 1))
        .collect();
    let scale = refine_integers(x, |i| x[i] * x[i], &mut q, (-nmax, nmax - 1), false);
    for (o, &v) in l.iter_mut().zip(&q) {
        *o = (v + nmax) as u8;
    }
    scale
}

/// The index of the level of `levels` (ascending) nearest to `v` (ties to the lower).
pub fn best_index(levels: &[i8], v: f32) -> usize {
    let n = levels.len();
    if v <= levels[0] as f32 {
        return 0;
    }
    if v >= levels[n - 1] as f32 {
        return n - 1;
    }
    let (mut lo, mut hi) = (0, n - 1);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if v < levels[mid] as f32 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    if v - (levels[hi - 1] as f32) < (levels[hi] as f32) - v {
        hi - 1
    } else {
        hi
    }
}
