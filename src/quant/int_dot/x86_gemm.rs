//! Prefill GEMM on x86: strips of [`STRIP`] weight rows against every token.
//!
//! A strip's blocks are unpacked once (through the same [`Unpack`] as the mat-vec) and
//! transposed so that one 256-bit vector holds four consecutive codes of each of the eight rows.
//! Against it, four activation bytes of one token broadcast to every lane give, in one
//! `vpdpbusd`, partial sums for all eight rows — so the float work (convert, scale, offset) is
//! done for eight rows at once, and the transposed strip (`cols` bytes per row, in L1/L2) is
//! reused by every token. Tokens go in tiles of [`TOKENS`] so their sums stay in registers.

use std::arch::x86_64::*;

use super::strips::Strips;
use super::x86::{Product, X86, idot, x86_levels};
use super::{MAX_RUNS, Unpack, with_block_type};
use crate::quant::GgmlType;
use crate::quant::q8_act::{Q8_BLOCK, Q8Act, TILE_ROWS};

/// Weight rows per strip (the lanes of one vector).
pub const STRIP: usize = 8;
/// Tokens per register tile.
const TOKENS: usize = 8;

/// Runs `$call` with `$T` = [`TOKENS`] for every whole register tile of tokens starting at `$tok`,
/// then with `$T` = 1 for the tokens left over.
macro_rules! token_tiles {
    ($tokens:expr, $tok:ident, $T:ident => $call:expr) => {{
        let tokens = $tokens;
        let full = tokens / TOKENS * TOKENS;
        for $tok in (0..full).step_by(TOKENS) {
            const $T: usize = TOKENS;
            $call
        }
        // The rest in tiles of 4, 2 and 1: a few rows from different sequences (a server's
        // batched decode step) still unpack each weight block once, not once per row.
        let mut $tok = full;
        if tokens - $tok >= 4 {
            const $T: usize = 4;
            $call;
            $tok += 4;
        }
        if tokens - $tok >= 2 {
            const $T: usize = 2;
            $call;
            $tok += 2;
        }
        if $tok < tokens {
            const $T: usize = 1;
            $call
        }
    }};
}

/// Per run of 32 codes of a strip: the scales and offsets of its low and high 16 codes, per row.
#[derive(Clone, Copy)]
struct RunScales {
    s_lo: __m256,
    s_hi: __m256,
    o_lo: __m256,
    o_hi: __m256,
}

/// A strip unpacked and transposed: for run `e`, vectors `codes[8e + q]` hold codes
/// `4q..4q + 4` of the run for each of the eight rows.
struct Strip {
    codes: Vec<__m256i>,
    scales: Vec<RunScales>,
}

/// The 8x8 transpose of 32-bit elements: `rows[r]` lane `q` becomes `out[q]` lane `r`.
#[inline(always)]
fn transpose(rows: [__m256i; 8]) -> [__m256i; 8] {
    // SAFETY: register operations; the callers run with AVX2.
    unsafe {
        let [r0, r1, r2, r3, r4, r5, r6, r7] = rows;
        let (t0, t1) = (_mm256_unpacklo_epi32(r0, r1), _mm256_unpackhi_epi32(r0, r1));
        let (t2, t3) = (_mm256_unpacklo_epi32(r2, r3), _mm256_unpackhi_epi32(r2, r3));
        let (t4, t5) = (_mm256_unpacklo_epi32(r4, r5), _mm256_unpackhi_epi32(r4, r5));
        let (t6, t7) = (_mm256_unpacklo_epi32(r6, r7), _mm256_unpackhi_epi32(r6, r7));
        let (u0, u1) = (_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2));
        let (u2, u3) = (_mm256_unpacklo_epi64(t1, t3), _mm256_unpackhi_epi64(t1, t3));
        let (u4, u5) = (_mm256_unpacklo_epi64(t4, t6), _mm256_unpackhi_epi64(t4, t6));
        let (u6, u7) = (_mm256_unpacklo_epi64(t5, t7), _mm256_unpackhi_epi64(t5, t7));
        [
            _mm256_permute2x128_si256(u0, u4, 0x20),
            _mm256_permute2x128_si256(u1, u5, 0x20),
            _mm256_permute2x128_si256(u2, u6, 0x20),
            _mm256_permute2x128_si256(u3, u7, 0x20),
            _mm256_permute2x128_si256(u0, u4, 0x31),
            _mm256_permute2x128_si256(u1, u5, 0x31),
            _mm256_permute2x128_si256(u2, u6, 0x31),
            _mm256_permute2x128_si256(u3, u7, 0x31),
        ]
    }
}

