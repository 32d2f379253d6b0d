//! Integer dot products of encoded weight rows with [`Q8Act`](super::q8_act::Q8Act) activations: the fast CPU path.
//!
//! Every block format is a run of groups of small unsigned codes with an affine map to weights
//! ([`AffineGroups`]: `scale · code + offset`). Against activations `dx · qx`, a group's dot
//! product is `scale·dx · Σ code·qx + offset·dx · Σqx`: the first sum is an integer dot of bytes
//! (one `vpdpbusd`, or `vpmaddubsw` + `vpmaddwd`, per 32 values), the second comes with the
//! activations. The group loop is written once, generic over the block format and over
//! [`Lanes`], the SIMD level's byte-dot primitive; each level's entry point is compiled with its
//! target features so the whole loop inlines into it.
//!
//! Several activation rows (tokens) are dotted with each block while it is unpacked, so prefill
//! decodes every weight block once per [`TILE`] tokens. On x86 the hot paths are the strip
//! kernels instead (`x86_gemm.rs`): eight rows at a time, from weights repacked at load
//! ([`strips`]) or unpacked per strip; on AArch64 `neon.rs` provides the byte products.

#[cfg(target_arch = "aarch64")]
mod neon;
mod portable;
pub mod strips;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_gemm;

#[cfg(target_arch = "x86_64")]
pub use x86_gemm::STRIP;
/// Weight rows per strip of the strip kernels (which only the x86 levels have).
#[cfg(not(target_arch = "x86_64"))]
pub const STRIP: usize = 8;

use std::sync::OnceLock;

use super::q8_act::{Q8_BLOCK, Q8Row};
use super::{
    AffineGroups, GgmlType, Iq1M, Iq1S, Iq2S, Iq2Xs, Iq2Xxs, Iq3S, Iq3Xxs, Iq4Nl, Iq4Xs, Q2K, Q3K,
    Q4_0, Q4_1, Q4K, Q5_0, Q5_1, Q5K, Q6K, Q8_0, Tq1_0, Tq2_0,
};

/// Tokens dotted with each unpacked weight block in prefill.
pub const TILE: usize = 4;

/// A SIMD level's primitive: accumulate `Σ code·x` over a run of 32 codes, times float scales.
pub(crate) trait Lanes {
    /// Running float sums.
    type Acc: Copy;
    /// A run of 32 codes as the level holds it (bytes, or a vector register).
    type Run: Copy;
    /// All-zero sums.
    fn zero() -> Self::Acc;
    /// A run from 32 code bytes.
    fn load_run(c: &[u8; 32]) -> Self::Run;
    /// `acc + s_lo · Σ_{0..16} c·x + s_hi · Σ_{16..32} c·x`, with `x = 256·q + lo` when there
    /// are residual bytes `lo`, else `q`; `c` are unsigned codes below 64, or signed bytes when
    /// `signed`; `one_group` says `s_lo == s_hi` (the flags are constants once inlined).
    #[allow(clippy::too_many_arguments)]
    fn dot32(
        acc: Self::Acc,
        c: Self::Run,
        q: &[i8; 32],
        lo: Option<&[i8; 32]>,
        s_lo: f32,
        s_hi: f32,
        signed: bool,
        one_group: bool,
    ) -> Self::Acc;
    /// The sum of all lanes.
    fn total(acc: Self::Acc) -> f32;
}

/// Most runs in a block (K-quants: 256 values).
const MAX_RUNS: usize = 8;

/// A block format's codes as runs of a SIMD level. The default goes through
/// [`AffineGroups::groups`] and bytes in memory; the hot formats unpack in registers instead.
pub(crate) trait Unpack<L: Lanes>: AffineGroups {
    /// Unpacks block `b`: its runs of 32 codes, and every group's scale and offset.
    #[inline(always)]
    #[allow(clippy::expect_used, reason = "chunks_exact(32) gives 32 codes")]
    fn unpack(
        b: &[u8],
        runs: &mut [L::Run; MAX_RUNS],
        scale: &mut [f32; 16],
        offset: &mut [f32; 16],
    ) {
        let mut codes = [0u8; 256];
        Self::groups(b, |g, q, s, o| {
            codes[Self::GROUP * g..Self::GROUP * (g + 1)].copy_from_slice(q);
            scale[g] = s;
            offset[g] = o;
        });
        for (r, c) in runs.iter_mut().zip(codes[..Self::ELEMS].chunks_exact(32)) {
            *r = L::load_run(c.try_into().expect("32 codes"));
        }
    }
}

