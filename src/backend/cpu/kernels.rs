//! CPU reference kernels: plain loops over f32, weights decoded block by block from the file.

use super::pool::Pool;
use crate::format::{RopeLayout, TensorView};
use crate::quant::dot_f32;
use crate::quant::int_dot::{self, CpuLevel, TILE};
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

/// `y = x · wᵀ` with `x` quantized to bytes ([`Q8Act`]) and integer dot products at `level`:
/// the fast path for quantized weights. Each weight block is unpacked once per [`TILE`] tokens.
pub fn matmul_q8(pool: &Pool, x: &Q8Act, w: &TensorView, level: CpuLevel) -> Vec<f32> {
    let (n, rb, t) = (w.rows(), w.row_bytes(), x.rows());
    debug_assert_eq!(x.cols, w.cols());
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

/// Weight rows per task: a few contiguous ranges per thread, so each thread streams long runs
/// of the weights (hardware prefetchers follow them) and tasks still balance the load.
fn rows_per_task(rows: usize, threads: usize) -> usize {
    const TASKS_PER_THREAD: usize = 2;
    rows.div_ceil(threads * TASKS_PER_THREAD).next_multiple_of(ROWS_PER_TASK)
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

/// In-place RMSNorm of one row, times `w`.
pub fn rms_norm(row: &mut [f32], w: &[f32], eps: f32) {
    let mean_sq = row.iter().map(|&v| v * v).sum::<f32>() / row.len() as f32;
    let scale = 1.0 / (mean_sq + eps).sqrt();
    row.iter_mut()
        .zip(w)
        .for_each(|(v, &g)| *v = *v * scale * g);
}

/// SiLU: `x * sigmoid(x)`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// Rotates each of the `heads` heads in `row` for position `pos`.
pub fn rope(row: &mut [f32], heads: usize, pos: usize, inv_freq: &[f32], layout: RopeLayout) {
    let hd = row.len() / heads;
    let half = hd / 2;
    for head in row.chunks_exact_mut(hd) {
        for (i, &f) in inv_freq.iter().enumerate().take(half) {
            let (sin, cos) = (pos as f32 * f).sin_cos();
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