/// Unpacks rows `rows[0..8]` (encoded, `B` blocks) into `strip`.
#[inline(always)]
fn unpack_strip<B: Unpack<X86<P>>, P: Product>(rows: [&[u8]; STRIP], strip: &mut Strip) {
    let per_block = B::ELEMS / Q8_BLOCK;
    let blocks = rows[0].len() / B::BYTES;
    strip.codes.clear();
    strip.scales.clear();
    // SAFETY (all intrinsics below): register operations; the callers run with AVX2.
    let zero = unsafe { _mm256_setzero_si256() };
    let mut runs = [[zero; MAX_RUNS]; STRIP];
    let mut scale = [[0.0f32; 16]; STRIP];
    let mut offset = [[0.0f32; 16]; STRIP];
    for bi in 0..blocks {
        for r in 0..STRIP {
            let b = &rows[r][bi * B::BYTES..(bi + 1) * B::BYTES];
            B::unpack(b, &mut runs[r], &mut scale[r], &mut offset[r]);
        }
        for j in 0..per_block {
            let codes = transpose(runs.map(|r| r[j]));
            // Codes of signed formats stay signed: `idot` applies the sign trick per product.
            strip.codes.extend_from_slice(&codes);
            let (g_lo, g_hi) = if B::GROUP == 32 {
                (j, j)
            } else {
                (2 * j, 2 * j + 1)
            };
            strip.scales.push(RunScales {
                s_lo: lanes(&scale, g_lo),
                s_hi: lanes(&scale, g_hi),
                o_lo: lanes(&offset, g_lo),
                o_hi: lanes(&offset, g_hi),
            });
        }
    }
}

/// Group `g`'s values of the eight rows as one vector.
#[inline(always)]
fn lanes(v: &[[f32; 16]; STRIP], g: usize) -> __m256 {
    let a: [f32; STRIP] = std::array::from_fn(|r| v[r][g]);
    // SAFETY: eight floats; the callers run with AVX.
    unsafe { _mm256_loadu_ps(a.as_ptr()) }
}

/// Four activation bytes at `p`, broadcast to every lane.
///
/// # Safety
/// `p` must be valid for 4 bytes; the caller runs with AVX2.
#[inline(always)]
unsafe fn broadcast4(p: *const i8) -> __m256i {
    unsafe { _mm256_set1_epi32(std::ptr::read_unaligned(p.cast::<i32>())) }
}

/// The integer sums of one run of `N` tokens against a strip: `Σ c·q`, or `256 · Σ c·q + Σ c·lo`
/// with residual bytes — for the run's low and high 16 codes apart when `SPLIT` (two groups of
/// 16), else all 32 in the first sum. The tokens' products are interleaved: one token alone is
/// only one to four dependency chains of `vpdpbusd`, too few to keep both multiply pipes busy
/// through the instruction's latency.
///
/// # Safety
/// `q[n]` (and `lo[n]` when `WIDE`) must be valid for 32 bytes; the caller runs with AVX2.
#[inline(always)]
unsafe fn run_sums<P: Product, const WIDE: bool, const SPLIT: bool, const N: usize>(
    w: &[__m256i],
    q: [*const i8; N],
    lo: [*const i8; N],
    signed: bool,
) -> [(__m256i, __m256i); N] {
    // No closures here: they would not inherit the caller's target features, and the
    // intrinsics inside them would become calls.
    unsafe {
        // Per token: the low (or only) sum of q, its high sum, then the same of lo.
        let mut sums = [[_mm256_setzero_si256(); 4]; N];
        let high = if SPLIT { 1 } else { 0 };
        for k in 0..4 {
            for n in 0..N {
                let s = &mut sums[n];
                s[0] = idot::<P>(s[0], w[k], broadcast4(q[n].add(4 * k)), signed);
                s[high] = idot::<P>(s[high], w[k + 4], broadcast4(q[n].add(16 + 4 * k)), signed);
                if WIDE {
                    s[2] = idot::<P>(s[2], w[k], broadcast4(lo[n].add(4 * k)), signed);
                    let x = broadcast4(lo[n].add(16 + 4 * k));
                    s[2 + high] = idot::<P>(s[2 + high], w[k + 4], x, signed);
                }
            }
        }
        let mut out = [(_mm256_setzero_si256(), _mm256_setzero_si256()); N];
        for n in 0..N {
            let s = sums[n];
            out[n] = if WIDE {
                (
                    _mm256_add_epi32(_mm256_slli_epi32(s[0], 8), s[2]),
                    _mm256_add_epi32(_mm256_slli_epi32(s[1], 8), s[3]),
                )
            } else {
                (s[0], s[1])
            };
        }
        out
    }
}

