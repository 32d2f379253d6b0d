//! The CPU's integer matrix products through the backend, for every block format, odd shapes,
//! one token (decode) and several (prefill: the strip GEMM and its row tail), at every
//! instruction set this CPU has and both integer precisions, against the exact f32 path.

mod common;

use common::{Rng, random_tensor};
use ember::backend::Backend;
use ember::backend::cpu::{CpuBackend, Precision};
use ember::quant::GgmlType;
use ember::quant::int_dot::CpuLevel;

fn matmul(b: &mut CpuBackend, w: &ember::format::TensorView, x: &[f32], tokens: usize) -> Vec<f32> {
    let wt = b.upload(w).unwrap();
    let xa = b.load_act(x, tokens, w.cols());
    let y = b.matmul(&xa, &wt, None);
    b.read(&y).unwrap()
}

#[test]
fn integer_matmul_matches_f32_for_every_format_level_and_shape() {
    let mut rng = Rng::fresh("cpu integer matmul");
    let mut exact = CpuBackend::with_precision(2, Precision::F32).unwrap();
    for &t in GgmlType::ALL.iter().filter(|t| !t.is_float()) {
        let base = t.block_elems().max(32);
        for (cols, rows) in [(base, 37), (base * 3, 5), (base * 2, 131)] {
            let w = random_tensor(&mut rng, t, cols, rows);
            // Token tiles of 8, 4, 2 and 1 in every combination that occurs.
            for tokens in [1, 6, 15] {
                let x = rng.vec(tokens * cols);
                let want = matmul(&mut exact, &w, &x, tokens);
                // Errors relative to the largest Σ|w·x| of an output: rounding the activations
                // errs in proportion to it, not to the output, which cancels to little for
                // formats with no small weights (IQ1's, the ternary ones).
                let dense = w.to_f32();
                let scale = (0..tokens * rows).fold(1e-3f32, |m, k| {
                    let (t, r) = (k / rows, k % rows);
                    let row = &dense[r * cols..(r + 1) * cols];
                    let xs = &x[t * cols..(t + 1) * cols];
                    m.max(row.iter().zip(xs).map(|(a, b)| (a * b).abs()).sum())
                });
                for level in CpuLevel::ALL.into_iter().filter(|l| l.supported()) {
                    for (precision, tol) in [(Precision::I16, 2e-4), (Precision::I8, 3e-2)] {
                        let mut b = CpuBackend::with_level(2, precision, level).unwrap();
                        let got = matmul(&mut b, &w, &x, tokens);
                        for (k, (g, e)) in got.iter().zip(&want).enumerate() {
                            assert!(
                                (g - e).abs() <= tol * scale,
                                "{} {cols}x{rows} tokens {tokens} {level:?} {precision:?} [{k}]: {g} vs {e}",
                                t.name()
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn an_unsupported_level_is_an_error_not_a_crash() {
    for level in CpuLevel::ALL.into_iter().filter(|l| !l.supported()) {
        assert!(CpuBackend::with_level(1, Precision::I16, level).is_err());
    }
    assert!(CpuLevel::parse("nonsense").is_err());
}
