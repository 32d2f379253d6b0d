//! CPU reference kernels: plain loops over f32, weights decoded block by block from the file.

use std::mem::MaybeUninit;

use super::pool::Pool;
use crate::format::{Activation, RopeLayout, TensorView};
use crate::quant::dot_f32;
use crate::quant::int_dot::strips::Strips;
use crate::quant::int_dot::{self, CpuLevel, STRIP, TILE};
use crate::quant::q8_act::{Q8Act, Q8Row};

/// Weight rows handled by one parallel task.
const ROWS_PER_TASK: usize = 16;

/// `y = x · wᵀ` for `t` rows of `x`; `w` stays encoded. Returns `t` x `w.rows()` values.
///
/// One token: each weight row is dotted with `x` block by block. Several tokens (prefill): each
/// weight row is decoded once into a scratch row and reused for every token.
pub fn matmul(pool: &Pool, x: &[f32], t: usize, w: &TensorView) -> Vec<f32> {
    let (n, k, rb) = (w.rows(), w.cols(), w.row_bytes());
    debug_assert_eq!(x.len(), t * k);
    let bytes = w.bytes();
    // Computed feature-major ([n][t]) so each task writes one contiguous slice.
    let mut out_t = vec![0.0f32; n * t];
    pool.for_chunks(&mut out_t, ROWS_PER_TASK * t, |task, chunk| {
        let mut scratch = vec![0.0f32; if t > 1 { k } else { 0 }];
        for (j, outs) in chunk.chunks_exact_mut(t).enumerate() {
            let r = task * ROWS_PER_TASK + j;
            let row = &bytes[r * rb..(r + 1) * rb];
            if t == 1 {
                outs[0] = w.dtype.dot(row, x);
            } else {
                w.dtype.dequantize(row, &mut scratch);
                for (o, xr) in outs.iter_mut().zip(x.chunks_exact(k)) {
                    *o = dot_f32(&scratch, xr);
                }
            }
        }
    });
    token_major(out_t, n, t)
}

/// `y = x · wᵀ` with `x` quantized to bytes ([`Q8Act`](crate::quant::q8_act::Q8Act)) and integer dot products at `level`:
/// the fast path for quantized weights. Each weight block is unpacked once per [`TILE`] tokens.
pub fn matmul_q8(
    pool: &Pool,
    x: &Q8Act,
    w: &TensorView,
    strips: Option<&Strips>,
    level: CpuLevel,
) -> Vec<f32> {
    let (n, rb, t) = (w.rows(), w.row_bytes(), x.rows());
    debug_assert_eq!(x.cols, w.cols());
    if strips.is_some() || (t > 1 && int_dot::has_gemm(level)) {
        return gemm_q8(pool, x, w, strips, level);
    }
    let bytes = w.bytes();
    let rows: Vec<Q8Row> = (0..t).map(|i| x.row(i)).collect();
    let mut out_t = vec![0.0f32; n * t];
    let per_task = rows_per_task(n, pool.threads());
    pool.for_chunks(&mut out_t, per_task * t, |task, chunk| {
        for (j, outs) in chunk.chunks_exact_mut(t).enumerate() {
            let r = task * per_task + j;
            let row = &bytes[r * rb..(r + 1) * rb];
            for (xs, o) in rows.chunks(TILE).zip(outs.chunks_mut(TILE)) {
                int_dot::dot_rows(level, w.dtype, row, xs, o);
            }
        }
    });
    token_major(out_t, n, t)
}

/// One weight of [`gemm_many`]: its encoded view and, if repacked, its strips.
#[derive(Clone, Copy)]
pub struct StripWeight<'a> {
    /// The weight as in the file.
    pub view: &'a TensorView,
    /// Its strips, if repacked.
    pub strips: Option<&'a Strips>,
}

