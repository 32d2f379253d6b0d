//! IQ4_NL: 32 weights as 4-bit indices into a fixed non-linear table of signed levels, with one
//! f16 scale. Layout: `d: f16, qs: [u8; 16]` (low nibbles elements 0..16, high nibbles 16..32, as
//! Q4_0); value `d * KVALUES[index]`.

use super::search::{GROUP_MAX_EPS, best_index, nearest_int};
use super::{
    AffineGroups, Quantize, affine_block_format, f16_at, importance_weights, nibbles, put_f16,
    signed_absmax, sum_squares,
};

/// The IQ4_NL block format.
pub struct Iq4Nl;

/// The 16 levels of IQ4_NL and IQ4_XS (llama.cpp's `kvalues_iq4nl`): denser near zero.
pub const KVALUES: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// The 32 levels of 16 `qs` bytes in element order, as signed bytes stored in `u8`.
#[inline(always)]
pub(crate) fn levels(qs: &[u8]) -> [u8; 32] {
    nibbles(qs).map(|n| KVALUES[n as usize] as u8)
}

affine_block_format!(Iq4Nl, 32, 18);

/// One group of signed levels (as Q8_0's bytes).
impl AffineGroups for Iq4Nl {
    const GROUP: usize = 32;
    const SIGNED: bool = true;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        f(0, &levels(&b[2..18]), f16_at(b, 0), 0.0);
    }
}

/// A block fitted to the IQ4 levels: the scale to store (IQ4_NL: the block's; IQ4_XS: the
/// super-block's), IQ4_XS's 6-bit group codes (biased by 32), and each value's level index.
pub(super) struct LevelFit {
    pub d: f32,
    pub groups: [u8; 8],
    pub l: [u8; 256],
}

/// The best scale for 32 values against the levels, trying 15 candidates around the largest
/// value's (llama.cpp's search with `ntry` 7, what llama-quantize runs with or without an
/// importance matrix). Errors are weighted by `weights`.
fn fit_group(x: &[f32], weights: &[f32], l: &mut [u8]) -> f32 {
    let max = signed_absmax(x);
    if max.abs() < GROUP_MAX_EPS {
        return 0.0;
    }
    let sums = |id: f32, l: Option<&mut [u8]>| {
        let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
        let mut store = l;
        for (j, (&v, &w)) in x.iter().zip(weights).enumerate() {
            let k = best_index(&KVALUES, id * v);
            if let Some(l) = store.as_deref_mut() {
                l[j] = k as u8;
            }
            let q = KVALUES[k] as f32;
            sumqx += w * q * v;
            sumq2 += w * q * q;
        }
        (sumqx, sumq2)
    };
    let first = -max / KVALUES[0] as f32;
    let (sumqx, sumq2) = sums(1.0 / first, Some(l));
    let mut d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for itry in -7..=7 {
        let (sumqx, sumq2) = sums((itry + KVALUES[0] as i32) as f32 / max, None);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    d
}

/// Fits `x` (32 values for IQ4_NL, 256 for IQ4_XS) to the levels as llama.cpp's quantizer does,
/// errors weighted by `importance · √(σ² + x²)` with an importance vector, else by `x²`.
pub(super) fn fit_levels(x: &[f32], importance: Option<&[f32]>) -> LevelFit {
    let sigma2 = sum_squares(x) * (2.0 / x.len() as f32);
    let mut fit = LevelFit {
        d: 0.0,
        groups: [0; 8],
        l: [0; 256],
    };
    let mut scales = [0.0f32; 8];
    let (mut max_scale, mut amax_scale) = (0.0f32, 0.0f32);
    for (ib, xb) in x.chunks_exact(32).enumerate() {
        let weights = match importance {
            Some(imp) => importance_weights(&imp[32 * ib..32 * ib + 32], xb, sigma2),
            None => xb.iter().map(|v| v * v).collect(),
        };
        scales[ib] = fit_group(xb, &weights, &mut fit.l[32 * ib..32 * ib + 32]);
        if scales[ib].abs() > amax_scale {
            amax_scale = scales[ib].abs();
            max_scale = scales[ib];
        }
    }
    let requantize = |l: &mut [u8], xb: &[f32], d: f32| {
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        for (o, &v) in l.iter_mut().zip(xb) {
            *o = best_index(&KVALUES, id * v) as u8;
        }
    };
    if x.len() == 32 {
        fit.d = scales[0];
        requantize(&mut fit.l[..32], x, scales[0]);
        return fit;
    }
    fit.d = -max_scale / 32.0;
    let id = if fit.d != 0.0 { 1.0 / fit.d } else { 0.0 };
    for (ib, xb) in x.chunks_exact(32).enumerate() {
        let code = nearest_int(id * scales[ib]).clamp(-32, 31);
        requantize(&mut fit.l[32 * ib..32 * ib + 32], xb, fit.d * code as f32);
        fit.groups[ib] = (code + 32) as u8;
    }
    fit
}

/// Packs 32 level indices of one group as Q4_0 packs nibbles (low nibbles the first 16).
pub(super) fn pack_nibbles(l: &[u8], qs: &mut [u8]) {
    for j in 0..16 {
        qs[j] = l[j] | (l[j + 16] << 4);
    }
}

impl Quantize for Iq4Nl {
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        write_nl(&fit_levels(x, None), out)
    }

    fn quantize_block_weighted(x: &[f32], importance: &[f32], _: f32, out: &mut [u8]) {
        write_nl(&fit_levels(x, Some(importance)), out)
    }
}

fn write_nl(fit: &LevelFit, out: &mut [u8]) {
    put_f16(out, 0, fit.d);
    pack_nibbles(&fit.l[..32], &mut out[2..18]);
}
