//! Activations quantized to signed bytes for integer dot products (the fast CPU path).
//!
//! Each run of 32 values gets one f32 scale `s = max|x| / 127` and bytes `q = round(x / s)`, as
//! llama.cpp's Q8_0 activations (the scale stays f32). That costs ~0.3% of each value, which on a
//! small model flips a few percent of near-tied next-token choices. So by default a second byte
//! holds the rounding residual in steps of `s / 256`: `x ≈ s · (q + lo / 256)`, about 15 bits.
//! Kernels dot both bytes with the same unpacked weights and combine the integer sums as
//! `256 · Σc·q + Σc·lo`, so the extra cost is one more byte product per weight byte, not a
//! second pass over the weights.
//!
//! The sums of every 16 and 32 activations (scale included) are kept, so formats with an offset
//! (`scale · code + offset`) need no second pass over the activations: `Σ offset·x = offset · Σx`.

/// Values per scale.
pub const Q8_BLOCK: usize = 32;

/// `rows` rows of `cols` activations as bytes, scales and sums.
#[derive(Clone, Debug, Default)]
pub struct Q8Act {
    /// The bytes, row-major.
    pub qs: Vec<i8>,
    /// The residual bytes (empty for plain 8-bit activations).
    pub lo: Vec<i8>,
    /// One scale per 32 bytes: the value of one unit of the run's integer sums (`s`, or `s / 256`
    /// with residual bytes).
    pub d: Vec<f32>,
    /// The sum of every 16 activations, as quantized.
    pub s16: Vec<f32>,
    /// The sum of every 32 activations, as quantized.
    pub s32: Vec<f32>,
    /// Row width (a multiple of 32).
    pub cols: usize,
    /// The whole tiles of [`TILE_ROWS`] rows again, interleaved run by run (see
    /// [`Q8Act::tile_run`]); empty with fewer rows.
    pub tiles: Vec<u8>,
}

/// Rows per tile of [`Q8Act::tiles`]: the token tile of the x86 strip kernels.
pub const TILE_ROWS: usize = 8;

/// One row of a [`Q8Act`].
#[derive(Clone, Copy, Debug)]
pub struct Q8Row<'a> {
    /// `cols` bytes.
    pub qs: &'a [i8],
    /// `cols` residual bytes, or none.
    pub lo: &'a [i8],
    /// `cols / 32` scales.
    pub d: &'a [f32],
    /// `cols / 16` sums.
    pub s16: &'a [f32],
    /// `cols / 32` sums.
    pub s32: &'a [f32],
}

impl Q8Row<'_> {
    /// Whether the row has residual bytes.
    pub fn wide(&self) -> bool {
        !self.lo.is_empty()
    }

    /// The value the kernels see for element `i`.
    pub fn value(&self, i: usize) -> f32 {
        let units = if self.wide() {
            256 * i32::from(self.qs[i]) + i32::from(self.lo[i])
        } else {
            i32::from(self.qs[i])
        };
        self.d[i / Q8_BLOCK] * units as f32
    }
}

impl Q8Act {
    /// Quantizes `x` (`rows` rows of `cols` values; `cols` a multiple of 32) into `self`,
    /// reusing its buffers; `wide` adds the residual bytes.
    pub fn quantize_into(&mut self, x: &[f32], cols: usize, wide: bool) {
        self.quantize_with(x, cols, wide, &|tasks, f| (0..tasks).for_each(f));
    }