/// How a run's sums become floats.
#[derive(Clone, Copy)]
struct RunKind {
    /// Signed codes (the sign trick in every product).
    signed: bool,
    /// Two groups of 16, each with its scale and offset (else one group of 32).
    two_groups: bool,
    /// Groups have an offset (`scale · code + offset`).
    offset: bool,
}

/// Where one run's activations are for each token of a register tile.
trait RunAct: Copy {
    /// Token `t`'s 32 bytes.
    fn q(self, t: usize) -> *const i8;
    /// Token `t`'s 32 residual bytes (with residual bytes).
    fn lo(self, t: usize) -> *const i8;
    /// Token `t`'s scale, sum of 32 and sums of 16.
    ///
    /// # Safety
    /// The cursor points at a run of its activations.
    unsafe fn sums(self, t: usize) -> (f32, f32, [f32; 2]);
}

/// A run of row-major tokens (the tail of a batch, and decode): token `t`'s run is `stride`
/// runs after token `t - 1`'s.
#[derive(Clone, Copy)]
struct RowRun<'a> {
    x: &'a Q8Act,
    run: usize,
    stride: usize,
}

impl RowRun<'_> {
    #[inline(always)]
    fn at(self, t: usize) -> usize {
        self.run + t * self.stride
    }
}

impl RunAct for RowRun<'_> {
    #[inline(always)]
    fn q(self, t: usize) -> *const i8 {
        self.x.qs.as_ptr().wrapping_add(32 * self.at(t))
    }

    #[inline(always)]
    fn lo(self, t: usize) -> *const i8 {
        self.x.lo.as_ptr().wrapping_add(32 * self.at(t))
    }

    #[inline(always)]
    unsafe fn sums(self, t: usize) -> (f32, f32, [f32; 2]) {
        let (x, e) = (self.x, self.at(t));
        // SAFETY: `e` is a run of `x` (the caller's contract).
        unsafe {
            let s16 = x.s16.as_ptr().add(2 * e);
            (
                *x.d.get_unchecked(e),
                *x.s32.get_unchecked(e),
                [*s16, *s16.add(1)],
            )
        }
    }
}

/// A run of a whole tile of interleaved tokens ([`Q8Act::tile_run`]): everything at fixed
/// offsets from one pointer.
#[derive(Clone, Copy)]
struct TileRun<const WIDE: bool> {
    p: *const u8,
}

impl<const WIDE: bool> TileRun<WIDE> {
    /// Bytes before the floats.
    const CODES: usize = TILE_ROWS * Q8_BLOCK * if WIDE { 2 } else { 1 };

    /// Float `i` after the codes.
    ///
    /// # Safety
    /// The cursor points at a tile run.
    #[inline(always)]
    unsafe fn float(self, i: usize) -> f32 {
        // SAFETY: inside the tile run (the caller's contract).
        unsafe { std::ptr::read_unaligned(self.p.add(Self::CODES + 4 * i).cast::<f32>()) }
    }
}

impl<const WIDE: bool> RunAct for TileRun<WIDE> {
    #[inline(always)]
    fn q(self, t: usize) -> *const i8 {
        self.p.wrapping_add(Q8_BLOCK * t).cast()
    }

    #[inline(always)]
    fn lo(self, t: usize) -> *const i8 {
        self.p.wrapping_add(Q8_BLOCK * (TILE_ROWS + t)).cast()
    }