/// The instruction sets the integer kernels exist for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CpuLevel {
    /// Plain Rust, vectorised by the compiler for the build's baseline.
    Portable,
    /// AVX2 + FMA + F16C: `vpmaddubsw` / `vpmaddwd`.
    Avx2,
    /// AVX-512 VNNI (with VL): `vpdpbusd` on 256-bit vectors.
    Avx512Vnni,
    /// AArch64 NEON: `smull` / `sadalp`.
    Neon,
    /// AArch64 NEON with dotprod (Armv8.2): `sdot`.
    NeonDotprod,
}

impl CpuLevel {
    /// Every level, lowest first within each architecture.
    pub const ALL: [CpuLevel; 5] = [
        CpuLevel::Portable,
        CpuLevel::Avx2,
        CpuLevel::Avx512Vnni,
        CpuLevel::Neon,
        CpuLevel::NeonDotprod,
    ];

    /// The name `EMBER_CPU_LEVEL` takes.
    pub fn name(self) -> &'static str {
        match self {
            CpuLevel::Portable => "portable",
            CpuLevel::Avx2 => "avx2",
            CpuLevel::Avx512Vnni => "avx512vnni",
            CpuLevel::Neon => "neon",
            CpuLevel::NeonDotprod => "neon-dotprod",
        }
    }

    /// Whether this CPU can run the level.
    pub fn supported(self) -> bool {
        match self {
            CpuLevel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            CpuLevel::Avx2 => {
                std::is_x86_feature_detected!("avx2")
                    && std::is_x86_feature_detected!("fma")
                    && std::is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            CpuLevel::Avx512Vnni => {
                CpuLevel::Avx2.supported()
                    && std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "aarch64")]
            CpuLevel::Neon => true,
            #[cfg(target_arch = "aarch64")]
            CpuLevel::NeonDotprod => std::arch::is_aarch64_feature_detected!("dotprod"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The best level this CPU has.
    #[allow(
        clippy::expect_used,
        reason = "Portable is in ALL and always supported"
    )]
    pub fn best() -> CpuLevel {
        *CpuLevel::ALL
            .iter()
            .rev()
            .find(|l| l.supported())
            .expect("portable is always supported")
    }

    /// The level the kernels use: `EMBER_CPU_LEVEL` if set (an unknown or unsupported level is
    /// an error), else the best this CPU has. Read once per process.
    pub fn current() -> Result<CpuLevel, String> {
        static LEVEL: OnceLock<Result<CpuLevel, String>> = OnceLock::new();
        LEVEL
            .get_or_init(|| match std::env::var("EMBER_CPU_LEVEL") {
                Ok(name) => CpuLevel::parse(&name),
                Err(_) => Ok(CpuLevel::best()),
            })
            .clone()
    }

    /// Parses a level name, checking the CPU has it.
    pub fn parse(name: &str) -> Result<CpuLevel, String> {
        let level = CpuLevel::ALL
            .into_iter()
            .find(|l| l.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = CpuLevel::ALL.iter().map(|l| l.name()).collect();
                format!("EMBER_CPU_LEVEL={name} is not one of {}", names.join(", "))
            })?;
        if !level.supported() {
            return Err(format!("this CPU cannot run EMBER_CPU_LEVEL={name}"));
        }
        Ok(level)
    }
}

/// Whether `t` has integer kernels (every quantized block format; float types do not).
pub fn has_int_dot(t: GgmlType) -> bool {
    !t.is_float()
}

