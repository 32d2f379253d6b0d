//! GGML tensor encodings: float types and quantized block formats.
//!
//! Each block family lives in its own file and implements [`BlockFormat`]: its byte layout and
//! how to decode one block. Everything else — whole-tensor dequantization, the dot product of an
//! encoded row with f32 activations — is written once here, generic over the block type.

mod float;
pub mod int_dot;
mod iq1_m;
mod iq1_s;
mod iq1_search;
mod iq2_s;
mod iq2_xs;
mod iq2_xxs;
mod iq3_s;
mod iq3_xxs;
mod iq4_nl;
mod iq4_xs;
mod iq_grids;
mod lattice;
mod lattice_search;
mod q2_k;
mod q3_k;
mod q4_0;
mod q4_1;
mod q4_k;
mod q5_0;
mod q5_1;
mod q5_k;
mod q6_k;
mod q8_0;
pub mod q8_act;
mod search;
mod ternary;

pub use float::{Bf16, F16, F32};
pub use iq1_m::Iq1M;
pub use iq1_s::Iq1S;
pub use iq2_s::Iq2S;
pub use iq2_xs::Iq2Xs;
pub use iq2_xxs::Iq2Xxs;
pub use iq3_s::Iq3S;
pub use iq3_xxs::Iq3Xxs;
pub use iq4_nl::Iq4Nl;
pub use iq4_xs::Iq4Xs;
pub use lattice::lattice_table;
pub use q2_k::Q2K;
pub use q3_k::Q3K;
pub use q4_0::Q4_0;
pub use q4_1::Q4_1;
pub use q4_k::{Q4K, k_scale_min};
pub use q5_0::Q5_0;
pub use q5_1::Q5_1;
pub use q5_k::Q5K;
pub use q6_k::Q6K;
pub use q8_0::Q8_0;
pub use ternary::{Tq1_0, Tq2_0};

/// Elements in every K-quant super-block.
pub const QK_K: usize = 256;

/// One block encoding: a fixed number of elements stored in a fixed number of bytes.
pub trait BlockFormat {
    /// Elements per block.
    const ELEMS: usize;
    /// Bytes per block.
    const BYTES: usize;
    /// Decodes one block (`block.len() == BYTES`) into `out` (`out.len() == ELEMS`).
    fn dequantize_block(block: &[u8], out: &mut [f32]);

    /// Adds the dot product of consecutive blocks with `x` into eight partial sums. The default
    /// decodes up to 256 values at a time into a stack buffer (one-element "blocks" of float
    /// types would otherwise defeat SIMD); formats override it with a fused decode-and-multiply.
    #[inline(always)]
    fn dot_run(bytes: &[u8], x: &[f32], acc: &mut [f32; 8]) {
        let per_step = (QK_K / Self::ELEMS).max(1);
        let mut buf = [0.0f32; QK_K];
        for (blocks, xs) in bytes
            .chunks(per_step * Self::BYTES)
            .zip(x.chunks(per_step * Self::ELEMS))
        {
            let buf = &mut buf[..xs.len()];
            Self::dequantize_run(blocks, buf);
            dot_accumulate(acc, buf, xs);
        }
    }

    /// Decodes consecutive blocks into `out`; formats with a faster bulk decoder override it.
    #[inline(always)]
    fn dequantize_run(bytes: &[u8], out: &mut [f32]) {
        for (block, dst) in bytes
            .chunks_exact(Self::BYTES)
            .zip(out.chunks_exact_mut(Self::ELEMS))
        {
            Self::dequantize_block(block, dst);
        }
    }
}

/// A block format Ember can also write.
pub trait Quantize: BlockFormat {
    /// Encodes `x` (`ELEMS` values) into `out` (`BYTES` bytes): llama.cpp's reference quantizer.
    fn quantize_block(x: &[f32], out: &mut [u8]);

    /// Encodes `x` with each value's rounding error weighted by `importance` (its column's
    /// entry of an importance matrix, `ELEMS` values), as llama.cpp quantizes with `--imatrix`.
    /// `row_sigma2` is the mean square of the whole row the block belongs to (the 32-value
    /// formats weigh by it). Formats whose quantizer has no use for an importance matrix encode
    /// as [`Quantize::quantize_block`].
    fn quantize_block_weighted(x: &[f32], importance: &[f32], row_sigma2: f32, out: &mut [u8]) {
        let _ = (importance, row_sigma2);
        Self::quantize_block(x, out)
    }
}

