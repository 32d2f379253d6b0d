//! Q6_K: 256 weights in 16 groups of 16, 6-bit values. Layout: `ql: [u8; 128]` (low nibbles),
//! `qh: [u8; 64]` (high bit pairs), `scales: [i8; 16]`, `d: f16`. Value `d * scale * (q - 32)`.
//! Per 128-weight half: `ql` 64 bytes, `qh` 32 bytes; weight `32k + l` takes nibble `k / 2` of
//! `ql[l + 32 * (k % 2)]` and bit pair `k` of `qh[l]`.

use super::search::{GROUP_MAX_EPS, make_qx_quants, nearest_int};
use super::{AffineGroups, BlockFormat, Quantize, dot_groups, f16_at, put_f16};

/// The Q6_K block format.
pub struct Q6K;

/// Sixteen groups of 16 six-bit integers; weights are `scale * (q - 32)`, so the offset is
/// `-32 * scale`.
impl AffineGroups for Q6K {
    const GROUP: usize = 16;
    #[inline(always)]
    fn groups(b: &[u8], mut f: impl FnMut(usize, &[u8], f32, f32)) {
        let d = f16_at(b, 208);
        let scales = &b[192..208];
        let mut q = [0u8; 16];
        for half in 0..2 {
            let ql = &b[64 * half..64 * half + 64];
            let qh = &b[128 + 32 * half..160 + 32 * half];
            for k in 0..4 {
                let low = &ql[32 * (k % 2)..32 * (k % 2) + 32];
                let (lshift, hshift) = (4 * (k / 2), 2 * k);
                for part in 0..2 {
                    let (low, high) = (
                        &low[16 * part..16 * part + 16],
                        &qh[16 * part..16 * part + 16],
                    );
                    for ((q, &l), &h) in q.iter_mut().zip(low).zip(high) {
                        *q = ((l >> lshift) & 0x0f) | (((h >> hshift) & 3) << 4);
                    }
                    let g = 8 * half + 2 * k + part;
                    let scale = d * (scales[g] as i8) as f32;
                    f(g, &q, scale, -32.0 * scale);
                }
            }
        }
    }
}

impl BlockFormat for Q6K {
    const ELEMS: usize = 256;
    const BYTES: usize = 210;
    #[inline(always)]
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        // Not `scale * q + offset`: one rounding, as the reference decoders do.
        Self::groups(b, |g, q, scale, _| {
            for (o, &q) in out[16 * g..16 * g + 16].iter_mut().zip(q) {
                *o = scale * (q as i32 - 32) as f32;
            }
        });
    }

    #[inline(always)]
    fn dot_run(bytes: &[u8], x: &[f32], acc: &mut [f32; 8]) {
        dot_groups::<Self>(bytes, x, acc);
    }
}

impl Quantize for Q6K {
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        quantize_q6k(x, None, out)
    }

    fn quantize_block_weighted(x: &[f32], importance: &[f32], _: f32, out: &mut [u8]) {
        quantize_q6k(x, Some(importance), out)
    }
}

/// llama.cpp's Q6_K quantizer: each 16 values' scale by [`make_qx_quants`] (weighted by the
/// importances where given, else by `x²`), the scales to signed bytes under one f16.
fn quantize_q6k(x: &[f32], importance: Option<&[f32]>, out: &mut [u8]) {
    let mut l = [0u8; 256];
    let mut scales = [0.0f32; 16];
    let (mut max_scale, mut max_abs) = (0.0f32, 0.0f32);
    for (ib, s) in scales.iter_mut().enumerate() {
        let (x, l) = (&x[16 * ib..16 * ib + 16], &mut l[16 * ib..16 * ib + 16]);
        *s = make_qx_quants(32, x, l, importance.map(|w| &w[16 * ib..16 * ib + 16]));
        if s.abs() > max_abs {
            max_abs = s.abs();
            max_scale = *s;
        }
    }
    out.fill(0);
    if max_abs < GROUP_MAX_EPS {
        return;
    }
    let iscale = -128.0 / max_scale;
    put_f16(out, 208, 1.0 / iscale);
    for (ib, &s) in scales.iter().enumerate() {
        out[192 + ib] = nearest_int(iscale * s).min(127) as i8 as u8;
    }
    let d = f16_at(out, 208);
    for j in 0..16 {
        let dl = d * (out[192 + j] as i8) as f32;
        if dl == 0.0 {
            continue;
        }
        for i in 16 * j..16 * j + 16 {
            l[i] = (nearest_int(x[i] / dl).clamp(-32, 31) + 32) as u8;
        }
    }
    for half in 0..2 {
        let (lh, ql, qh) = (&l[128 * half..128 * half + 128], 64 * half, 128 + 32 * half);
        for i in 0..32 {
            out[ql + i] = (lh[i] & 0x0f) | ((lh[i + 64] & 0x0f) << 4);
            out[ql + i + 32] = (lh[i + 32] & 0x0f) | ((lh[i + 96] & 0x0f) << 4);
            out[qh + i] = (lh[i] >> 4)
                | ((lh[i + 32] >> 4) << 2)
                | ((lh[i + 64] >> 4) << 4)
                | ((lh[i + 96] >> 4) << 6);
        }
    }
}
