//! The CPU forward pass reproduces the independent reference outputs: the default model (Q4_1),
//! the K-quant tiny Llama, and the Hugging Face folders.

mod common;

use common::*;
use ember::ModelFile;
use ember::backend::cpu::CpuBackend;
use ember::model::{LanguageModel, Model};

fn load(path: &str) -> (ModelFile, Model<CpuBackend>) {
    let file = ModelFile::open(path.as_ref()).expect("model loads");
    let model = Model::new(&file, CpuBackend::new(0).unwrap(), 0).expect("model uploads");
    (file, model)
}

fn greedy(model: &mut Model<CpuBackend>, prompt: &[u32], n: usize, stop: &[u32]) -> Vec<u32> {
    let vocab = model.config().vocab_size;
    let mut logits = model.forward(prompt, 0, false).unwrap();
    let mut out = Vec::new();
    for pos in prompt.len()..prompt.len() + n {
        let next = (0..vocab)
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap() as u32;
        out.push(next);
        if stop.contains(&next) {
            break;
        }
        logits = model.forward(&[next], pos, false).unwrap();
    }
    out
}

/// Teacher-forced top-5 within `tol` and exact greedy ids for every reference entry.
fn check(path: &str, entries: &serde_json::Value, tol: f32, use_stops: bool) {
    let (file, mut model) = load(path);
    let vocab = model.config().vocab_size;
    let stops = if use_stops {
        file.tokenizer.stop_ids.clone()
    } else {
        vec![]
    };
    for (i, e) in entries.as_array().unwrap().iter().enumerate() {
        let prompt = ids(&e["prompt_ids"]);
        let logits = model.forward(&prompt, 0, true).unwrap();
        let what = format!("{path} prompt {i}");
        assert_top_matches(&logits, vocab, &e["top5_per_position"], tol, &what);
        let want = ids(&e["greedy_ids"]);
        assert_eq!(
            greedy(&mut model, &prompt, want.len(), &stops),
            want,
            "greedy ids of {what}"
        );
    }
}

#[test]
fn default_model_matches_reference_through_the_library() {
    let reference = json("reference/smollm2-135m-instruct-q4_1.json");
    check(&default_model(), &reference["prompts"], 2e-3, true);
}

#[test]
fn tiny_k_quant_llama_matches_reference() {
    let reference = json("tiny-llama-q4_k_m/reference.json");
    check(
        &data("tiny-llama-q4_k_m/tiny-llama-2l-Q4_K_M.gguf"),
        &reference["results"],
        1e-3,
        false,
    );
}

#[test]
fn hf_folders_match_reference() {
    for name in ["tiny-hf-llama", "tiny-hf-qwen2"] {
        let reference = json(&format!("hf-tiny/{name}/reference.json"));
        check(
            &data(&format!("hf-tiny/{name}")),
            &reference["prompts"],
            1e-3,
            false,
        );
    }
}