/// Sum of squares, accumulated in order (as llama.cpp's quantizers do, so results match).
pub(crate) fn sum_squares(x: &[f32]) -> f32 {
    x.iter().fold(0.0, |s, v| s + v * v)
}

/// llama.cpp's per-value weights from an importance matrix: `importance · √(σ² + x²)`.
pub(crate) fn importance_weights(importance: &[f32], x: &[f32], sigma2: f32) -> Vec<f32> {
    importance
        .iter()
        .zip(x)
        .map(|(q, v)| q * (sigma2 + v * v).sqrt())
        .collect()
}

/// Writes `v` as a little-endian f16 at `b[i..i + 2]`.
#[inline]
pub(crate) fn put_f16(b: &mut [u8], i: usize, v: f32) {
    b[i..i + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::GgmlType;

    /// The portable build of the decoders (what CPUs without AVX2 run) agrees with the dispatched
    /// one on random blocks of every type.
    #[test]
    fn portable_and_dispatched_decoders_agree() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for &t in GgmlType::ALL {
            let n = 3 * t.block_elems().max(256);
            // Random bytes, with every f16 that is a scale kept finite and small.
            let values: Vec<f32> = (0..n)
                .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
                .collect();
            let bytes = match t.quantize(&values) {
                Ok(b) => b,
                Err(_) => (0..n / t.block_elems() * t.block_bytes())
                    .map(|i| if i % 2 == 1 { 0x3c } else { next() as u8 })
                    .collect(),
            };
            let x: Vec<f32> = (0..n)
                .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
                .collect();
            let (a, b) = (t.dot(&bytes, &x), t.dot_portable(&bytes, &x));
            assert!(
                (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                "{}: {a} vs {b}",
                t.name()
            );
            let (mut da, mut db) = (vec![0.0; n], vec![0.0; n]);
            t.dequantize(&bytes, &mut da);
            t.dequantize_portable(&bytes, &mut db);
            assert_eq!(da, db, "{}", t.name());
            let (a, b) = (super::dot_f32(&da, &x), super::dot_f32_portable(&da, &x));
            assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "f32: {a} vs {b}");
        }
    }
    #[test]
    fn f16_conversion_is_exact_for_every_value() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h).to_f32();
            let got = super::f16_bits_to_f32(h);
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "{h:#06x}: {got} vs {want}"
            );
        }
    }
}

/// Smallest and largest value.
pub(crate) fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// The value of largest magnitude, with its sign.
pub(crate) fn signed_absmax(x: &[f32]) -> f32 {
    x.iter()
        .copied()
        .fold(0.0f32, |m, v| if v.abs() > m.abs() { v } else { m })
}

/// Encodes rows of `importance.len()` values (any length without an importance matrix).
fn quantize_blocks<B: Quantize>(x: &[f32], importance: Option<&[f32]>) -> Vec<u8> {
    let mut out = vec![0u8; x.len() / B::ELEMS * B::BYTES];
    let mut row_sigma2 = 0.0;
    for (i, (src, dst)) in x
        .chunks_exact(B::ELEMS)
        .zip(out.chunks_exact_mut(B::BYTES))
        .enumerate()
    {
        match importance {
            Some(imp) => {
                let at = i * B::ELEMS % imp.len();
                if at == 0 {
                    let row = &x[i * B::ELEMS..i * B::ELEMS + imp.len()];
                    row_sigma2 = sum_squares(row) / imp.len() as f32;
                }
                B::quantize_block_weighted(src, &imp[at..at + B::ELEMS], row_sigma2, dst)
            }
            None => B::quantize_block(src, dst),
        }
    }
    out
}

/// Reads the little-endian f16 at `b[i..i + 2]` as f32.
#[inline(always)]
pub(crate) fn f16_at(b: &[u8], i: usize) -> f32 {
    f16_bits_to_f32(u16::from_le_bytes([b[i], b[i + 1]]))
}