    /// [`Q8Act::quantize_into`] with the work split into tasks run by `run(tasks, task)` — a
    /// thread pool's, so a long prompt's rows are quantized (and interleaved) in parallel.
    pub fn quantize_with(&mut self, x: &[f32], cols: usize, wide: bool, run: &ParallelFor<'_>) {
        assert!(
            cols.is_multiple_of(Q8_BLOCK) && x.len().is_multiple_of(cols.max(1)),
            "activation rows of {cols} are not whole blocks of 32"
        );
        let n = x.len();
        self.cols = cols;
        self.qs.resize(n, 0);
        self.lo.resize(if wide { n } else { 0 }, 0);
        self.d.resize(n / Q8_BLOCK, 0.0);
        self.s16.resize(n / 16, 0.0);
        self.s32.resize(n / Q8_BLOCK, 0.0);
        let rows = self.rows();
        let (tiles, runs) = (rows / TILE_ROWS, cols / Q8_BLOCK);
        let stride = Self::tile_run_bytes(wide);
        self.tiles.resize(tiles * runs * stride, 0);
        // A few rows per task, whole tiles each: a task interleaves the tiles it has just
        // quantized, while they are in its cache.
        let per_task = rows.div_ceil(8).next_multiple_of(TILE_ROWS);
        let out = RowsOut {
            qs: self.qs.as_mut_ptr(),
            lo: wide.then_some(self.lo.as_mut_ptr()),
            d: self.d.as_mut_ptr(),
            s16: self.s16.as_mut_ptr(),
            s32: self.s32.as_mut_ptr(),
            tiles: self.tiles.as_mut_ptr(),
        };
        // Captured whole (a closure would otherwise capture the raw-pointer fields one by one).
        let out = &out;
        run(rows.div_ceil(per_task), &|task| {
            let r = task * per_task..((task + 1) * per_task).min(rows);
            let (v, b) = (r.start * cols..r.end * cols, r.start * cols / Q8_BLOCK);
            let blocks = r.len() * cols / Q8_BLOCK;
            // SAFETY: tasks cover disjoint rows (and so disjoint tiles), inside the buffers
            // sized above, which stay borrowed (through `self`) until `run` returns.
            unsafe {
                quantize_blocks(
                    &x[v.clone()],
                    std::slice::from_raw_parts_mut(out.qs.add(v.start), v.len()),
                    out.lo
                        .map(|lo| std::slice::from_raw_parts_mut(lo.add(v.start), v.len())),
                    std::slice::from_raw_parts_mut(out.d.add(b), blocks),
                    std::slice::from_raw_parts_mut(out.s16.add(2 * b), 2 * blocks),
                    std::slice::from_raw_parts_mut(out.s32.add(b), blocks),
                );
                for tile in r.start / TILE_ROWS..(r.end / TILE_ROWS).min(tiles) {
                    out.interleave(tile, runs);
                }
            }
        });
    }

    /// Bytes of one run of one tile in [`Q8Act::tiles`]: the [`TILE_ROWS`] rows' 32 bytes each,
    /// their residual bytes (if any), then their `d`, `s32` and `s16` (two each) as f32.
    pub fn tile_run_bytes(wide: bool) -> usize {
        let bytes = TILE_ROWS * Q8_BLOCK * if wide { 2 } else { 1 };
        bytes + TILE_ROWS * 4 * 4
    }

    /// Where run `run` of tile `tile` starts in [`Q8Act::tiles`]. A strip kernel reads a whole
    /// tile's run from one pointer and fixed offsets, instead of computing eight rows' addresses
    /// of each of five arrays for every run.
    pub fn tile_run(&self, tile: usize, run: usize) -> usize {
        (tile * self.cols / Q8_BLOCK + run) * Self::tile_run_bytes(!self.lo.is_empty())
    }

    /// Quantizes `x` into a new value.
    pub fn quantize(x: &[f32], cols: usize, wide: bool) -> Q8Act {
        let mut a = Q8Act::default();
        a.quantize_into(x, cols, wide);
        a
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.qs.len() / self.cols.max(1)
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> Q8Row<'_> {
        let c = self.cols;
        let lo = if self.lo.is_empty() {
            &[][..]
        } else {
            &self.lo[r * c..(r + 1) * c]
        };
        Q8Row {
            qs: &self.qs[r * c..(r + 1) * c],
            lo,
            d: &self.d[r * c / Q8_BLOCK..(r + 1) * c / Q8_BLOCK],
            s16: &self.s16[r * c / 16..(r + 1) * c / 16],
            s32: &self.s32[r * c / Q8_BLOCK..(r + 1) * c / Q8_BLOCK],
        }
    }
}

/// A parallel for: `run(tasks, task)` calls `task(0) .. task(tasks - 1)`, in any order and on
/// any threads, and returns when all are done.
pub type ParallelFor<'a> = dyn Fn(usize, &(dyn Fn(usize) + Sync)) + 'a;

/// The buffers being filled by [`Q8Act::quantize_with`]'s tasks.
struct RowsOut {
    qs: *mut i8,
    lo: Option<*mut i8>,
    d: *mut f32,
    s16: *mut f32,
    s32: *mut f32,
    tiles: *mut u8,
}

// SAFETY: the tasks write disjoint rows and tiles through it (see `quantize_with`).
unsafe impl Sync for RowsOut {}