/// Strips of [`STRIP`] weight rows against every token — repacked strips (decode and prefill,
/// [`int_dot::gemm_repacked`]) or strips unpacked as they go (prefill, [`int_dot::gemm_strips`])
/// — a few contiguous ranges of strips per thread; rows past the last whole strip go through the
/// mat-vec kernel.
#[allow(
    clippy::expect_used,
    reason = "gemm_many returns one product per weight"
)]
fn gemm_q8(
    pool: &Pool,
    x: &Q8Act,
    w: &TensorView,
    repacked: Option<&Strips>,
    level: CpuLevel,
) -> Vec<f32> {
    let one = StripWeight {
        view: w,
        strips: repacked,
    };
    gemm_many(pool, x, &[one], level)
        .pop()
        .expect("one product")
}

/// [`gemm_q8`] for several weights sharing the activations `x` (q, k and v; gate and up): one
/// job on the pool for all of them, so the threads synchronise once.
pub fn gemm_many(pool: &Pool, x: &Q8Act, ws: &[StripWeight], level: CpuLevel) -> Vec<Vec<f32>> {
    let t = x.rows();
    // Not zeroed: every element is written below (whole strips by the tasks, the rows after the
    // last whole strip by the tail loop), and zeroing megabytes on this thread while the others
    // wait costs more than it seems in prefill.
    let mut outs: Vec<Vec<f32>> = ws
        .iter()
        .map(|w| Vec::with_capacity(w.view.rows() * t))
        .collect();
    let bases: Vec<OutPtr> = outs.iter_mut().map(|o| OutPtr(o.as_mut_ptr())).collect();
    let total: usize = ws.iter().map(|w| w.view.rows() / STRIP).sum();
    // At least four tasks per thread, so a thread that falls behind (a busy neighbour on a
    // shared host) is made up for; in prefill more, of ~2M multiply-adds each, so the last task
    // to finish is a small part of the job.
    let strip_macs = STRIP * x.cols * t;
    let per_task = total
        .div_ceil(4 * pool.threads())
        .min((1_usize << 21).div_ceil(strip_macs))
        .max(1);
    // (weight, first strip, strips) of every task.
    let jobs: Vec<(usize, usize, usize)> = ws
        .iter()
        .enumerate()
        .flat_map(|(i, w)| {
            let strips = w.view.rows() / STRIP;
            (0..strips)
                .step_by(per_task)
                .map(move |s0| (i, s0, per_task.min(strips - s0)))
        })
        .collect();
    pool.run(jobs.len(), &|task| {
        let (i, s0, count) = jobs[task];
        let (w, n) = (ws[i].view, ws[i].view.rows());
        // SAFETY: tasks own disjoint strips, i.e. disjoint columns of their weight's output;
        // the level is the backend's, which the CPU supports.
        unsafe {
            match ws[i].strips {
                Some(r) => int_dot::gemm_repacked(level, r, s0, count, x, bases[i].get(), n),
                None => int_dot::gemm_strips(
                    level,
                    w.dtype,
                    w.bytes(),
                    w.row_bytes(),
                    STRIP * s0,
                    count,
                    x,
                    bases[i].get(),
                    n,
                ),
            }
        };
    });
    let rows: Vec<Q8Row> = (0..t).map(|i| x.row(i)).collect();
    for (w, out) in ws.iter().zip(outs.iter_mut()) {
        let (n, rb, bytes) = (w.view.rows(), w.view.row_bytes(), w.view.bytes());
        for r in n / STRIP * STRIP..n {
            let row = &bytes[r * rb..(r + 1) * rb];
            for (i0, xs) in rows.chunks(TILE).enumerate() {
                let mut o = [0.0f32; TILE];
                int_dot::dot_rows(level, w.view.dtype, row, xs, &mut o[..xs.len()]);
                for (i, v) in o[..xs.len()].iter().enumerate() {
                    // SAFETY: inside the capacity (`t` rows of `n`).
                    unsafe { out.as_mut_ptr().add((TILE * i0 + i) * n + r).write(*v) };
                }
            }
        }
        // SAFETY: every one of the `n * t` elements has been written: columns of whole strips
        // by the pool's tasks, the rest just above.
        unsafe { out.set_len(n * t) };
    }
    outs
}

