//! x86-64 byte-dot primitives: AVX2 (`vpmaddubsw` pairs of u8·i8 into i16, `vpmaddwd` into i32)
//! and AVX-512 VNNI (`vpdpbusd`: four u8·i8 products into i32 in one instruction).
//!
//! Both multiply unsigned bytes by signed bytes. Unsigned codes stay below 64, so `vpmaddubsw`'s
//! i16 pair sums (at most 2·63·127) never saturate. Signed weights (Q8_0) go through the sign
//! trick: `|w| · (x · sign w)` equals `w · x` (with `x = -128` impossible, activations being
//! symmetric in ±127).

use std::arch::x86_64::*;
use std::marker::PhantomData;

use super::{Lanes, MAX_RUNS, Unpack, dispatch};
use crate::quant::q8_act::Q8Row;
use crate::quant::{
    GgmlType, Iq1M, Iq1S, Iq2S, Iq2Xs, Iq2Xxs, Iq3S, Iq3Xxs, Iq4Nl, Iq4Xs, Q2K, Q3K, Q4_0, Q4_1,
    Q4K, Q5_0, Q5_1, Q5K, Q6K, Q8_0, Tq1_0, Tq2_0, k_scale_min,
};

/// A u8·i8 product instruction: `acc + Σ_{4 bytes} w·x` in each i32 lane.
pub(crate) trait Product {
    /// Whether `w` may be any unsigned byte (`vpdpbusd` sums in 32 bits); `vpmaddubsw`
    /// saturates pairs at 16 bits, so its codes must stay below 64 (or 128 with the sign trick).
    const FULL_BYTES: bool;
    /// The product; `w` unsigned (below 64 for `vpmaddubsw`'s sake), `x` signed.
    fn idot(acc: __m256i, w: __m256i, x: __m256i) -> __m256i;
}

/// AVX2: `vpmaddubsw` (pairs into i16) then `vpmaddwd` against ones (into i32).
pub(crate) struct Maddubs;

impl Product for Maddubs {
    const FULL_BYTES: bool = false;

    #[inline(always)]
    fn idot(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
        // SAFETY: register operations; the callers run with AVX2.
        unsafe {
            let pairs = _mm256_maddubs_epi16(w, x);
            _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
        }
    }
}

/// AVX-512 VNNI (with VL, on 256-bit vectors: no frequency penalty, same layout): `vpdpbusd`.
pub(crate) struct Dpbusd;

impl Product for Dpbusd {
    const FULL_BYTES: bool = true;

    #[inline(always)]
    fn idot(acc: __m256i, w: __m256i, x: __m256i) -> __m256i {
        // SAFETY: register operations; the callers run with AVX-512 VNNI and VL.
        unsafe { _mm256_dpbusd_epi32(acc, w, x) }
    }
}

/// `acc + w·x` per i32 lane for codes that are unsigned, or signed bytes when `signed` (the
/// sign trick moves `w`'s sign onto `x`).
#[inline(always)]
pub(crate) fn idot<P: Product>(acc: __m256i, w: __m256i, x: __m256i, signed: bool) -> __m256i {
    if signed {
        // SAFETY: register operations; the callers run with AVX2.
        let (w, x) = unsafe { (_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)) };
        P::idot(acc, w, x)
    } else {
        P::idot(acc, w, x)
    }
}

/// x86 lanes over a product instruction.
pub(crate) struct X86<P>(PhantomData<P>);

impl<P: Product> Lanes for X86<P> {
    type Acc = __m256;
    type Run = __m256i;

    #[inline(always)]
    fn zero() -> __m256 {
        // SAFETY: the callers run with AVX.
        unsafe { _mm256_setzero_ps() }
    }

    #[inline(always)]
    fn load_run(c: &[u8; 32]) -> __m256i {
        // SAFETY: 32 bytes.
        unsafe { load(c.as_ptr()) }
    }

    #[inline(always)]
    fn dot32(
        acc: __m256,
        c: __m256i,
        q: &[i8; 32],
        lo: Option<&[i8; 32]>,
        s_lo: f32,
        s_hi: f32,
        signed: bool,
        one_group: bool,
    ) -> __m256 {
        // SAFETY: 32-byte loads from 32-byte arrays; the callers run with AVX2 and FMA.
        unsafe {
            let zero = _mm256_setzero_si256();
            let mut sums = idot::<P>(zero, c, load(q.as_ptr().cast()), signed);
            if let Some(lo) = lo {
                let low = idot::<P>(zero, c, load(lo.as_ptr().cast()), signed);
                sums = _mm256_add_epi32(_mm256_slli_epi32(sums, 8), low);
            }
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scales(s_lo, s_hi, one_group), acc)
        }
    }

    #[inline(always)]
    fn total(acc: __m256) -> f32 {
        // SAFETY: register operations; the callers run with AVX.
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_movehdup_ps(s));
            _mm_cvtss_f32(s)
        }
    }
}