/// Exact f16 -> f32 without branches on the value's class (block scales are read in the hot
/// loops; `half`'s conversion checks the CPU's features on every call). The f16 exponent and
/// mantissa shifted into f32 position, times 2^112 (the difference of the exponent biases),
/// is the value for normal and subnormal inputs alike; infinities and NaNs keep an all-ones
/// exponent.
#[inline(always)]
pub(crate) fn f16_bits_to_f32(h: u16) -> f32 {
    let h = u32::from(h);
    let magnitude = (h & 0x7fff) << 13;
    let scaled = f32::from_bits(magnitude) * f32::from_bits(0x7780_0000);
    let bits = if h & 0x7c00 == 0x7c00 {
        magnitude | 0x7f80_0000
    } else {
        scaled.to_bits()
    };
    f32::from_bits(bits | ((h & 0x8000) << 16))
}

/// Whether this CPU has AVX2, FMA and F16C. Portable x86-64 builds target SSE2; the hot decoding
/// loops also exist compiled for these (checked at run time, the answer is cached), so one binary
/// is fast on current CPUs and still runs on old ones. AArch64's NEON needs no check.
#[cfg(target_arch = "x86_64")]
#[inline]
fn avx2_fma_f16c() -> bool {
    std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("fma")
        && std::is_x86_feature_detected!("f16c")
}

/// Decodes consecutive blocks of `B` from `bytes` into `out`.
#[inline(always)]
fn dequantize_blocks<B: BlockFormat>(bytes: &[u8], out: &mut [f32]) {
    B::dequantize_run(bytes, out);
}

/// Dot product of consecutive blocks of `B` with `x`.
#[inline(always)]
fn dot_blocks<B: BlockFormat>(bytes: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    B::dot_run(bytes, x, &mut acc);
    acc.iter().sum()
}

/// Adds `a · b` into eight independent partial sums, so the compiler can vectorise it.
#[inline(always)]
pub fn dot_accumulate(acc: &mut [f32; 8], a: &[f32], b: &[f32]) {
    let (a8, a_rest) = a.split_at(a.len() / 8 * 8);
    let (b8, b_rest) = b.split_at(a8.len());
    for (ca, cb) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    for (x, y) in a_rest.iter().zip(b_rest) {
        acc[0] += x * y;
    }
}

/// Adds `scale * Σ q·x + offset * Σ x` — the dot product of `x` with weights `scale * q + offset`
/// — into eight partial sums (`q` and `x`: a multiple of 8 values). The small integers meet `x`
/// without a decoded f32 copy, which is what makes the fused `dot_run`s fast.
#[inline(always)]
pub(crate) fn affine_dot(q: &[u8], x: &[f32], scale: f32, offset: f32, acc: &mut [f32; 8]) {
    let (mut qx, mut sx) = ([0.0f32; 8], [0.0f32; 8]);
    for (q8, x8) in q.chunks_exact(8).zip(x.chunks_exact(8)) {
        for i in 0..8 {
            qx[i] += q8[i] as f32 * x8[i];
            sx[i] += x8[i];
        }
    }
    for i in 0..8 {
        acc[i] += scale * qx[i] + offset * sx[i];
    }
}

/// A block format whose blocks are groups of small integers, each group with an affine map to
/// weights (`scale * q + offset`): decoding and dot products over groups are written once, here.
pub(crate) trait AffineGroups: BlockFormat {
    /// Elements per group (16 or 32).
    const GROUP: usize;
    /// Codes are signed bytes stored as `u8` (Q8_0) rather than small unsigned integers; only
    /// the integer dot products read such groups.
    const SIGNED: bool = false;
    /// Calls `f(g, q, scale, offset)` for each group `g` of the block `b`.
    fn groups(b: &[u8], f: impl FnMut(usize, &[u8], f32, f32));
}

/// `BlockFormat` for an [`AffineGroups`] format of `$elems` elements in `$bytes` bytes: decoding
/// and dot products both go through its groups.
macro_rules! affine_block_format {
    ($t:ty, $elems:expr, $bytes:expr) => {
        impl $crate::quant::BlockFormat for $t {
            const ELEMS: usize = $elems;
            const BYTES: usize = $bytes;
            #[inline(always)]
            fn dequantize_block(b: &[u8], out: &mut [f32]) {
                $crate::quant::dequantize_groups::<Self>(b, out);
            }

            #[inline(always)]
            fn dot_run(bytes: &[u8], x: &[f32], acc: &mut [f32; 8]) {
                $crate::quant::dot_groups::<Self>(bytes, x, acc);
            }
        }
    };
}
pub(crate) use affine_block_format;

/// A code's value: the byte itself, or for [`AffineGroups::SIGNED`] formats the signed byte.
#[inline(always)]
fn code_value<B: AffineGroups>(q: u8) -> f32 {
    if B::SIGNED {
        (q as i8) as f32
    } else {
        q as f32
    }
}

