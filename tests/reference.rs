//! The forward pass reproduces the independent reference outputs on every backend: the default
//! model (Q4_1; on the GPU through the CLI tests), the K-quant tiny Llama and the Hugging Face folders.

mod common;

use common::*;
use ember::ModelFile;
use ember::backend::Backend;
use ember::backend::cpu::{CpuBackend, Precision};
use ember::backend::gpu::{GpuBackend, GpuContext, GpuOptions};
use ember::model::{LanguageModel, Model};
use ember::sample::argmax;

/// Positions of the caches the references run in: within every tiny model's trained context
/// (Phi-3 takes its long rope factors beyond it).
const CTX: usize = 256;

fn load<B: Backend>(path: &str, backend: B, ctx: usize) -> (ModelFile, Model<B>) {
    let file = ModelFile::open(path.as_ref()).expect("model loads");
    let model = Model::new(&file, backend, ctx).expect("model uploads");
    (file, model)
}

fn greedy(model: &mut dyn LanguageModel, prompt: &[u32], n: usize, stop: &[u32]) -> Vec<u32> {
    let mut logits = model.forward(prompt, 0, false).unwrap();
    let mut out = Vec::new();
    for pos in prompt.len()..prompt.len() + n {
        let next = argmax(&logits);
        out.push(next);
        if stop.contains(&next) {
            break;
        }
        logits = model.forward(&[next], pos, false).unwrap();
    }
    out
}

/// Teacher-forced top-5 within `tol` and exact greedy ids for every reference entry, in a cache
/// of [`CTX`] positions.
fn check<B: Backend>(
    backend: B,
    path: &str,
    entries: &serde_json::Value,
    tol: f32,
    use_stops: bool,
) {
    check_in(backend, path, entries, tol, use_stops, CTX)
}

/// [`check`] in a cache of `ctx` positions.
fn check_in<B: Backend>(
    backend: B,
    path: &str,
    entries: &serde_json::Value,
    tol: f32,
    use_stops: bool,
    ctx: usize,
) {
    let (file, mut model) = load(path, backend, ctx);
    let vocab = model.config().vocab_size;
    let stops = if use_stops {
        file.tokenizer.stop_ids.clone()
    } else {
        vec![]
    };
    for (i, e) in entries.as_array().unwrap().iter().enumerate() {
        let prompt = ids(&e["prompt_ids"]);
        let logits = model.forward(&prompt, 0, true).unwrap();
        let what = format!("{path} prompt {i} on {}", model.backend_name());
        assert_top_matches(&logits, vocab, &e["top5_per_position"], tol, &what);
        let want = ids(&e["greedy_ids"]);
        assert_eq!(
            greedy(&mut model, &prompt, want.len(), &stops),
            want,
            "greedy ids of {what}"
        );
    }
}

/// The small models: the K-quant tiny Llama, both Hugging Face folders, each tiny model of the
/// other architectures (tests/data/archs: its HF folder, F16 GGUF and Q8_0 GGUF), and the
/// i-quant tiny Llama.
fn small_models<B: Backend>(make: impl Fn() -> B) {
    let reference = json("tiny-llama-q4_k_m/reference.json");
    check(
        make(),
        &data("tiny-llama-q4_k_m/tiny-llama-2l-Q4_K_M.gguf"),
        &reference["results"],
        1e-3,
        false,
    );
    // (model, reference) pairs. Each file against its own reference: a folder as transformers
    // reads it, a GGUF file as llama.cpp does (Mistral's converted file has no sliding window,
    // so neither has its reference; the folder's prompt of 32 tokens crosses its window of 8).
    let mut pairs: Vec<(String, String)> = ["tiny-hf-llama", "tiny-hf-qwen2"]
        .iter()
        .map(|n| {
            (
                format!("hf-tiny/{n}"),
                format!("hf-tiny/{n}/reference.json"),
            )
        })
        .collect();
    for arch in ["qwen3", "llama3", "mistral", "gemma2", "gemma3", "phi3"] {
        let dir = format!("archs/tiny-{arch}");
        for (file, reference) in [
            ("hf".to_string(), "reference.json"),
            (format!("tiny-{arch}-F16.gguf"), "reference-F16.json"),
            (format!("tiny-{arch}-Q8_0.gguf"), "reference-Q8_0.json"),
        ] {
            pairs.push((format!("{dir}/{file}"), format!("{dir}/{reference}")));
        }
    }
    // Every i-quant and ternary type in one file (tests/data/iquants).
    pairs.push((
        "iquants/tiny-llama-iquants.gguf".into(),
        "iquants/reference.json".into(),
    ));
    for (model, reference) in pairs {
        check(
            make(),
            &data(&model),
            &json(&reference)["prompts"],
            1e-3,
            false,
        );
    }
    // Phi-3 in a context beyond its original one of 512: the long rope factors.
    check_in(
        make(),
        &data("archs/tiny-phi3/hf"),
        &json("archs/tiny-phi3/reference-long.json")["prompts"],
        1e-3,
        false,
        1024,
    );
}

#[test]
fn default_model_matches_reference_on_cpu() {
    let reference = json("reference/smollm2-135m-instruct-q4_1.json");
    check(
        CpuBackend::with_precision(0, Precision::F32).unwrap(),
        &default_model(),
        &reference["prompts"],
        2e-3,
        true,
    );
}

#[test]
fn small_models_match_reference_on_cpu() {
    small_models(|| CpuBackend::with_precision(0, Precision::F32).unwrap());
}

#[test]
fn small_models_match_reference_on_gpu() {
    // Both decode layouts: whole rows per thread and a workgroup per attention head (software
    // adapters without subgroups), rows and the context split over threads (GPUs').
    for choice in gpu_choices() {
        for split in [false, true] {
            small_models(|| {
                let ctx = GpuContext::new(choice).unwrap();
                let options = GpuOptions {
                    split_rows: split,
                    split_attention: split,
                    ..GpuOptions::accurate(&ctx)
                };
                GpuBackend::with_context(ctx, options).unwrap()
            });
        }
    }
}