/// An output of [`gemm_many`], shared by tasks that write disjoint columns.
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint elements (see `gemm_many`).
unsafe impl Sync for OutPtr {}
impl OutPtr {
    fn get(&self) -> *mut f32 {
        self.0
    }
}

/// Weight rows per task: a few contiguous ranges per thread, so each thread streams long runs
/// of the weights (hardware prefetchers follow them) and tasks still balance the load.
fn rows_per_task(rows: usize, threads: usize) -> usize {
    const TASKS_PER_THREAD: usize = 2;
    rows.div_ceil(threads * TASKS_PER_THREAD)
        .next_multiple_of(ROWS_PER_TASK)
}

/// Transposes feature-major results (`n` features x `t` tokens) to token-major rows.
fn token_major(out_t: Vec<f32>, n: usize, t: usize) -> Vec<f32> {
    if t == 1 {
        return out_t;
    }
    let mut out = vec![0.0f32; n * t];
    for (r, col) in out_t.chunks_exact(t).enumerate() {
        for (i, &v) in col.iter().enumerate() {
            out[i * n + r] = v;
        }
    }
    out
}

/// RMSNorm of the row `src`, times `w`, written to `dst`.
pub fn rms_norm_to(src: &[f32], dst: &mut [MaybeUninit<f32>], w: &[f32], eps: f32) {
    let mean_sq = src.iter().map(|&v| v * v).sum::<f32>() / src.len() as f32;
    let scale = 1.0 / (mean_sq + eps).sqrt();
    for ((d, &v), &g) in dst.iter_mut().zip(src).zip(w) {
        d.write(v * scale * g);
    }
}

/// `dst[i] = act(gate[i]) * up[i]`, compiled for AVX2 where the CPU has it (8 lanes instead of
/// the baseline's 4).
pub fn act_mul_to(dst: &mut [MaybeUninit<f32>], gate: &[f32], up: &[f32], act: Activation) {
    #[cfg(target_arch = "x86_64")]
    if CpuLevel::Avx2.supported() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { act_mul_avx2(dst, gate, up, act) };
    }
    act_mul_portable(dst, gate, up, act)
}

/// [`act_mul_to`] compiled for AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn act_mul_avx2(dst: &mut [MaybeUninit<f32>], gate: &[f32], up: &[f32], act: Activation) {
    act_mul_portable(dst, gate, up, act)
}

#[inline(always)]
fn act_mul_portable(dst: &mut [MaybeUninit<f32>], gate: &[f32], up: &[f32], act: Activation) {
    // One loop per activation, so each vectorises.
    match act {
        Activation::Silu => {
            for ((d, &g), &u) in dst.iter_mut().zip(gate).zip(up) {
                d.write(silu(g) * u);
            }
        }
        Activation::GeluTanh => {
            for ((d, &g), &u) in dst.iter_mut().zip(gate).zip(up) {
                d.write(gelu_tanh(g) * u);
            }
        }
    }
}

/// GELU, tanh approximation: `x/2 · (1 + tanh(z))` with `z = √(2/π)(x + 0.044715x³)`, as
/// `x · sigmoid(2z)` (the same function) so that it needs one exponential.
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    const TWO_C: f32 = 2.0 * 0.797_884_6;
    x / (1.0 + exp(-TWO_C * (x + 0.044715 * x * x * x)))
}

/// `len` values computed on the pool, `chunk` at a time, with no zeroing first (a serial pass
/// over megabytes in prefill while the other threads wait): `fill(i, out)` writes every element
/// of chunk `i`.
pub fn par_collect(
    pool: &Pool,
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let mut v = Vec::with_capacity(len);
    pool.for_chunks(&mut v.spare_capacity_mut()[..len], chunk, fill);
    // SAFETY: the chunks cover `0..len`, and `fill` wrote every element of each.
    unsafe { v.set_len(len) };
    v
}