/// `out[i] = row · xs[i]` for up to [`TILE`] activation rows, at `level` (which the CPU must
/// support: [`CpuLevel::current`] checks). `t` must have integer kernels.
pub fn dot_rows(level: CpuLevel, t: GgmlType, row: &[u8], xs: &[Q8Row], out: &mut [f32]) {
    debug_assert!(has_int_dot(t) && xs.len() <= TILE && out.len() == xs.len());
    match level {
        CpuLevel::Portable => dispatch::<portable::Scalar>(t, row, xs, out),
        #[cfg(target_arch = "x86_64")]
        CpuLevel::Avx2 => {
            // SAFETY: callers pass a level the CPU supports.
            unsafe { x86::dot_rows_avx2(t, row, xs, out) }
        }
        #[cfg(target_arch = "x86_64")]
        CpuLevel::Avx512Vnni => {
            // SAFETY: as above.
            unsafe { x86::dot_rows_vnni(t, row, xs, out) }
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is part of AArch64.
        CpuLevel::Neon => unsafe { neon::dot_rows_neon(t, row, xs, out) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: callers pass a level the CPU supports.
        CpuLevel::NeonDotprod => unsafe { neon::dot_rows_dotprod(t, row, xs, out) },
        #[allow(unreachable_patterns)]
        _ => unreachable!("{level:?} is not a level of this architecture"),
    }
}

/// Whether `level` has the strip kernels ([`gemm_strips`], [`gemm_repacked`]): the x86 levels.
pub fn has_gemm(level: CpuLevel) -> bool {
    matches!(level, CpuLevel::Avx2 | CpuLevel::Avx512Vnni)
}

/// Rows `r0..r0 + STRIP * strips` of `x · wᵀ` for every token of `x`, written to
/// `out[token * ld + row]`, with the strip GEMM of `level` ([`has_gemm`]).
///
/// # Safety
/// `out` must be valid for those writes and no other thread may touch them meanwhile; the CPU
/// must support `level`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_strips(
    level: CpuLevel,
    t: GgmlType,
    w: &[u8],
    row_bytes: usize,
    r0: usize,
    strips: usize,
    x: &super::q8_act::Q8Act,
    out: *mut f32,
    ld: usize,
) {
    debug_assert!(has_int_dot(t) && has_gemm(level));
    assert!(
        (r0 + STRIP * strips) * row_bytes <= w.len()
            && row_bytes / t.block_bytes() * t.block_elems() == x.cols,
        "weights and activations do not match"
    );
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: passed on to the caller.
        CpuLevel::Avx2 => unsafe {
            x86_gemm::gemm_strips_avx2(t, w, row_bytes, r0, strips, x, out, ld)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: passed on to the caller.
        CpuLevel::Avx512Vnni => unsafe {
            x86_gemm::gemm_strips_vnni(t, w, row_bytes, r0, strips, x, out, ld)
        },
        _ => {
            let _ = (out, ld);
            unreachable!("{level:?} has no GEMM")
        }
    }
}

/// Rows `8 * s0..8 * (s0 + count)` of `x · wᵀ` from repacked strips, for every token of `x`,
/// written to `out[token * ld + row]` (decode and prefill alike).
///
/// # Safety
/// As [`gemm_strips`].
pub unsafe fn gemm_repacked(
    level: CpuLevel,
    w: &strips::Strips,
    s0: usize,
    count: usize,
    x: &super::q8_act::Q8Act,
    out: *mut f32,
    ld: usize,
) {
    assert!(
        s0 + count <= w.strips && w.blocks * w.dtype.block_elems() == x.cols,
        "weights and activations do not match"
    );
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: passed on to the caller.
        CpuLevel::Avx2 => unsafe { x86_gemm::gemm_repacked_avx2(w, s0, count, x, out, ld) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: passed on to the caller.
        CpuLevel::Avx512Vnni => unsafe { x86_gemm::gemm_repacked_vnni(w, s0, count, x, out, ld) },
        _ => {
            let _ = (out, ld);
            unreachable!("{level:?} has no GEMM")
        }
    }
}

/// Runs `$body` with `$B` the block type of quantized format `$t` (float types are the caller's
/// error: they take the f32 path).
macro_rules! with_block_type {
    ($t:expr, $B:ident => $body:expr) => {
        $crate::quant::int_dot::with_block_type!(
            @each $t, $B, $body, Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2K Q3K Q4K Q5K Q6K Iq4Nl Iq4Xs Iq2Xxs Iq2Xs Iq2S
            Iq3Xxs Iq3S Iq1S Iq1M Tq1_0 Tq2_0
        )
    };
    (@each $t:expr, $B:ident, $body:expr, $($ty:ident)*) => {{
        match $t {
            $(GgmlType::$ty => {
                type $B = $crate::quant::$ty;
                $body
            })*
            GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16 => {
                unreachable!("float types take the f32 path")
            }
        }
    }};
}
pub(crate) use with_block_type;

/// Picks the block format; inlined into each level's entry point.
#[inline(always)]
pub(crate) fn dispatch<L: Lanes>(t: GgmlType, row: &[u8], xs: &[Q8Row], out: &mut [f32])
where
    Q4_0: Unpack<L>,
    Q4_1: Unpack<L>,
    Q5_0: Unpack<L>,
    Q5_1: Unpack<L>,
    Q8_0: Unpack<L>,
    Q2K: Unpack<L>,
    Q3K: Unpack<L>,
    Q4K: Unpack<L>,
    Q5K: Unpack<L>,
    Q6K: Unpack<L>,
    Iq4Nl: Unpack<L>,
    Iq4Xs: Unpack<L>,
    Iq2Xxs: Unpack<L>,
    Iq2Xs: Unpack<L>,
    Iq2S: Unpack<L>,
    Iq3Xxs: Unpack<L>,
    Iq3S: Unpack<L>,
    Iq1S: Unpack<L>,
    Iq1M: Unpack<L>,
    Tq1_0: Unpack<L>,
    Tq2_0: Unpack<L>,
{
    with_block_type!(t, B => tile::<B, L>(row, xs, out))
}

/// Splits `xs` into a full tile or single rows, so the token loop has a constant count.
#[inline(always)]
fn tile<B: Unpack<L>, L: Lanes>(row: &[u8], xs: &[Q8Row], out: &mut [f32]) {
    if xs.first().is_some_and(|x| x.wide()) {
        tile_as::<B, L, true>(row, xs, out)
    } else {
        tile_as::<B, L, false>(row, xs, out)
    }
}

/// [`tile`] for activations with (`WIDE`) or without residual bytes.
#[inline(always)]
fn tile_as<B: Unpack<L>, L: Lanes, const WIDE: bool>(row: &[u8], xs: &[Q8Row], out: &mut [f32]) {
    if let (Ok(xs), Ok(out)) = (
        <&[Q8Row; TILE]>::try_from(xs),
        <&mut [f32; TILE]>::try_from(&mut *out),
    ) {
        return dot_tile::<B, L, TILE, WIDE>(row, xs, out);
    }
    for (x, o) in xs.iter().zip(out.iter_mut()) {
        let mut one = [0.0];
        dot_tile::<B, L, 1, WIDE>(row, &[*x], &mut one);
        *o = one[0];
    }
}

/// The group loop: each block is unpacked once into runs of codes and per-group scales and
/// offsets, then dotted with every one of the `T` activation rows.
#[inline(always)]
fn dot_tile<B: Unpack<L>, L: Lanes, const T: usize, const WIDE: bool>(
    row: &[u8],
    xs: &[Q8Row; T],
    out: &mut [f32; T],
) {
    let per_block = B::ELEMS / Q8_BLOCK;
    let blocks = row.len() / B::BYTES;
    for x in xs {
        assert!(
            x.qs.len() == blocks * B::ELEMS
                && x.d.len() == blocks * per_block
                && x.lo.len() == if WIDE { x.qs.len() } else { 0 }
                && x.s32.len() == blocks * per_block
                && x.s16.len() == 2 * blocks * per_block,
            "activation row does not match the weight row"
        );
    }
    let mut acc = [L::zero(); T];
    let mut offsets = [0.0f32; T];
    let mut runs = [L::load_run(&[0; 32]); MAX_RUNS];
    let (mut scale, mut offset) = ([0.0f32; 16], [0.0f32; 16]);
    for (bi, b) in row.chunks_exact(B::BYTES).enumerate() {
        B::unpack(b, &mut runs, &mut scale, &mut offset);
        for (j, &run) in runs[..per_block].iter().enumerate() {
            // Index of this run of 32 in the activation row, and its groups.
            let e = bi * per_block + j;
            let one_group = B::GROUP == 32;
            let (g_lo, g_hi) = if one_group {
                (j, j)
            } else {
                (2 * j, 2 * j + 1)
            };
            for t in 0..T {
                let x = &xs[t];
                // SAFETY: `e < blocks * per_block`, and the lengths were checked above.
                let (dx, qx, lo, s16, s32) = unsafe {
                    (
                        *x.d.get_unchecked(e),
                        &*x.qs.as_ptr().add(32 * e).cast::<[i8; 32]>(),
                        WIDE.then(|| &*x.lo.as_ptr().add(32 * e).cast::<[i8; 32]>()),
                        [*x.s16.get_unchecked(2 * e), *x.s16.get_unchecked(2 * e + 1)],
                        *x.s32.get_unchecked(e),
                    )
                };
                acc[t] = L::dot32(
                    acc[t],
                    run,
                    qx,
                    lo,
                    scale[g_lo] * dx,
                    scale[g_hi] * dx,
                    B::SIGNED,
                    one_group,
                );
                offsets[t] += if one_group {
                    offset[j] * s32
                } else {
                    offset[g_lo] * s16[0] + offset[g_hi] * s16[1]
                };
            }
        }
    }
    for t in 0..T {
        out[t] = L::total(acc[t]) + offsets[t];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::q8_act::Q8Act;

    /// xorshift values in [-1, 1).
    fn values(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 20011) as f32 / 10005.5 - 1.0
            })
            .collect()
    }

    /// `rows` random rows of `cols` values encoded as `t`, and their exact values.
    fn weights(t: GgmlType, rows: usize, cols: usize) -> (Vec<u8>, Vec<f32>) {
        let n = rows * cols;
        let bytes = t
            .quantize(&values(t.id() as u64 + 1, n))
            .unwrap_or_else(|_| {
                // Formats Ember cannot write: random bytes, with the f16 scales kept small.
                let bb = t.block_bytes();
                values(99, n / t.block_elems() * bb)
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        if t.scale_high_bytes().contains(&(i % bb)) {
                            0x2c
                        } else {
                            (v.to_bits() >> 7) as u8
                        }
                    })
                    .collect()
            });
        let mut wd = vec![0.0; n];
        t.dequantize(&bytes, &mut wd);
        (bytes, wd)
    }

    /// Checks `got` against the f64 dot of exact weights `w` with the dequantized activations
    /// (what the integer kernels compute, up to f32 rounding), relative to the sum of magnitudes.
    fn check(got: f32, w: &[f32], x: &crate::quant::q8_act::Q8Row, what: &str) {
        let terms = w
            .iter()
            .enumerate()
            .map(|(j, &w)| w as f64 * x.value(j) as f64);
        let (want, norm) = terms.fold((0.0, 0.0), |(s, n), v| (s + v, n + v.abs()));
        assert!(
            (got as f64 - want).abs() <= 1e-5 * f64::max(norm, 1e-3),
            "{what}: {got} vs {want}"
        );
    }

    /// Every level and format, tiles of every size.
    #[test]
    fn every_level_matches_the_dequantized_dot() {
        let levels: Vec<_> = CpuLevel::ALL.iter().filter(|l| l.supported()).collect();
        eprintln!("integer kernel levels on this CPU: {levels:?}");
        #[cfg(target_arch = "aarch64")]
        assert!(CpuLevel::Neon.supported(), "NEON is part of AArch64");
        for &t in GgmlType::ALL.iter().filter(|&&t| has_int_dot(t)) {
            let cols = 3 * t.block_elems().max(256);
            let (bytes, wd) = weights(t, 1, cols);
            for wide in [false, true] {
                let xq = Q8Act::quantize(&values(7, TILE * cols), cols, wide);
                for level in CpuLevel::ALL.into_iter().filter(|l| l.supported()) {
                    for n in 1..=TILE {
                        let rows: Vec<_> = (0..n).map(|i| xq.row(i)).collect();
                        let mut out = vec![0.0; n];
                        dot_rows(level, t, &bytes, &rows, &mut out);
                        for (i, &got) in out.iter().enumerate() {
                            let what = format!("{} {level:?} tile {n} row {i}", t.name());
                            check(got, &wd, &xq.row(i), &what);
                        }
                    }
                }
            }
        }
    }

    /// The strip GEMM of every level and format: two strips starting at row 8 of a 24-row
    /// weight, 15 tokens (register tiles of 8, 4, 2 and 1), untouched columns kept.
    #[test]
    fn gemm_strips_match_the_dequantized_dot() {
        let (rows, tokens) = (3 * STRIP, 15);
        for &t in GgmlType::ALL.iter().filter(|&&t| has_int_dot(t)) {
            let cols = 2 * t.block_elems().max(256) + t.block_elems().max(32);
            let (bytes, wd) = weights(t, rows, cols);
            let rb = bytes.len() / rows;
            for wide in [false, true] {
                let xq = Q8Act::quantize(&values(5, tokens * cols), cols, wide);
                for level in CpuLevel::ALL
                    .into_iter()
                    .filter(|&l| l.supported() && has_gemm(l))
                {
                    let mut out = vec![f32::NAN; tokens * rows];
                    // SAFETY: `out` has every row the call writes; the level is supported.
                    unsafe {
                        gemm_strips(level, t, &bytes, rb, STRIP, 2, &xq, out.as_mut_ptr(), rows)
                    };
                    for tok in 0..tokens {
                        for r in 0..rows {
                            let got = out[tok * rows + r];
                            if r < STRIP {
                                assert!(got.is_nan(), "row {r} is not the GEMM's to write");
                                continue;
                            }
                            let what = format!("{} {level:?} token {tok} row {r}", t.name());
                            check(got, &wd[r * cols..(r + 1) * cols], &xq.row(tok), &what);
                        }
                    }
                }
            }
        }
    }
}
