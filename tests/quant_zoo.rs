//! Every GGUF type reproduces exactly the values gguf-py dequantized from llama.cpp-made blocks, and the
//! generic row dot product agrees with dequantize-then-dot.

use ember::format::gguf::GgufFile;
use ember::quant::GgmlType;
use serde_json::Value;
use sha2::{Digest, Sha256};

const TYPES: &[&str] = &[
    "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
    "IQ4_NL", "IQ4_XS", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M",
    "TQ1_0", "TQ2_0",
];

fn zoo(name: &str) -> (GgufFile, Value) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/quant-zoo");
    let g = GgufFile::open(format!("{dir}/zoo_{name}.gguf").as_ref()).expect("zoo gguf parses");
    let text = std::fs::read_to_string(format!("{dir}/zoo_{name}.json")).expect("zoo json");
    (g, serde_json::from_str(&text).expect("json"))
}

#[test]
fn dequantize_matches_reference_for_every_type() {
    for name in TYPES {
        let (g, reference) = zoo(name);
        let ty = GgmlType::from_name(name).expect("type known");
        for t in reference["tensors"].as_array().expect("tensors") {
            let view = g
                .tensor(t["name"].as_str().unwrap())
                .expect("tensor present");
            assert_eq!(view.dtype, ty, "{name}");
            let ne: Vec<usize> = t["ne"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(view.shape, ne);
            let got = view.to_f32();
            // Bit for bit: the SHA-256 of the little-endian f32 values gguf-py computed.
            let bytes: Vec<u8> = got.iter().flat_map(|v| v.to_le_bytes()).collect();
            let digest = format!("{:x}", Sha256::digest(&bytes));
            assert_eq!(
                digest,
                t["dequant_f32le_sha256"].as_str().unwrap(),
                "{name}"
            );
            let want: Vec<f64> = t["dequant"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(got.len(), want.len());
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                // The reference is printed with 6 significant digits.
                let tol = 1e-6 * w.abs().max(1e-3);
                assert!(
                    ((g as f64) - w).abs() <= tol * 5.0,
                    "{name} {} [{i}]: got {g}, want {w}",
                    t["name"]
                );
            }
        }
    }
}

#[test]
fn row_dot_matches_dequantized_dot() {
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut rand = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    for name in TYPES {
        let (g, _) = zoo(name);
        for info in &g.tensors {
            let view = g.tensor(&info.name).unwrap();
            let dense = view.to_f32();
            let x: Vec<f32> = (0..view.cols()).map(|_| rand()).collect();
            for r in 0..view.rows() {
                let row = &view.bytes()[r * view.row_bytes()..(r + 1) * view.row_bytes()];
                let got = view.dtype.dot(row, &x) as f64;
                let want: f64 = dense[r * view.cols()..(r + 1) * view.cols()]
                    .iter()
                    .zip(&x)
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum();
                let scale: f64 = dense[r * view.cols()..(r + 1) * view.cols()]
                    .iter()
                    .zip(&x)
                    .map(|(&a, &b)| (a as f64 * b as f64).abs())
                    .sum();
                assert!(
                    (got - want).abs() <= 1e-5 * scale,
                    "{name} {} row {r}: {got} vs {want}",
                    info.name
                );
            }
        }
    }
}