impl RowsOut {
    /// Copies tile `tile` (rows `8·tile..`, already quantized) into its interleaved place.
    ///
    /// # Safety
    /// The tile's rows are written and no other thread touches them or the tile meanwhile.
    unsafe fn interleave(&self, tile: usize, runs: usize) {
        let stride = Q8Act::tile_run_bytes(self.lo.is_some());
        let codes = TILE_ROWS * Q8_BLOCK * if self.lo.is_some() { 2 } else { 1 };
        // SAFETY: reads of the tile's rows and writes of its slots, inside the buffers.
        unsafe {
            for run in 0..runs {
                let dst = self.tiles.add((tile * runs + run) * stride);
                let floats = dst.add(codes).cast::<f32>();
                for t in 0..TILE_ROWS {
                    let e = (tile * TILE_ROWS + t) * runs + run;
                    let q = self.qs.add(Q8_BLOCK * e).cast::<u8>();
                    std::ptr::copy_nonoverlapping(q, dst.add(Q8_BLOCK * t), Q8_BLOCK);
                    if let Some(lo) = self.lo {
                        let lo = lo.add(Q8_BLOCK * e).cast::<u8>();
                        let at = dst.add(Q8_BLOCK * (TILE_ROWS + t));
                        std::ptr::copy_nonoverlapping(lo, at, Q8_BLOCK);
                    }
                    floats.add(t).write_unaligned(*self.d.add(e));
                    floats.add(TILE_ROWS + t).write_unaligned(*self.s32.add(e));
                    let s16 = floats.add(2 * TILE_ROWS + 2 * t);
                    s16.write_unaligned(*self.s16.add(2 * e));
                    s16.add(1).write_unaligned(*self.s16.add(2 * e + 1));
                }
            }
        }
    }
}

/// Quantizes every block of 32 values of `x` (see [`quantize_block`]); on x86-64 compiled for
/// AVX2 where the CPU has it. Both builds give the same bytes: the arithmetic is the same
/// IEEE operations in the same order (no fused multiply-adds), only wider.
fn quantize_blocks(
    x: &[f32],
    qs: &mut [i8],
    lo: Option<&mut [i8]>,
    d: &mut [f32],
    s16: &mut [f32],
    s32: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { quantize_blocks_avx2(x, qs, lo, d, s16, s32) };
    }
    quantize_blocks_with::<false>(x, qs, lo, d, s16, s32)
}

/// [`quantize_blocks_with`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_blocks_avx2(
    x: &[f32],
    qs: &mut [i8],
    lo: Option<&mut [i8]>,
    d: &mut [f32],
    s16: &mut [f32],
    s32: &mut [f32],
) {
    quantize_blocks_with::<true>(x, qs, lo, d, s16, s32)
}