/// [`BlockFormat::dequantize_block`] of an [`AffineGroups`] format.
#[inline(always)]
pub(crate) fn dequantize_groups<B: AffineGroups>(b: &[u8], out: &mut [f32]) {
    B::groups(b, |g, q, scale, offset| {
        for (o, &q) in out[B::GROUP * g..B::GROUP * (g + 1)].iter_mut().zip(q) {
            *o = scale * code_value::<B>(q) + offset;
        }
    });
}

/// [`BlockFormat::dot_run`] of an [`AffineGroups`] format. Signed codes are biased to unsigned
/// (`q + 128`, the sign bit flipped), so `scale * q` is `scale * u - 128 * scale`.
#[inline(always)]
pub(crate) fn dot_groups<B: AffineGroups>(bytes: &[u8], x: &[f32], acc: &mut [f32; 8]) {
    for (b, xs) in bytes.chunks_exact(B::BYTES).zip(x.chunks_exact(B::ELEMS)) {
        B::groups(b, |g, q, scale, offset| {
            let xs = &xs[B::GROUP * g..B::GROUP * (g + 1)];
            if B::SIGNED {
                let mut u = [0u8; 32];
                for (u, &q) in u.iter_mut().zip(q) {
                    *u = q ^ 0x80;
                }
                affine_dot(&u[..q.len()], xs, scale, offset - 128.0 * scale, acc)
            } else {
                affine_dot(q, xs, scale, offset, acc)
            }
        });
    }
}

/// The 32 nibbles of Q4_0/Q4_1 `qs` bytes in element order: low nibbles, then high nibbles.
#[inline(always)]
pub(crate) fn nibbles(qs: &[u8]) -> [u8; 32] {
    let mut q = [0u8; 32];
    for j in 0..16 {
        q[j] = qs[j] & 0x0f;
        q[j + 16] = qs[j] >> 4;
    }
    q
}

/// f32 dot product with eight independent accumulators, so the compiler can vectorise it
/// (compiled for AVX2 where the CPU has it).
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma_f16c() {
        // SAFETY: the CPU has the features the function was compiled for.
        return unsafe { dot_f32_avx2(a, b) };
    }
    dot_f32_portable(a, b)
}

#[inline(always)]
fn dot_f32_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    dot_accumulate(&mut acc, a, b);
    acc.iter().sum()
}

/// [`dot_f32`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_f32_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_f32_portable(a, b)
}

macro_rules! ggml_types {
    ($( $variant:ident = $id:literal, $name:literal, $block:ty; )*) => {
        /// A GGML tensor type Ember can read.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum GgmlType {
            $(
                #[doc = concat!("GGML type ", stringify!($id), " (", $name, ").")]
                $variant,
            )*
        }

        impl GgmlType {
            /// Every supported type.
            pub const ALL: &'static [GgmlType] = &[$(GgmlType::$variant),*];

            /// The type with GGML id `id`, if Ember supports it.
            pub fn from_id(id: u32) -> Option<GgmlType> {
                match id {
                    $($id => Some(GgmlType::$variant),)*
                    _ => None,
                }
            }

            /// GGML's numeric id.
            pub fn id(self) -> u32 {
                match self { $(GgmlType::$variant => $id,)* }
            }

            /// GGML's name, as llama.cpp prints it.
            pub fn name(self) -> &'static str {
                match self { $(GgmlType::$variant => $name,)* }
            }

            /// Elements per block.
            pub fn block_elems(self) -> usize {
                match self { $(GgmlType::$variant => <$block>::ELEMS,)* }
            }

            /// Bytes per block.
            pub fn block_bytes(self) -> usize {
                match self { $(GgmlType::$variant => <$block>::BYTES,)* }
            }

            /// Decodes whole blocks from `bytes` into `out` (lengths must match).
            pub fn dequantize(self, bytes: &[u8], out: &mut [f32]) {
                debug_assert_eq!(bytes.len() / self.block_bytes() * self.block_elems(), out.len());
                #[cfg(target_arch = "x86_64")]
                if avx2_fma_f16c() {
                    // SAFETY: the CPU has the features the function was compiled for.
                    return unsafe { self.dequantize_avx2(bytes, out) };
                }
                self.dequantize_portable(bytes, out)
            }

            #[inline(always)]
            fn dequantize_portable(self, bytes: &[u8], out: &mut [f32]) {
                match self { $(GgmlType::$variant => dequantize_blocks::<$block>(bytes, out),)* }
            }

            /// [`GgmlType::dequantize`] with its inlined decoding loops compiled for AVX2.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma,f16c")]
            fn dequantize_avx2(self, bytes: &[u8], out: &mut [f32]) {
                self.dequantize_portable(bytes, out)
            }

            /// Dot product of one encoded row with `x` (`x.len()` elements).
            pub fn dot(self, row: &[u8], x: &[f32]) -> f32 {
                #[cfg(target_arch = "x86_64")]
                if avx2_fma_f16c() {
                    // SAFETY: the CPU has the features the function was compiled for.
                    return unsafe { self.dot_avx2(row, x) };
                }
                self.dot_portable(row, x)
            }

            #[inline(always)]
            fn dot_portable(self, row: &[u8], x: &[f32]) -> f32 {
                match self { $(GgmlType::$variant => dot_blocks::<$block>(row, x),)* }
            }

            /// [`GgmlType::dot`] with its inlined decoding loops compiled for AVX2.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma,f16c")]
            fn dot_avx2(self, row: &[u8], x: &[f32]) -> f32 {
                self.dot_portable(row, x)
            }
        }
    };
}