    #[inline(always)]
    unsafe fn sums(self, t: usize) -> (f32, f32, [f32; 2]) {
        // SAFETY: passed on to the caller.
        unsafe {
            let s16 = 2 * TILE_ROWS + 2 * t;
            (
                self.float(t),
                self.float(TILE_ROWS + t),
                [self.float(s16), self.float(s16 + 1)],
            )
        }
    }
}

/// The cursor of run `run` for `T` tokens from `tok`: interleaved for a whole tile, row-major
/// for fewer tokens.
#[inline(always)]
fn run_act<const WIDE: bool, const T: usize>(
    x: &Q8Act,
    tok: usize,
    run: usize,
) -> impl RunAct + '_ {
    if T == TOKENS {
        const { assert!(TOKENS == TILE_ROWS) };
        let at = x.tile_run(tok / TOKENS, run);
        Either::Tile(TileRun::<WIDE> {
            p: x.tiles.as_ptr().wrapping_add(at),
        })
    } else {
        Either::Row(RowRun {
            x,
            run: tok * (x.cols / Q8_BLOCK) + run,
            stride: x.cols / Q8_BLOCK,
        })
    }
}

/// One of the two cursors (`T` picks one at compile time, so the match folds away).
#[derive(Clone, Copy)]
enum Either<'a, const WIDE: bool> {
    Tile(TileRun<WIDE>),
    Row(RowRun<'a>),
}

impl<const WIDE: bool> RunAct for Either<'_, WIDE> {
    #[inline(always)]
    fn q(self, t: usize) -> *const i8 {
        match self {
            Either::Tile(c) => c.q(t),
            Either::Row(c) => c.q(t),
        }
    }

    #[inline(always)]
    fn lo(self, t: usize) -> *const i8 {
        match self {
            Either::Tile(c) => c.lo(t),
            Either::Row(c) => c.lo(t),
        }
    }

    #[inline(always)]
    unsafe fn sums(self, t: usize) -> (f32, f32, [f32; 2]) {
        // SAFETY: passed on to the caller.
        unsafe {
            match self {
                Either::Tile(c) => c.sums(t),
                Either::Row(c) => c.sums(t),
            }
        }
    }
}

/// One run of `T` tokens against a strip's eight rows: `acc[t] += ` the run's share of token
/// `t`'s dot products, with the activations at `x`.
///
/// # Safety
/// As [`run_sums`] for every token's run; the caller runs with AVX2 and FMA.
#[inline(always)]
unsafe fn tile_run<P: Product, const WIDE: bool, const T: usize>(
    acc: &mut [__m256; T],
    codes: &[__m256i],
    x: impl RunAct,
    sc: &RunScales,
    kind: RunKind,
) {
    // SAFETY: passed on to the caller.
    unsafe {
        // Written out group by group: a loop over the tile stays rolled, and then the sums live
        // in memory, indexed by the loop counter, instead of in registers. Two tokens at a time
        // with two groups per run (four sums each), else four.
        macro_rules! tokens {
            ($n:literal, $split:literal, $t:expr) => {{
                let q: [*const i8; $n] = std::array::from_fn(|i| x.q($t + i));
                let lo: [*const i8; $n] = std::array::from_fn(|i| x.lo($t + i));
                let sums = run_sums::<P, WIDE, $split, $n>(codes, q, lo, kind.signed);
                for i in 0..$n {
                    add_run(&mut acc[$t + i], sums[i], x.sums($t + i), sc, kind);
                }
            }};
        }
        if T == TOKENS && kind.two_groups {
            tokens!(2, true, 0);
            tokens!(2, true, 2);
            tokens!(2, true, 4);
            tokens!(2, true, 6);
        } else if T == TOKENS {
            tokens!(4, false, 0);
            tokens!(4, false, 4);
        } else if T == 4 && kind.two_groups {
            tokens!(2, true, 0);
            tokens!(2, true, 2);
        } else if T == 4 {
            tokens!(4, false, 0);
        } else if T == 2 {
            if kind.two_groups {
                tokens!(2, true, 0);
            } else {
                tokens!(2, false, 0);
            }
        } else if kind.two_groups {
            for t in 0..T {
                tokens!(1, true, t);
            }
        } else {
            for t in 0..T {
                tokens!(1, false, t);
            }
        }
    }
}