/// Float scales for the low and high 128-bit halves (four i32 lanes each): one broadcast when
/// the run is one group.
#[inline(always)]
fn scales(s_lo: f32, s_hi: f32, one_group: bool) -> __m256 {
    // SAFETY: plain register operations; the callers run with AVX.
    unsafe {
        if one_group {
            _mm256_set1_ps(s_lo)
        } else {
            _mm256_set_m128(_mm_set1_ps(s_hi), _mm_set1_ps(s_lo))
        }
    }
}

/// The f16 at `b[i..i + 2]`, converted by F16C (two instructions instead of a dozen).
#[inline(always)]
fn f16(b: &[u8], i: usize) -> f32 {
    let h = u16::from_le_bytes([b[i], b[i + 1]]);
    // SAFETY: register operations; the callers run with F16C.
    unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(h)))) }
}

/// Defines an entry point twice, `$avx2` and `$vnni`: the body compiled with each level's target
/// features, `$P` naming its product instruction ([`Maddubs`] or [`Dpbusd`]). Both are unsafe:
/// callers must run on a CPU with the level's features (and meet the body's own conditions).
macro_rules! x86_levels {
    ($(#[$doc:meta])* fn $avx2:ident / $vnni:ident <$P:ident> ($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(super) unsafe fn $avx2($($arg: $ty),*) {
            #[allow(dead_code)]
            type $P = $crate::quant::int_dot::x86::Maddubs;
            $body
        }
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        pub(super) unsafe fn $vnni($($arg: $ty),*) {
            #[allow(dead_code)]
            type $P = $crate::quant::int_dot::x86::Dpbusd;
            $body
        }
    };
}
pub(crate) use x86_levels;

x86_levels! {
    /// [`super::dot_rows`] at an x86 level.
    fn dot_rows_avx2 / dot_rows_vnni<P>(t: GgmlType, row: &[u8], xs: &[Q8Row], out: &mut [f32]) {
        dispatch::<X86<P>>(t, row, xs, out)
    }
}

/// 32 bytes at `p` (unaligned).
///
/// # Safety
/// `p` must be valid for 32 bytes; the caller runs with AVX.
#[inline(always)]
unsafe fn load(p: *const u8) -> __m256i {
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// The 32 nibbles of 16 bytes at `p` in element order: low nibbles, then high nibbles.
///
/// # Safety
/// `p` must be valid for 16 bytes; the caller runs with AVX2.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> __m256i {
    unsafe {
        let q = _mm_loadu_si128(p.cast());
        let both = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
        _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
    }
}

/// `0x10` in byte `i` where bit `i` of `bits` is set: the fifth bit of Q5_0/Q5_1 codes.
#[inline(always)]
fn fifth_bits(bits: u32) -> __m256i {
    // SAFETY: register operations; the caller runs with AVX2.
    unsafe {
        let spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(bits as i32),
            _mm256_setr_epi64x(
                0,
                0x0101_0101_0101_0101,
                0x0202_0202_0202_0202,
                0x0303_0303_0303_0303,
            ),
        );
        let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
        let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
        _mm256_and_si256(set, _mm256_set1_epi8(0x10))
    }
}

/// `(v >> shift) & mask` on every byte (`mask` keeps bits that did not cross from the next byte).
#[inline(always)]
fn shift_mask(v: __m256i, shift: i32, mask: i8) -> __m256i {
    // SAFETY: register operations; the caller runs with AVX2.
    unsafe {
        let s = _mm256_srl_epi16(v, _mm_cvtsi32_si128(shift));
        _mm256_and_si256(s, _mm256_set1_epi8(mask))
    }
}

/// `Unpack` for formats whose block is one run of 32 codes: `$run(b)` gives the run, its scale
/// and its offset. (Named functions, not closures: a closure would not inherit the caller's
/// target features, and its intrinsics would become calls.)
macro_rules! one_run_unpack {
    ($($t:ty => $run:ident;)*) => {$(
        impl<P: Product> Unpack<X86<P>> for $t {
            #[inline(always)]
            fn unpack(
                b: &[u8],
                runs: &mut [__m256i; MAX_RUNS],
                scale: &mut [f32; 16],
                offset: &mut [f32; 16],
            ) {
                (runs[0], scale[0], offset[0]) = $run(b);
            }
        }
    )*};
}

one_run_unpack! {
    Q4_0 => q4_0_run;
    Q4_1 => q4_1_run;
    Q5_0 => q5_0_run;
    Q5_1 => q5_1_run;
    Q8_0 => q8_0_run;
}

/// The fifth bits of a Q5_0/Q5_1 block, from the u32 at `b[at..]`.
#[inline(always)]
fn fifth_bits_at(b: &[u8], at: usize) -> __m256i {
    fifth_bits(u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]))
}

// SAFETY (in each of the following): the block has its format's size, so every load stays
// inside it; the callers run with AVX2 and F16C.

#[inline(always)]
fn q4_0_run(b: &[u8]) -> (__m256i, f32, f32) {
    let d = f16(b, 0);
    (unsafe { nibbles(b[2..18].as_ptr()) }, d, -8.0 * d)
}

