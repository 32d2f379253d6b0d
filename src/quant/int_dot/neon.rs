//! AArch64 byte-dot primitives: NEON `smull`/`sadalp` (every AArch64 CPU: Cortex-A53 and up) and
//! `sdot` (Armv8.2 dotprod: Cortex-A55/A76 — the Raspberry Pi 5, Jetson Orin, phones).
//!
//! Codes are below 128 (or are Q8_0's signed bytes), so they multiply as signed bytes and need no
//! sign trick. Runs stay as bytes and every format unpacks through its groups. `sdot` is written
//! as inline assembly: its intrinsic (`vdotq_s32`) is not stable Rust yet.

use std::arch::aarch64::*;
use std::marker::PhantomData;

use super::{Lanes, Unpack, dispatch};
use crate::quant::q8_act::Q8Row;
use crate::quant::{AffineGroups, GgmlType};

/// A signed byte product: `acc + Σ w·x` in each i32 lane (which products a lane sums does not
/// matter: only the vector's total is used).
pub(crate) trait Product {
    /// The product.
    fn idot(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t;
}

/// Baseline NEON: widening multiplies into i16, pairwise-added into i32.
pub(crate) struct Smull;

impl Product for Smull {
    #[inline(always)]
    fn idot(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
        // SAFETY: register operations; NEON is always present on AArch64.
        unsafe {
            let low = vmull_s8(vget_low_s8(w), vget_low_s8(x));
            let high = vmull_high_s8(w, x);
            vpadalq_s16(vpadalq_s16(acc, low), high)
        }
    }
}

/// Armv8.2 dotprod: `sdot`, four products into each i32 lane.
pub(crate) struct Sdot;

impl Product for Sdot {
    #[inline(always)]
    fn idot(mut acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
        // SAFETY: a register-only instruction; the callers run with dotprod.
        unsafe {
            std::arch::asm!(
                "sdot {acc:v}.4s, {w:v}.16b, {x:v}.16b",
                acc = inout(vreg) acc,
                w = in(vreg) w,
                x = in(vreg) x,
                options(pure, nomem, nostack)
            );
        }
        acc
    }
}

/// NEON lanes over a product instruction.
pub(crate) struct Neon<P>(PhantomData<P>);

/// Every format unpacks through its groups.
impl<B: AffineGroups, P: Product> Unpack<Neon<P>> for B {}

/// `Σ c·x` over 16 codes and activation bytes, with the residual bytes when given.
#[inline(always)]
fn sums16<P: Product>(c: &[u8], q: &[i8], lo: Option<&[i8]>) -> int32x4_t {
    // SAFETY: 16-byte loads from 16-byte slices; NEON is always present.
    unsafe {
        let w = vreinterpretq_s8_u8(vld1q_u8(c.as_ptr()));
        let p = P::idot(vdupq_n_s32(0), w, vld1q_s8(q.as_ptr()));
        match lo {
            Some(lo) => {
                let r = P::idot(vdupq_n_s32(0), w, vld1q_s8(lo.as_ptr()));
                vaddq_s32(vshlq_n_s32(p, 8), r)
            }
            None => p,
        }
    }
}

impl<P: Product> Lanes for Neon<P> {
    type Acc = float32x4_t;
    type Run = [u8; 32];

    #[inline(always)]
    fn zero() -> float32x4_t {
        // SAFETY: register operation.
        unsafe { vdupq_n_f32(0.0) }
    }

    #[inline(always)]
    fn load_run(c: &[u8; 32]) -> [u8; 32] {
        *c
    }

    #[inline(always)]
    fn dot32(
        acc: float32x4_t,
        c: [u8; 32],
        q: &[i8; 32],
        lo: Option<&[i8; 32]>,
        s_lo: f32,
        s_hi: f32,
        _signed: bool,
        _one_group: bool,
    ) -> float32x4_t {
        let a = sums16::<P>(&c[..16], &q[..16], lo.map(|l| &l[..16]));
        let b = sums16::<P>(&c[16..], &q[16..], lo.map(|l| &l[16..]));
        // SAFETY: register operations.
        unsafe {
            let acc = vfmaq_n_f32(acc, vcvtq_f32_s32(a), s_lo);
            vfmaq_n_f32(acc, vcvtq_f32_s32(b), s_hi)
        }
    }

    #[inline(always)]
    fn total(acc: float32x4_t) -> f32 {
        // SAFETY: register operation.
        unsafe { vaddvq_f32(acc) }
    }
}

/// [`super::dot_rows`] with baseline NEON.
#[target_feature(enable = "neon")]
pub(super) fn dot_rows_neon(t: GgmlType, row: &[u8], xs: &[Q8Row], out: &mut [f32]) {
    dispatch::<Neon<Smull>>(t, row, xs, out)
}

/// [`super::dot_rows`] with NEON and dotprod.
///
/// # Safety
/// The CPU has dotprod.
#[target_feature(enable = "neon,dotprod")]
pub(super) unsafe fn dot_rows_dotprod(t: GgmlType, row: &[u8], xs: &[Q8Row], out: &mut [f32]) {
    dispatch::<Neon<Sdot>>(t, row, xs, out)
}