/// `acc += ` one run's integer sums `(low 16, high 16)`, scaled, given the activations'
/// `(d, s32, s16)`.
///
/// # Safety
/// The caller runs with AVX2 and FMA.
#[inline(always)]
unsafe fn add_run(
    acc: &mut __m256,
    (a, b): (__m256i, __m256i),
    (d, s32, s16): (f32, f32, [f32; 2]),
    sc: &RunScales,
    kind: RunKind,
) {
    // SAFETY: register operations.
    unsafe {
        let dx = _mm256_set1_ps(d);
        if kind.two_groups {
            let (pa, pb) = (_mm256_cvtepi32_ps(a), _mm256_cvtepi32_ps(b));
            *acc = _mm256_fmadd_ps(pa, _mm256_mul_ps(sc.s_lo, dx), *acc);
            *acc = _mm256_fmadd_ps(pb, _mm256_mul_ps(sc.s_hi, dx), *acc);
            *acc = _mm256_fmadd_ps(sc.o_lo, _mm256_set1_ps(s16[0]), *acc);
            *acc = _mm256_fmadd_ps(sc.o_hi, _mm256_set1_ps(s16[1]), *acc);
        } else {
            let p = _mm256_cvtepi32_ps(_mm256_add_epi32(a, b));
            *acc = _mm256_fmadd_ps(p, _mm256_mul_ps(sc.s_lo, dx), *acc);
            if kind.offset {
                *acc = _mm256_fmadd_ps(sc.o_lo, _mm256_set1_ps(s32), *acc);
            }
        }
    }
}

/// Sums of the strip's eight rows for `T` tokens starting at `tok`, written to
/// `out[(tok + t) * ld + r0 ..][..8]`.
///
/// # Safety
/// `out` must be valid for those writes, and no other thread may write them.
#[inline(always)]
unsafe fn strip_tokens<B: Unpack<X86<P>>, P: Product, const T: usize, const WIDE: bool>(
    strip: &Strip,
    x: &Q8Act,
    tok: usize,
    out: *mut f32,
    ld: usize,
) {
    // SAFETY (all intrinsics below): register operations and reads inside `x` and `strip`
    // (every token row holds `runs * 32` bytes); the callers run with AVX2 and FMA.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); T];
        for (e, sc) in strip.scales.iter().enumerate() {
            let w = &strip.codes[8 * e..8 * e + 8];
            let kind = RunKind {
                signed: B::SIGNED,
                two_groups: B::GROUP != 32,
                offset: true,
            };
            tile_run::<P, WIDE, T>(&mut acc, w, run_act::<WIDE, T>(x, tok, e), sc, kind);
        }
        for (t, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.add((tok + t) * ld), *a);
        }
    }
}

/// Rows `r0..r0 + 8 * strips` of the product: `out[tok * ld + r]` for every token of `x`.
#[inline(always)]
fn strips<B: Unpack<X86<P>>, P: Product>(
    w: &[u8],
    row_bytes: usize,
    r0: usize,
    strips: usize,
    x: &Q8Act,
    out: *mut f32,
    ld: usize,
) {
    let mut strip = Strip {
        codes: Vec::new(),
        scales: Vec::new(),
    };
    for s in 0..strips {
        let r = r0 + STRIP * s;
        let rows = std::array::from_fn(|i| &w[(r + i) * row_bytes..(r + i + 1) * row_bytes]);
        unpack_strip::<B, P>(rows, &mut strip);
        // SAFETY: the caller owns columns `r..r + 8` of every token's output row.
        unsafe {
            let out = out.add(r);
            if x.lo.is_empty() {
                all_tokens::<B, P, false>(&strip, x, out, ld);
            } else {
                all_tokens::<B, P, true>(&strip, x, out, ld);
            }
        }
    }
}

/// Every token of `x` against `strip`, in register tiles and a tail.
///
/// # Safety
/// As [`strip_tokens`], for every token.
#[inline(always)]
unsafe fn all_tokens<B: Unpack<X86<P>>, P: Product, const WIDE: bool>(
    strip: &Strip,
    x: &Q8Act,
    out: *mut f32,
    ld: usize,
) {
    // SAFETY: passed on to the caller.
    unsafe {
        token_tiles!(x.rows(), tok, T => strip_tokens::<B, P, T, WIDE>(strip, x, tok, out, ld))
    }
}

