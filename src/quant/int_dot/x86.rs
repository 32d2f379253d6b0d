//! x86-64 byte-dot primitives: AVX2 (`vpmaddubsw` pairs of u8·i8 into i16, `vpmaddwd` into i32)
//! and AVX-512 VNNI (`vpdpbusd`: four u8·i8 products into i32 in one instruction).
//!
//! Both multiply unsigned bytes by signed bytes. Unsigned codes stay below 64, so `vpmaddubsw`'s
//! i16 pair sums (at most 2·63·127) never saturate. Signed weights (Q8_0) go through the sign
//! trick: `|w| · (x · sign w)` equals `w · x` (with `x = -128` impossible, activations being
//! symmetric in ±127).

use std::arch::x86_64::*;

use super::{Lanes, dispatch};
use crate::quant::GgmlType;
use crate::quant::q8_act::Q8Row;

/// Unsigned codes and the activation bytes as the operands of a u8·i8 product.
#[inline(always)]
fn operands(c: &[u8; 32], x: &[i8; 32], signed: bool) -> (__m256i, __m256i) {
    // SAFETY: 32-byte unaligned loads from 32-byte arrays; the callers run with AVX2.
    unsafe {
        let c = _mm256_loadu_si256(c.as_ptr().cast());
        let x = _mm256_loadu_si256(x.as_ptr().cast());
        if signed {
            (_mm256_sign_epi8(c, c), _mm256_sign_epi8(x, c))
        } else {
            (c, x)
        }
    }
}

/// Two float scales for the low and high 128-bit halves (four i32 lanes each).
#[inline(always)]
fn scales(s_lo: f32, s_hi: f32) -> __m256 {
    // SAFETY: plain register operations; the callers run with AVX.
    unsafe { _mm256_set_m128(_mm_set1_ps(s_hi), _mm_set1_ps(s_lo)) }
}

#[inline(always)]
fn hsum(acc: __m256) -> f32 {
    // SAFETY: register operations; the callers run with AVX.
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

/// AVX2 lanes.
pub(crate) struct Avx2;

impl Lanes for Avx2 {
    type Acc = __m256;

    #[inline(always)]
    fn zero() -> __m256 {
        // SAFETY: the callers run with AVX.
        unsafe { _mm256_setzero_ps() }
    }

    #[inline(always)]
    fn dot32(
        acc: __m256,
        c: &[u8; 32],
        x: &[i8; 32],
        s_lo: f32,
        s_hi: f32,
        signed: bool,
    ) -> __m256 {
        let (c, x) = operands(c, x, signed);
        // SAFETY: the callers run with AVX2 and FMA.
        unsafe {
            let pairs = _mm256_maddubs_epi16(c, x);
            let sums = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scales(s_lo, s_hi), acc)
        }
    }

    #[inline(always)]
    fn total(acc: __m256) -> f32 {
        hsum(acc)
    }
}

/// AVX-512 VNNI lanes (256-bit vectors, so no frequency penalty and the same data layout).
pub(crate) struct Vnni;

impl Lanes for Vnni {
    type Acc = __m256;

    #[inline(always)]
    fn zero() -> __m256 {
        Avx2::zero()
    }

    #[inline(always)]
    fn dot32(
        acc: __m256,
        c: &[u8; 32],
        x: &[i8; 32],
        s_lo: f32,
        s_hi: f32,
        signed: bool,
    ) -> __m256 {
        let (c, x) = operands(c, x, signed);
        // SAFETY: the callers run with AVX-512 VNNI and VL.
        unsafe {
            let sums = _mm256_dpbusd_epi32(_mm256_setzero_si256(), c, x);
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), scales(s_lo, s_hi), acc)
        }
    }

    #[inline(always)]
    fn total(acc: __m256) -> f32 {
        hsum(acc)
    }
}

/// [`super::dot_rows`] with AVX2.
#[target_feature(enable = "avx2,fma")]
pub(super) fn dot_rows_avx2(t: GgmlType, row: &[u8], xs: &[Q8Row], out: &mut [f32]) {
    dispatch::<Avx2>(t, row, xs, out)
}

/// [`super::dot_rows`] with AVX-512 VNNI.
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn dot_rows_vnni(t: GgmlType, row: &[u8], xs: &[Q8Row], out: &mut [f32]) {
    dispatch::<Vnni>(t, row, xs, out)
}