/// SiLU: `x * sigmoid(x)`.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// `e^x` without a call into libm, so loops over it vectorise: `2^n · e^r` with `n` the nearest
/// integer to `x·log2 e`, `r = x - n·ln 2` taken in two steps (Cody–Waite: `ln 2` split so that
/// `n·ln2_hi` is exact) and `e^r` (|r| ≤ 0.35) from its degree-7 Taylor series by Horner's rule,
/// multiplies and adds only (relative error ~1e-7, f32's precision). Results below 2^-126 flush
/// to about 2^-126; above f32's range they stay finite.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and removing 1.5·2^23 rounds to the nearest integer in plain f32 arithmetic.
    const ROUND: f32 = 12_582_912.0;
    /// `1 / k!` for k = 0..=7.
    const TAYLOR: [f32; 8] = [
        1.0,
        1.0,
        0.5,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5040.0,
    ];
    let x = x.clamp(-87.33, 88.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = TAYLOR[7];
    for &c in TAYLOR[..7].iter().rev() {
        p = p * r + c;
    }
    // SAFETY: `n` is a whole number in -126..=127 (from the clamp), so the conversion is exact;
    // unlike `as`, it needs no saturation checks, which keeps loops vectorised.
    let n = unsafe { n.to_int_unchecked::<i32>() };
    p * f32::from_bits(((n + 127) as u32) << 23)
}

/// Rotates each of the `heads` heads in `row` for position `pos`.
pub fn rope(row: &mut [f32], heads: usize, pos: usize, inv_freq: &[f32], layout: RopeLayout) {
    let hd = row.len() / heads;
    // One frequency per rotated pair; dimensions past the rotated ones stay as they are.
    let half = inv_freq.len().min(hd / 2);
    // The angles are the same for every head: one sin/cos per frequency.
    let angles: Vec<(f32, f32)> = inv_freq
        .iter()
        .take(half)
        .map(|&f| (pos as f32 * f).sin_cos())
        .collect();
    for head in row.chunks_exact_mut(hd) {
        for (i, &(sin, cos)) in angles.iter().enumerate() {
            let (a, b) = match layout {
                RopeLayout::Interleaved => (2 * i, 2 * i + 1),
                RopeLayout::Halves => (i, i + half),
            };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0 * cos - x1 * sin;
            head[b] = x0 * sin + x1 * cos;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_matches_libm_to_f32_precision() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.0437;
            let (got, want) = (super::exp(x), x.exp());
            // Below 2^-126 results flush to the smallest normal number.
            let tol = 4e-7 * want + f32::MIN_POSITIVE;
            assert!((got - want).abs() <= tol, "exp({x}) = {got}, libm {want}");
        }
        assert!(super::exp(-1000.0) <= 2.0 * f32::MIN_POSITIVE);
        assert!(super::exp(1000.0).is_finite());
    }

    #[test]
    fn activations_match_their_f64_definitions() {
        use crate::format::Activation;
        use std::mem::MaybeUninit;
        let xs: Vec<f32> = (-900..=900).map(|i| i as f32 * 0.0123 + 0.001).collect();
        let ups: Vec<f32> = xs.iter().map(|x| 1.0 - 0.37 * x).collect();
        for act in [Activation::Silu, Activation::GeluTanh] {
            let mut out = vec![MaybeUninit::uninit(); xs.len()];
            super::act_mul_to(&mut out, &xs, &ups, act);
            for ((o, &x), &u) in out.iter().zip(&xs).zip(&ups) {
                // SAFETY: act_mul_to wrote every element.
                let got = unsafe { o.assume_init() };
                let x64 = x as f64;
                let a = match act {
                    Activation::Silu => x64 / (1.0 + (-x64).exp()),
                    Activation::GeluTanh => {
                        let c = (2.0 / std::f64::consts::PI).sqrt();
                        0.5 * x64 * (1.0 + (c * (x64 + 0.044715 * x64.powi(3))).tanh())
                    }
                };
                let want = a * u as f64;
                assert!(
                    (got as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "{act:?}({x}) * {u} = {got}, want {want}"
                );
                assert!((act.apply(x) as f64 - a).abs() <= 1e-6 * (1.0 + a.abs()));
            }
        }
    }
}