x86_levels! {
    /// [`super::gemm_strips`] at an x86 level.
    ///
    /// # Safety
    /// See [`super::gemm_strips`] for `out`.
    fn gemm_strips_avx2 / gemm_strips_vnni<P>(
        t: GgmlType,
        w: &[u8],
        row_bytes: usize,
        r0: usize,
        n: usize,
        x: &Q8Act,
        out: *mut f32,
        ld: usize,
    ) {
        with_block_type!(t, B => strips::<B, P>(w, row_bytes, r0, n, x, out, ld))
    }
}

/// Repacked strips `s0..s0 + count` of `w` against every token of `x`: rows
/// `8 * s0..` of `out[tok * ld + row]`.
///
/// # Safety
/// As [`strip_tokens`] for those rows; the caller runs with AVX2, FMA and F16C.
#[inline(always)]
unsafe fn repacked<P: Product>(
    w: &Strips,
    s0: usize,
    count: usize,
    x: &Q8Act,
    out: *mut f32,
    ld: usize,
) {
    let wide = !x.lo.is_empty();
    // SAFETY: passed on to the caller.
    unsafe {
        for s in s0..s0 + count {
            let out = out.add(STRIP * s);
            match (w.dtype, wide) {
                (GgmlType::Q4_0, false) => repacked_strip::<P, 0, false>(w, s, x, out, ld),
                (GgmlType::Q4_0, true) => repacked_strip::<P, 0, true>(w, s, x, out, ld),
                (GgmlType::Q4_1, false) => repacked_strip::<P, 1, false>(w, s, x, out, ld),
                (GgmlType::Q4_1, true) => repacked_strip::<P, 1, true>(w, s, x, out, ld),
                (GgmlType::Q8_0, false) => repacked_strip::<P, 2, false>(w, s, x, out, ld),
                (GgmlType::Q8_0, true) => repacked_strip::<P, 2, true>(w, s, x, out, ld),
                (GgmlType::Q5_0, false) => repacked_strip::<P, 3, false>(w, s, x, out, ld),
                (GgmlType::Q5_0, true) => repacked_strip::<P, 3, true>(w, s, x, out, ld),
                (GgmlType::Q5_1, false) => repacked_strip::<P, 4, false>(w, s, x, out, ld),
                (GgmlType::Q5_1, true) => repacked_strip::<P, 4, true>(w, s, x, out, ld),
                (GgmlType::Q4K, false) => repacked_strip::<P, 5, false>(w, s, x, out, ld),
                (GgmlType::Q4K, true) => repacked_strip::<P, 5, true>(w, s, x, out, ld),
                (GgmlType::Q6K, false) => repacked_strip::<P, 6, false>(w, s, x, out, ld),
                (GgmlType::Q6K, true) => repacked_strip::<P, 6, true>(w, s, x, out, ld),
                (t, _) => unreachable!("{} is not repacked", t.name()),
            }
        }
    }
}

/// Bits `4q..4q + 4` of each lane's fifth-bit word, as `0x10` in the lane's bytes `0..4`: the
/// multiply puts copy `k` of the four bits at bit `7k + 4`, so bit `k` lands at `8k + 4`
/// (the copies do not overlap, so no carries), and the mask keeps those.
#[inline(always)]
fn fifth_bits(qh: __m256i, q: i32) -> __m256i {
    // SAFETY: register operations; the callers run with AVX2.
    unsafe {
        let four = _mm256_and_si256(
            _mm256_srl_epi32(qh, _mm_cvtsi32_si128(4 * q)),
            _mm256_set1_epi32(0xf),
        );
        let spread = _mm256_mullo_epi32(four, _mm256_set1_epi32(0x0204_0810));
        _mm256_and_si256(spread, _mm256_set1_epi32(0x1010_1010))
    }
}

/// Eight signed bytes at `p` as floats.
///
/// # Safety
/// `p` valid for 8 bytes; the caller runs with AVX2.
#[inline(always)]
unsafe fn signed_bytes8(p: *const u8) -> __m256 {
    unsafe { _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p.cast()))) }
}

