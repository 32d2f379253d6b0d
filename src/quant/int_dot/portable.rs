//! The byte-dot primitive in plain Rust: what CPUs without a SIMD kernel run, and the reference
//! the SIMD levels are tested against.

use super::{Lanes, Unpack};
use crate::quant::AffineGroups;

/// Scalar lanes: exact integer sums of 16, then two multiply-adds.
pub(crate) struct Scalar;

impl Lanes for Scalar {
    type Acc = f32;
    type Run = [u8; 32];

    #[inline(always)]
    fn load_run(c: &[u8; 32]) -> [u8; 32] {
        *c
    }

    #[inline(always)]
    fn zero() -> f32 {
        0.0
    }

    #[inline(always)]
    fn dot32(
        acc: f32,
        c: [u8; 32],
        q: &[i8; 32],
        lo: Option<&[i8; 32]>,
        s_lo: f32,
        s_hi: f32,
        signed: bool,
        _one_group: bool,
    ) -> f32 {
        let half = |h: usize| -> i32 {
            (16 * h..16 * h + 16)
                .map(|i| {
                    let code = if signed {
                        i32::from(c[i] as i8)
                    } else {
                        i32::from(c[i])
                    };
                    let x = match lo {
                        Some(lo) => 256 * i32::from(q[i]) + i32::from(lo[i]),
                        None => i32::from(q[i]),
                    };
                    code * x
                })
                .sum()
        };
        acc + s_lo * half(0) as f32 + s_hi * half(1) as f32
    }

    #[inline(always)]
    fn total(acc: f32) -> f32 {
        acc
    }
}

/// Every format unpacks through its groups.
impl<B: AffineGroups> Unpack<Scalar> for B {}