#[inline(always)]
fn q4_1_run(b: &[u8]) -> (__m256i, f32, f32) {
    (unsafe { nibbles(b[4..20].as_ptr()) }, f16(b, 0), f16(b, 2))
}

#[inline(always)]
fn q5_0_run(b: &[u8]) -> (__m256i, f32, f32) {
    let d = f16(b, 0);
    let codes = unsafe { _mm256_or_si256(nibbles(b[6..22].as_ptr()), fifth_bits_at(b, 2)) };
    (codes, d, -16.0 * d)
}

#[inline(always)]
fn q5_1_run(b: &[u8]) -> (__m256i, f32, f32) {
    let codes = unsafe { _mm256_or_si256(nibbles(b[8..24].as_ptr()), fifth_bits_at(b, 4)) };
    (codes, f16(b, 0), f16(b, 2))
}

#[inline(always)]
fn q8_0_run(b: &[u8]) -> (__m256i, f32, f32) {
    (unsafe { load(b[2..34].as_ptr()) }, f16(b, 0), 0.0)
}

/// Scales and offsets of a Q4_K/Q5_K block's eight groups.
#[inline(always)]
fn k_groups(b: &[u8], scale: &mut [f32; 16], offset: &mut [f32; 16]) {
    let (d, dmin) = (f16(b, 0), f16(b, 2));
    for g in 0..8 {
        let (sc, m) = k_scale_min(g, &b[4..16]);
        (scale[g], offset[g]) = (d * sc as f32, -dmin * m as f32);
    }
}

impl<P: Product> Unpack<X86<P>> for Q4K {
    #[inline(always)]
    fn unpack(
        b: &[u8],
        runs: &mut [__m256i; MAX_RUNS],
        scale: &mut [f32; 16],
        offset: &mut [f32; 16],
    ) {
        k_groups(b, scale, offset);
        for (i, pair) in runs.chunks_exact_mut(2).enumerate() {
            // SAFETY: a block is 144 bytes; the codes are bytes 16..144.
            let v = unsafe { load(b[16 + 32 * i..48 + 32 * i].as_ptr()) };
            (pair[0], pair[1]) = (shift_mask(v, 0, 0x0f), shift_mask(v, 4, 0x0f));
        }
    }
}

impl<P: Product> Unpack<X86<P>> for Q5K {
    #[inline(always)]
    fn unpack(
        b: &[u8],
        runs: &mut [__m256i; MAX_RUNS],
        scale: &mut [f32; 16],
        offset: &mut [f32; 16],
    ) {
        k_groups(b, scale, offset);
        // SAFETY: a block is 176 bytes: high bits at 16..48, low nibbles at 48..176.
        let qh = unsafe { load(b[16..48].as_ptr()) };
        for (g, run) in runs.iter_mut().enumerate() {
            let v = unsafe { load(b[48 + 32 * (g / 2)..80 + 32 * (g / 2)].as_ptr()) };
            let high = shift_mask(qh, g as i32, 1);
            // SAFETY: register operations with AVX2.
            *run = unsafe {
                _mm256_or_si256(
                    shift_mask(v, 4 * (g as i32 % 2), 0x0f),
                    _mm256_slli_epi16(high, 4),
                )
            };
        }
    }
}

impl<P: Product> Unpack<X86<P>> for Q6K {
    #[inline(always)]
    fn unpack(
        b: &[u8],
        runs: &mut [__m256i; MAX_RUNS],
        scale: &mut [f32; 16],
        offset: &mut [f32; 16],
    ) {
        let d = f16(b, 208);
        for (g, (s, o)) in scale.iter_mut().zip(offset.iter_mut()).enumerate() {
            *s = d * f32::from(b[192 + g] as i8);
            *o = -32.0 * *s;
        }
        // Run `4 * half + k`: low nibbles of `ql[32 * (k % 2)..]` (shifted by 4 for k >= 2) and
        // bit pair `k` of `qh`.
        for (j, run) in runs.iter_mut().enumerate() {
            let (half, k) = (j / 4, j as i32 % 4);
            let ql = 64 * half + 32 * (j % 2);
            let qh = 128 + 32 * half;
            // SAFETY: a block is 210 bytes; register operations with AVX2.
            *run = unsafe {
                let low = shift_mask(load(b[ql..ql + 32].as_ptr()), 4 * (k / 2), 0x0f);
                let high = shift_mask(load(b[qh..qh + 32].as_ptr()), 2 * k, 3);
                _mm256_or_si256(low, _mm256_slli_epi16(high, 4))
            };
        }
    }
}

/// Q2_K, Q3_K and the i-quants unpack through their groups (less common formats, or levels
/// from a table; still integer dot products).
/// The formats unpacked through their groups (bytes in memory).
macro_rules! unpack_by_groups {
    ($($t:ty)*) => {$(impl<P: Product> Unpack<X86<P>> for $t {})*};
}
unpack_by_groups!(Q2K Q3K Iq4Nl Iq4Xs Iq2Xxs Iq2Xs Iq2S Iq3Xxs Iq3S Iq1S Iq1M Tq1_0 Tq2_0);