/// Eight bytes at `p` as floats.
///
/// # Safety
/// `p` valid for 8 bytes; the caller runs with AVX2.
#[inline(always)]
unsafe fn bytes8(p: *const u8) -> __m256 {
    unsafe { _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast()))) }
}

/// Eight f16 at `p` as floats.
///
/// # Safety
/// `p` valid for 16 bytes; the caller runs with F16C.
#[inline(always)]
unsafe fn halves8(p: *const u8) -> __m256 {
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
}

/// One repacked strip of format `F` (0: Q4_0, 1: Q4_1, 2: Q8_0, 3: Q5_0, 4: Q5_1, 5: Q4_K,
/// 6: Q6_K) against every token, in register tiles of [`TOKENS`].
///
/// # Safety
/// As [`repacked`].
#[inline(always)]
unsafe fn repacked_strip<P: Product, const F: u8, const WIDE: bool>(
    w: &Strips,
    s: usize,
    x: &Q8Act,
    out: *mut f32,
    ld: usize,
) {
    // SAFETY: passed on to the caller.
    unsafe {
        token_tiles!(x.rows(), tok, T => repacked_tokens::<P, F, WIDE, T>(w, s, x, tok, out, ld))
    }
}

/// `T` tokens from `tok` against repacked strip `s`.
///
/// # Safety
/// As [`repacked`].
#[inline(always)]
unsafe fn repacked_tokens<P: Product, const F: u8, const WIDE: bool, const T: usize>(
    w: &Strips,
    s: usize,
    x: &Q8Act,
    tok: usize,
    out: *mut f32,
    ld: usize,
) {
    let strip = w.strip(s);
    let step = w.layout.strip_block_bytes();
    let runs = w.runs_per_block();
    // SAFETY (all intrinsics below): reads inside `strip` (`blocks` columns of `step` bytes)
    // and inside `x` (every token row holds `row_runs` runs); the caller runs with AVX2.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); T];
        let mut codes = [_mm256_setzero_si256(); 8];
        for e in 0..w.blocks {
            let p = strip.as_ptr().add(e * step);
            for j in 0..runs {
                let [s_lo, mut o_lo, s_hi, o_hi] = strip_run::<F>(p, j, &mut codes);
                // Q8_0's codes are signed bytes. Where the product takes every unsigned byte,
                // they become `c + 128` (flipping the top bit, once per run for all tokens)
                // with an offset of -128 steps, instead of the sign trick on every product.
                let biased = F == 2 && P::FULL_BYTES;
                if biased {
                    let top = _mm256_set1_epi8(i8::MIN);
                    for c in codes.iter_mut() {
                        *c = _mm256_xor_si256(*c, top);
                    }
                    o_lo = _mm256_mul_ps(s_lo, _mm256_set1_ps(-128.0));
                }
                let sc = RunScales {
                    s_lo,
                    s_hi,
                    o_lo,
                    o_hi,
                };
                let kind = RunKind {
                    signed: F == 2 && !biased,
                    two_groups: F == 6,
                    offset: F != 2 || biased,
                };
                let at = run_act::<WIDE, T>(x, tok, e * runs + j);
                tile_run::<P, WIDE, T>(&mut acc, &codes, at, &sc, kind);
            }
        }
        for (t, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.add((tok + t) * ld), *a);
        }
    }
}