ggml_types! {
    F32 = 0, "F32", F32;
    F16 = 1, "F16", F16;
    Q4_0 = 2, "Q4_0", Q4_0;
    Q4_1 = 3, "Q4_1", Q4_1;
    Q5_0 = 6, "Q5_0", Q5_0;
    Q5_1 = 7, "Q5_1", Q5_1;
    Q8_0 = 8, "Q8_0", Q8_0;
    Q2K = 10, "Q2_K", Q2K;
    Q3K = 11, "Q3_K", Q3K;
    Q4K = 12, "Q4_K", Q4K;
    Q5K = 13, "Q5_K", Q5K;
    Q6K = 14, "Q6_K", Q6K;
    Iq2Xxs = 16, "IQ2_XXS", Iq2Xxs;
    Iq2Xs = 17, "IQ2_XS", Iq2Xs;
    Iq3Xxs = 18, "IQ3_XXS", Iq3Xxs;
    Iq1S = 19, "IQ1_S", Iq1S;
    Iq4Nl = 20, "IQ4_NL", Iq4Nl;
    Iq3S = 21, "IQ3_S", Iq3S;
    Iq2S = 22, "IQ2_S", Iq2S;
    Iq4Xs = 23, "IQ4_XS", Iq4Xs;
    Iq1M = 29, "IQ1_M", Iq1M;
    Bf16 = 30, "BF16", Bf16;
    Tq1_0 = 34, "TQ1_0", Tq1_0;
    Tq2_0 = 35, "TQ2_0", Tq2_0;
}

impl GgmlType {
    /// Parses a type name as llama.cpp spells it (case-insensitive: `q4_k`, `Q8_0`, `bf16`).
    pub fn from_name(name: &str) -> Option<GgmlType> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// Encodes `x` (a whole number of blocks) in this format, with llama.cpp's reference
    /// quantizers.
    pub fn quantize(self, x: &[f32]) -> Result<Vec<u8>, String> {
        self.quantize_with(x, None)
    }

