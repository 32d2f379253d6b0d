//! Activations quantized to signed bytes for integer dot products (the fast CPU path).
//!
//! Each run of 32 values gets one f32 scale `d = max|x| / 127` and bytes `q = round(x / d)`, as
//! llama.cpp's Q8_0 activations — but the scale stays f32 (not f16), and the integer sum of every
//! 16 bytes is kept so that formats with an offset (`scale * code + offset`) need no second pass
//! over the activations: `Σ offset·x = offset · d · Σq`.

/// Values per scale.
pub const Q8_BLOCK: usize = 32;

/// `rows` rows of `cols` activations as bytes, scales and sums of 16.
#[derive(Clone, Debug, Default)]
pub struct Q8Act {
    /// The bytes, row-major.
    pub qs: Vec<i8>,
    /// One scale per 32 bytes.
    pub d: Vec<f32>,
    /// `Σq` of every 16 bytes.
    pub sums: Vec<i16>,
    /// `d · Σq` of every 32 bytes: the block's sum of activations.
    pub s: Vec<f32>,
    /// Row width (a multiple of 32).
    pub cols: usize,
}

/// One row of a [`Q8Act`].
#[derive(Clone, Copy, Debug)]
pub struct Q8Row<'a> {
    /// `cols` bytes.
    pub qs: &'a [i8],
    /// `cols / 32` scales.
    pub d: &'a [f32],
    /// `cols / 16` sums.
    pub sums: &'a [i16],
    /// `cols / 32` block sums `d · Σq`.
    pub s: &'a [f32],
}

impl Q8Act {
    /// Quantizes `x` (`rows` rows of `cols` values; `cols` a multiple of 32) into `self`,
    /// reusing its buffers.
    pub fn quantize_into(&mut self, x: &[f32], cols: usize) {
        assert!(
            cols.is_multiple_of(Q8_BLOCK),
            "activation rows of {cols} are not whole blocks of 32"
        );
        let n = x.len();
        self.cols = cols;
        self.qs.resize(n, 0);
        self.d.resize(n / Q8_BLOCK, 0.0);
        self.sums.resize(n / 16, 0);
        self.s.resize(n / Q8_BLOCK, 0.0);
        for ((((xs, qs), d), sums), s) in x
            .chunks_exact(Q8_BLOCK)
            .zip(self.qs.chunks_exact_mut(Q8_BLOCK))
            .zip(self.d.iter_mut())
            .zip(self.sums.chunks_exact_mut(2))
            .zip(self.s.iter_mut())
        {
            *d = quantize_block(xs, qs.try_into().expect("32 bytes"), sums);
            *s = *d * f32::from(sums[0] + sums[1]);
        }
    }

    /// Quantizes `x` into a new value.
    pub fn quantize(x: &[f32], cols: usize) -> Q8Act {
        let mut a = Q8Act::default();
        a.quantize_into(x, cols);
        a
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.qs.len() / self.cols.max(1)
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> Q8Row<'_> {
        let c = self.cols;
        Q8Row {
            qs: &self.qs[r * c..(r + 1) * c],
            d: &self.d[r * c / Q8_BLOCK..(r + 1) * c / Q8_BLOCK],
            sums: &self.sums[r * c / 16..(r + 1) * c / 16],
            s: &self.s[r * c / Q8_BLOCK..(r + 1) * c / Q8_BLOCK],
        }
    }
}

/// Quantizes 32 values; returns the scale and fills `sums` with the sums of both halves.
#[inline]
fn quantize_block(x: &[f32], q: &mut [i8; 32], sums: &mut [i16]) -> f32 {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (q, &v) in q.iter_mut().zip(x) {
        // |v·id| <= 127 by construction, so the cast never saturates.
        *q = (v * id).round() as i8;
    }
    for (s, half) in sums.iter_mut().zip(q.chunks_exact(16)) {
        *s = half.iter().map(|&v| i16::from(v)).sum();
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_within_half_a_step() {
        let mut s = 7u32;
        let x: Vec<f32> = (0..96)
            .map(|_| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (s >> 8) as f32 / (1u32 << 24) as f32 * 6.0 - 3.0
            })
            .collect();
        let a = Q8Act::quantize(&x, 96);
        assert_eq!(a.rows(), 1);
        let r = a.row(0);
        for (i, &v) in x.iter().enumerate() {
            let d = r.d[i / 32];
            assert!((r.qs[i] as f32 * d - v).abs() <= 0.5 * d + 1e-6);
        }
        for (j, &s) in r.sums.iter().enumerate() {
            let want: i16 = r.qs[16 * j..16 * j + 16].iter().map(|&v| v as i16).sum();
            assert_eq!(s, want);
        }
    }
}