/// Run `j` of the repacked block column at `p` (format `F`, see [`repacked_strip`]): its codes
/// for the eight rows into `codes` (quad `k` in `codes[k]`), and the rows' scale and offset —
/// for Q6_K, whose runs are two groups of 16, those of the low group then of the high one.
///
/// # Safety
/// `p` is a strip block column of format `F`; the caller runs with AVX2 and F16C.
#[inline(always)]
unsafe fn strip_run<const F: u8>(p: *const u8, j: usize, codes: &mut [__m256i; 8]) -> [__m256; 4] {
    // SAFETY: reads inside the block column; register operations.
    unsafe {
        let mask = _mm256_set1_epi8(0x0f);
        let d = halves8(p);
        if F == 6 {
            // Q6_K: d, sixteen signed scales (row-minor), then 4-byte units of ql (32 of them)
            // and qh (16). Run `j = 4·half + k`: low nibbles of ql bytes `64·half + 32·(k % 2)..`
            // shifted by `4·(k / 2)`, and bit pair `k` of qh bytes `32·half..`.
            let (half, k) = (j / 4, j % 4);
            let (lo_shift, hi_shift) = (
                _mm_cvtsi32_si128(4 * (k as i32 / 2)),
                _mm_cvtsi32_si128(2 * k as i32),
            );
            for (q, c) in codes.iter_mut().enumerate() {
                let at = |unit: usize| p.add(144 + 32 * unit).cast();
                let ql = _mm256_loadu_si256(at(16 * half + 8 * (k % 2) + q));
                let qh = _mm256_loadu_si256(at(32 + 8 * half + q));
                let low = _mm256_and_si256(_mm256_srl_epi16(ql, lo_shift), mask);
                let high = _mm256_and_si256(_mm256_srl_epi16(qh, hi_shift), _mm256_set1_epi8(3));
                *c = _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
            }
            let s_lo = _mm256_mul_ps(d, signed_bytes8(p.add(16 + 16 * j)));
            let s_hi = _mm256_mul_ps(d, signed_bytes8(p.add(24 + 16 * j)));
            let minus32 = _mm256_set1_ps(-32.0);
            return [
                s_lo,
                _mm256_mul_ps(s_lo, minus32),
                s_hi,
                _mm256_mul_ps(s_hi, minus32),
            ];
        }
        if F == 5 {
            // Q4_K: d, dmin, then eight scale bytes and eight min bytes per group (row-minor),
            // then the codes of run pair `j / 2` (low nibbles: even run, high: odd).
            let scale = _mm256_mul_ps(d, bytes8(p.add(32 + 8 * j)));
            let offset = _mm256_mul_ps(halves8(p.add(16)), bytes8(p.add(96 + 8 * j)));
            let shift = _mm_cvtsi32_si128(4 * (j as i32 % 2));
            for (k, c) in codes.iter_mut().enumerate() {
                let v = _mm256_loadu_si256(p.add(160 + 256 * (j / 2) + 32 * k).cast());
                *c = _mm256_and_si256(_mm256_srl_epi16(v, shift), mask);
            }
            let zero = _mm256_setzero_ps();
            return [scale, _mm256_sub_ps(zero, offset), zero, zero];
        }
        if F == 2 {
            for (k, c) in codes.iter_mut().enumerate() {
                *c = _mm256_loadu_si256(p.add(16 + 32 * k).cast());
            }
        } else {
            let halves = if F == 1 || F == 4 { 32 } else { 16 };
            let at = if F >= 3 { halves + 32 } else { halves };
            for k in 0..4 {
                let v = _mm256_loadu_si256(p.add(at + 32 * k).cast());
                codes[k] = _mm256_and_si256(v, mask);
                codes[k + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
            }
            if F >= 3 {
                let qh = _mm256_loadu_si256(p.add(halves).cast());
                for (q, c) in codes.iter_mut().enumerate() {
                    *c = _mm256_or_si256(*c, fifth_bits(qh, q as i32));
                }
            }
        }
        // Q4_0's codes are `q + 8` and Q5_0's `q + 16`; Q4_1/Q5_1 add their min; Q8_0 has no
        // offset.
        let offset = match F {
            0 => _mm256_mul_ps(d, _mm256_set1_ps(-8.0)),
            3 => _mm256_mul_ps(d, _mm256_set1_ps(-16.0)),
            1 | 4 => halves8(p.add(16)),
            _ => _mm256_setzero_ps(),
        };
        [d, offset, d, offset]
    }
}

x86_levels! {
    /// [`super::gemm_repacked`] at an x86 level.
    ///
    /// # Safety
    /// See [`super::gemm_repacked`] for `out`.
    fn gemm_repacked_avx2 / gemm_repacked_vnni<P>(
        w: &Strips,
        s0: usize,
        count: usize,
        x: &Q8Act,
        out: *mut f32,
        ld: usize,
    ) {
        // SAFETY: passed on to the caller.
        unsafe { repacked::<P>(w, s0, count, x, out, ld) }
    }
}