    /// Encodes `x` (whole rows of `importance.len()` values, if given) in this format, each
    /// value's rounding error weighted by its column's importance where the format's quantizer
    /// can use it (llama.cpp's `--imatrix` quantizers).
    pub fn quantize_with(self, x: &[f32], importance: Option<&[f32]>) -> Result<Vec<u8>, String> {
        if !x.len().is_multiple_of(self.block_elems()) {
            return Err(format!(
                "{} values are not whole {} blocks",
                x.len(),
                self.name()
            ));
        }
        if let Some(imp) = importance
            && (imp.is_empty()
                || !imp.len().is_multiple_of(self.block_elems())
                || !x.len().is_multiple_of(imp.len()))
        {
            return Err(format!(
                "an importance vector of {} values does not fit rows of {} {}",
                imp.len(),
                self.name(),
                x.len()
            ));
        }
        if importance.is_none() && self.needs_importance() {
            return Err(format!(
                "{} needs an importance matrix (--imatrix): without one its few levels lose \
                 too much",
                self.name()
            ));
        }
        let i = importance;
        Ok(match self {
            GgmlType::F32 => quantize_blocks::<F32>(x, i),
            GgmlType::F16 => quantize_blocks::<F16>(x, i),
            GgmlType::Bf16 => quantize_blocks::<Bf16>(x, i),
            GgmlType::Q4_0 => quantize_blocks::<Q4_0>(x, i),
            GgmlType::Q4_1 => quantize_blocks::<Q4_1>(x, i),
            GgmlType::Q5_0 => quantize_blocks::<Q5_0>(x, i),
            GgmlType::Q5_1 => quantize_blocks::<Q5_1>(x, i),
            GgmlType::Q8_0 => quantize_blocks::<Q8_0>(x, i),
            GgmlType::Q2K => quantize_blocks::<Q2K>(x, i),
            GgmlType::Q3K => quantize_blocks::<Q3K>(x, i),
            GgmlType::Q4K => quantize_blocks::<Q4K>(x, i),
            GgmlType::Q5K => quantize_blocks::<Q5K>(x, i),
            GgmlType::Q6K => quantize_blocks::<Q6K>(x, i),
            GgmlType::Iq4Nl => quantize_blocks::<Iq4Nl>(x, i),
            GgmlType::Iq4Xs => quantize_blocks::<Iq4Xs>(x, i),
            GgmlType::Iq3Xxs => quantize_blocks::<Iq3Xxs>(x, i),
            GgmlType::Iq3S => quantize_blocks::<Iq3S>(x, i),
            GgmlType::Iq2Xxs => quantize_blocks::<Iq2Xxs>(x, i),
            GgmlType::Iq2Xs => quantize_blocks::<Iq2Xs>(x, i),
            GgmlType::Iq2S => quantize_blocks::<Iq2S>(x, i),
            GgmlType::Iq1S => quantize_blocks::<Iq1S>(x, i),
            GgmlType::Iq1M => quantize_blocks::<Iq1M>(x, i),
            GgmlType::Tq1_0 => quantize_blocks::<Tq1_0>(x, i),
            GgmlType::Tq2_0 => quantize_blocks::<Tq2_0>(x, i),
        })
    }

    /// Offsets in a block of the bytes holding the sign and exponent of its f16 scales (the high
    /// byte of each; IQ1_M's scale is spread over four words, the top nibble of the last holds
    /// them). Whoever fabricates blocks from random bytes (tests, fuzzers) keeps these moderate
    /// to get finite weights of a sensible size; every other byte of a block may be anything.
    pub fn scale_high_bytes(self) -> &'static [usize] {
        use GgmlType::*;
        match self {
            Q4_0 | Q5_0 | Q8_0 | Iq4Nl | Iq4Xs | Iq2Xxs | Iq2Xs | Iq2S | Iq3Xxs | Iq3S | Iq1S => {
                &[1]
            }
            Q4_1 | Q5_1 | Q4K | Q5K => &[1, 3],
            Q2K => &[81, 83],
            Q3K => &[109],
            Q6K => &[209],
            Iq1M => &[55],
            Tq1_0 => &[53],
            Tq2_0 => &[65],
            F32 | F16 | Bf16 => &[],
        }
    }

    /// Whether llama.cpp writes this type only with an importance matrix
    /// (`ggml_quantize_requires_imatrix`); Ember does the same.
    pub fn needs_importance(self) -> bool {
        matches!(self, GgmlType::Iq2Xxs | GgmlType::Iq2Xs | GgmlType::Iq1S)
    }

    /// Whether this is a plain float type rather than a quantized block format.
    pub fn is_float(self) -> bool {
        matches!(self, GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16)
    }

    /// Encoded size of a tensor of `shape` (GGML order), or why the shape does not fit the type.
    pub fn tensor_bytes(self, shape: &[usize]) -> Result<usize, String> {
        let cols = *shape.first().ok_or("tensor has no dimensions")?;
        if cols % self.block_elems() != 0 {
            return Err(format!(
                "row length {cols} is not a multiple of the {} block size {}",
                self.name(),
                self.block_elems()
            ));
        }
        let rows = shape[1..]
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or("element count overflows")?;
        (cols / self.block_elems())
            .checked_mul(self.block_bytes())
            .and_then(|b| b.checked_mul(rows))
            .ok_or_else(|| "byte size overflows".to_string())
    }
}