/// The block loop, inlined into each instruction set's entry point; `AVX2` takes the AVX2
/// block quantizer (only from [`quantize_blocks_avx2`]).
#[inline(always)]
fn quantize_blocks_with<const AVX2: bool>(
    x: &[f32],
    qs: &mut [i8],
    mut lo: Option<&mut [i8]>,
    d: &mut [f32],
    s16: &mut [f32],
    s32: &mut [f32],
) {
    for (b, xs) in x.chunks_exact(Q8_BLOCK).enumerate() {
        let at = b * Q8_BLOCK..(b + 1) * Q8_BLOCK;
        #[allow(clippy::expect_used, reason = "chunks_exact gives whole blocks")]
        let xs: &[f32; Q8_BLOCK] = xs.try_into().expect("whole block");
        #[allow(clippy::expect_used, reason = "a range of Q8_BLOCK bytes")]
        let q: &mut [i8; Q8_BLOCK] = (&mut qs[at.clone()]).try_into().expect("whole block");
        #[allow(clippy::expect_used, reason = "a range of Q8_BLOCK bytes")]
        let lo = lo
            .as_deref_mut()
            .map(|lo| <&mut [i8; Q8_BLOCK]>::try_from(&mut lo[at]).expect("whole block"));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `AVX2` is only set inside `quantize_blocks_avx2`, which has the feature.
        let (unit, halves) = if AVX2 {
            unsafe { x86::quantize_block_avx2(xs, q, lo) }
        } else {
            quantize_block(xs, q, lo)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (unit, halves) = quantize_block(xs, q, lo);
        d[b] = unit;
        s16[2 * b..2 * b + 2].copy_from_slice(&halves);
        s32[b] = halves[0] + halves[1];
    }
}

/// `v` rounded to the nearest integer, ties to even, for `|v| < 2^22`: adding and taking away
/// 1.5·2^23 leaves no fraction bits, so the FPU's own rounding does it. Unlike `f32::round`
/// this is not a libm call on x86-64's baseline, and it vectorizes.
#[inline(always)]
fn round_small(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

/// Quantizes 32 values into `q` (and the residual into `lo`); returns the unit scale and the
/// sums of both halves as quantized.
#[inline(always)]
fn quantize_block(
    x: &[f32; Q8_BLOCK],
    q: &mut [i8; Q8_BLOCK],
    lo: Option<&mut [i8; Q8_BLOCK]>,
) -> (f32, [f32; 2]) {
    // Eight running maxima (one vector register), without NaN handling, so they map onto `maxps`.
    let mut lanes = [0.0f32; 8];
    for c in x.chunks_exact(8) {
        for (m, v) in lanes.iter_mut().zip(c) {
            *m = if v.abs() > *m { v.abs() } else { *m };
        }
    }
    let amax = lanes.iter().fold(0.0f32, |m, &v| if v > m { v } else { m });
    let s = amax / 127.0;
    let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
    let mut units = [0i32; Q8_BLOCK];
    // SAFETY (the `to_int_unchecked` casts): every value is a whole number within ±127 by
    // construction (|y| <= 127; residuals clamped), so the conversions are exact. Unlike `as`,
    // they need no saturation or NaN checks, which keeps the loops vectorizable.
    let d = match lo {
        Some(lo) => {
            for i in 0..Q8_BLOCK {
                let y = x[i] * inv;
                let r = round_small(y);
                // The residual is within ±0.5 of a step: ±128 units, clamped to a byte.
                let l = round_small((y - r) * 256.0).clamp(-127.0, 127.0);
                let (r, l) = unsafe { (r.to_int_unchecked::<i32>(), l.to_int_unchecked::<i32>()) };
                q[i] = r as i8;
                lo[i] = l as i8;
                units[i] = 256 * r + l;
            }
            s / 256.0
        }
        None => {
            for i in 0..Q8_BLOCK {
                let r = unsafe { round_small(x[i] * inv).to_int_unchecked::<i32>() };
                q[i] = r as i8;
                units[i] = r;
            }
            s
        }
    };
    let half = |h: usize| units[16 * h..16 * h + 16].iter().sum::<i32>() as f32 * d;
    (d, [half(0), half(1)])
}

/// The block quantizer in AVX2 intrinsics (the generic one's max and conversions do not all
/// vectorize). Same operations in the same order, so the same bytes.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Q8_BLOCK;
    use std::arch::x86_64::*;

    /// [`super::quantize_block`] with AVX2.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn quantize_block_avx2(
        x: &[f32; Q8_BLOCK],
        q: &mut [i8; Q8_BLOCK],
        lo: Option<&mut [i8; Q8_BLOCK]>,
    ) -> (f32, [f32; 2]) {
        // SAFETY: loads and stores of 32 elements inside the arrays; register operations.
        unsafe {
            let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(x.as_ptr().add(8 * i)));
            let abs = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX));
            let m01 = _mm256_max_ps(_mm256_and_ps(v[0], abs), _mm256_and_ps(v[1], abs));
            let m23 = _mm256_max_ps(_mm256_and_ps(v[2], abs), _mm256_and_ps(v[3], abs));
            let m = _mm256_max_ps(m01, m23);
            let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
            let amax = _mm_cvtss_f32(m);
            let s = amax / 127.0;
            let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
            let vinv = _mm256_set1_ps(inv);
            const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
            let mut units = [_mm256_setzero_si256(); 4];
            let mut hi = [_mm256_setzero_si256(); 4];
            let mut low = [_mm256_setzero_si256(); 4];
            let wide = lo.is_some();
            for i in 0..4 {
                let y = _mm256_mul_ps(v[i], vinv);
                let r = _mm256_round_ps::<NEAREST>(y);
                hi[i] = _mm256_cvtps_epi32(r);
                units[i] = hi[i];
                if wide {
                    let e = _mm256_mul_ps(_mm256_sub_ps(y, r), _mm256_set1_ps(256.0));
                    let l = _mm256_round_ps::<NEAREST>(e);
                    let l = _mm256_min_ps(
                        _mm256_max_ps(l, _mm256_set1_ps(-127.0)),
                        _mm256_set1_ps(127.0),
                    );
                    low[i] = _mm256_cvtps_epi32(l);
                    units[i] = _mm256_add_epi32(_mm256_slli_epi32(hi[i], 8), low[i]);
                }
            }
            store_bytes(q.as_mut_ptr(), hi);
            let d = match lo {
                Some(lo) => {
                    store_bytes(lo.as_mut_ptr(), low);
                    s / 256.0
                }
                None => s,
            };
            let half = |a: __m256i, b: __m256i| hsum(_mm256_add_epi32(a, b)) as f32 * d;
            (d, [half(units[0], units[1]), half(units[2], units[3])])
        }
    }

    /// Stores 32 i32 lanes (each within a byte's range) as bytes, in order.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn store_bytes(p: *mut i8, v: [__m256i; 4]) {
        // SAFETY: a 32-byte store at `p` (the caller's array).
        unsafe {
            // The packs work within 128-bit lanes: the result holds 4-byte groups in the order
            // v0 v1 v2 v3 (low lanes) then v0 v1 v2 v3 (high lanes); the permute restores it.
            let w01 = _mm256_packs_epi32(v[0], v[1]);
            let w23 = _mm256_packs_epi32(v[2], v[3]);
            let b = _mm256_packs_epi16(w01, w23);
            let b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256(p.cast(), b);
        }
    }

    /// The sum of eight i32 lanes.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn hsum(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_error_is_within_half_a_step() {
        let mut s = 7u32;
        let x: Vec<f32> = (0..96)
            .map(|_| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 6.0 - 3.0
            })
            .collect();
        for wide in [false, true] {
            let a = Q8Act::quantize(&x, 96, wide);
            assert_eq!(a.rows(), 1);
            let r = a.row(0);
            assert_eq!(r.wide(), wide);
            for (i, &v) in x.iter().enumerate() {
                let step = r.d[i / 32] * if wide { 1.0 } else { 0.5 };
                assert!((r.value(i) - v).abs() <= step * 1.0001 + 1e-6, "{wide} {i}");
            }
            for (j, &s) in r.s16.iter().enumerate() {
                let want: f32 = (16 * j..16 * j + 16).map(|i| r.value(i)).sum();
                assert!((s - want).abs() <= 1e-4, "{s} vs {want}");
            }
        }
    }

    #[test]
    fn every_instruction_set_gives_the_same_bytes() {
        let mut s = 11u32;
        // Odd magnitudes per block, exact ties and an all-zero block included.
        let mut x: Vec<f32> = (0..32 * 13)
            .map(|i| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let v = (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                v * (1 + i / 32) as f32 * 3.7
            })
            .collect();
        x[32..64].fill(0.0);
        x[64..96]
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = i as f32 - 15.5);
        for wide in [false, true] {
            let fast = Q8Act::quantize(&x, 32 * 13, wide);
            let n = x.len();
            let (mut qs, mut lo) = (vec![0; n], vec![0; if wide { n } else { 0 }]);
            let (mut d, mut s16, mut s32) =
                (vec![0.0; n / 32], vec![0.0; n / 16], vec![0.0; n / 32]);
            quantize_blocks_with::<false>(
                &x,
                &mut qs,
                wide.then_some(&mut lo[..]),
                &mut d,
                &mut s16,
                &mut s32,
            );
            assert_eq!((fast.qs, fast.lo), (qs, lo));
            assert_eq!((fast.d, fast.s16, fast.s32), (d, s16, s32));
        }
    }

    #[test]
    fn tiles_hold_the_rows_interleaved_run_by_run() {
        let (rows, cols) = (19, 96);
        let mut s = 3u32;
        let x: Vec<f32> = (0..rows * cols)
            .map(|_| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect();
        for wide in [false, true] {
            // Spread over several "threads" (tasks in any order), as the pool would.
            let a = {
                let mut a = Q8Act::default();
                a.quantize_with(&x, cols, wide, &|n, f| (0..n).rev().for_each(f));
                a
            };
            let runs = cols / Q8_BLOCK;
            let codes = TILE_ROWS * Q8_BLOCK * if wide { 2 } else { 1 };
            assert_eq!(a.tiles.len(), 2 * runs * Q8Act::tile_run_bytes(wide));
            for tile in 0..rows / TILE_ROWS {
                for run in 0..runs {
                    let slot = &a.tiles[a.tile_run(tile, run)..][..Q8Act::tile_run_bytes(wide)];
                    let float = |i: usize| {
                        f32::from_ne_bytes(
                            slot[codes + 4 * i..codes + 4 * i + 4].try_into().unwrap(),
                        )
                    };
                    for t in 0..TILE_ROWS {
                        let e = (tile * TILE_ROWS + t) * runs + run;
                        let q: &[u8] = bytemuck::cast_slice(&a.qs[32 * e..32 * e + 32]);
                        assert_eq!(&slot[32 * t..32 * t + 32], q);
                        if wide {
                            let lo: &[u8] = bytemuck::cast_slice(&a.lo[32 * e..32 * e + 32]);
                            assert_eq!(&slot[32 * (TILE_ROWS + t)..][..32], lo);
                        }
                        assert_eq!(float(t), a.d[e]);
                        assert_eq!(float(TILE_ROWS + t), a.s32[e]);
                        assert_eq!(float(2 * TILE_ROWS + 2 * t), a.s16[2 * e]);
                        assert_eq!(float(2 * TILE_ROWS + 2 * t + 1), a.s16[2 * e + 1]);
                    }
                }
            }
        }
    }
}
