//! Ember's quantizers against llama.cpp's on the quant-zoo tensors: an error no worse than
//! llama-quantize's, and in fact the very bytes it wrote.

mod common;

use ember::quant::GgmlType;
use serde_json::Value;

const WRITABLE: &[&str] = &[
    "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
    "IQ4_NL", "IQ4_XS", "IQ3_XXS", "IQ3_S", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_S", "IQ1_M",
    "TQ1_0", "TQ2_0",
];

/// The importance vector make_iquants.py gave llama.cpp for the types it will not write
/// without one: each column's mean square over the rows, plus 1e-3.
fn synthetic_importance(x: &[f32], cols: usize) -> Vec<f32> {
    let rows = x.len() / cols;
    (0..cols)
        .map(|c| {
            let sum: f64 = (0..rows).map(|r| (x[r * cols + c] as f64).powi(2)).sum();
            ((sum / rows as f64) as f32) + 1e-3
        })
        .collect()
}

/// Encodes `x` as llama.cpp's zoo did: with the synthetic importances where the type needs
/// them.
fn quantize_as_zoo(t: GgmlType, x: &[f32], cols: usize) -> Vec<u8> {
    let importance = t.needs_importance().then(|| synthetic_importance(x, cols));
    t.quantize_with(x, importance.as_deref()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn error_is_no_worse_than_llama_cpp() {
    let mut identical = Vec::new();
    for name in WRITABLE {
        let zoo = common::json(&format!("quant-zoo/zoo_{name}.json"));
        let t = GgmlType::from_name(name).unwrap();
        for tensor in zoo["tensors"].as_array().unwrap() {
            let original = floats(&tensor["original_f32"]);
            let cols = tensor["ne"][0].as_u64().unwrap() as usize;
            let bytes = quantize_as_zoo(t, &original, cols);
            assert_eq!(
                bytes.len(),
                tensor["n_bytes"].as_u64().unwrap() as usize,
                "{name}: layout size"
            );
            let mut back = vec![0.0f32; original.len()];
            t.dequantize(&bytes, &mut back);
            let rms = (back
                .iter()
                .zip(&original)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                / original.len() as f64)
                .sqrt();
            let llama = tensor["rms_error"].as_f64().unwrap();
            assert!(
                rms <= llama * 1.0001 + 1e-12,
                "{name} {}: rms error {rms:e}, llama.cpp {llama:e}",
                tensor["name"]
            );
            if bytes == hex(tensor["raw_hex"].as_str().unwrap()) {
                identical.push(format!("{name} {}", tensor["name"]));
            }
        }
    }
    // The quantizers follow llama.cpp's reference procedures, so the bytes match exactly.
    assert_eq!(
        identical.len(),
        WRITABLE.len() * 3,
        "byte-identical only: {identical:?}"
    );
}

#[test]
fn round_trip_on_random_rows() {
    let mut rng = common::Rng::fresh("quantize");
    for name in WRITABLE {
        let t = GgmlType::from_name(name).unwrap();
        let x = rng.vec(t.block_elems().max(32) * 7);
        let mut back = vec![0.0f32; x.len()];
        t.dequantize(&quantize_as_zoo(t, &x, x.len() / 7), &mut back);
        let rms = (back
            .iter()
            .zip(&x)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f32>()
            / x.len() as f32)
            .sqrt();
        // Uniform values in [-1, 1]: 4-bit formats land near 0.04, 8-bit near 0.002, 2-bit
        // near 0.13, ternary near 0.29; the 3-bit lattices (made for Gaussian-like weights, not a
        // uniform spread) near 0.11.
        let bound = match *name {
            "Q2_K" => 0.2,
            "IQ3_XXS" | "IQ3_S" => 0.15,
            "IQ2_XXS" | "IQ2_XS" | "IQ2_S" => 0.25,
            "IQ1_S" | "IQ1_M" => 0.4,
            "TQ1_0" | "TQ2_0" => 0.35,
            _ => 0.1,
        };
        assert!(rms < bound, "{name}: rms {rms}");
    }
    // llama.cpp will not write these without an importance matrix; neither will Ember.
    assert!(GgmlType::Iq2Xxs.quantize(&[0.5; 256]).is_err());
    assert!(GgmlType::Iq2Xs.quantize(&[0.5; 256]).is_err());
    assert!(GgmlType::Iq1S.quantize(&[0.5; 256]).is_err());
    assert!(GgmlType::Q4_0.quantize(&[0.0; 31]).is_err());
}

/// With an importance vector, the quantizers that use one write the bytes llama.cpp's
/// `--imatrix` quantizers wrote (weighted.json, made by make_weighted.py).
#[test]
fn importance_weighted_quantizers_match_llama_cpp() {
    let weighted = common::json("quant-zoo/weighted.json");
    let originals = common::json("quant-zoo/zoo_Q4_0.json");
    for (tensor, source) in weighted["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .zip(originals["tensors"].as_array().unwrap())
    {
        assert_eq!(tensor["name"], source["name"]);
        let original = floats(&source["original_f32"]);
        let importance = floats(&tensor["importance"]);
        for (name, want) in tensor["raw_hex"].as_object().unwrap() {
            let t = GgmlType::from_name(name).unwrap();
            let got = t.quantize_with(&original, Some(&importance)).unwrap();
            assert!(
                got == hex(want.as_str().unwrap()),
                "{name} {}: bytes differ from llama.cpp's",
                tensor["name"]
            );
            // And the weighting changed something: the bytes differ from the unweighted ones
            // (from those of the zoo's importances, for the types that need some).
            let cols = source["ne"][0].as_u64().unwrap() as usize;
            assert_ne!(got, quantize_as_zoo(t, &original, cols), "{name}");
        }
    }
}
