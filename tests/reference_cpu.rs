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

#[test]
fn default_model_matches_reference_through_the_library() {
    let (file, mut model) = load(&default_model());
    let reference = json("reference/smollm2-135m-instruct-q4_1.json");
    let vocab = model.config().vocab_size;
    for p in reference["prompts"].as_array().unwrap() {
        let prompt = ids(&p["prompt_ids"]);
        let logits = model.forward(&prompt, 0, true).unwrap();
        assert_top_matches(
            &logits,
            vocab,
            &p["top5_per_position"],
            2e-3,
            p["text"].as_str().unwrap(),
        );
        let want = ids(&p["greedy_ids"]);
        let got = greedy(&mut model, &prompt, want.len(), &file.tokenizer.stop_ids);
        assert_eq!(got, want, "greedy continuation of {:?}", p["text"]);
    }
}

#[test]
fn tiny_k_quant_llama_matches_reference() {
    let (_, mut model) = load(&data("tiny-llama-q4_k_m/tiny-llama-2l-Q4_K_M.gguf"));
    let reference = json("tiny-llama-q4_k_m/reference.json");
    let vocab = model.config().vocab_size;
    for r in reference["results"].as_array().unwrap() {
        let prompt = ids(&r["prompt_ids"]);
        let logits = model.forward(&prompt, 0, true).unwrap();
        assert_top_matches(
            &logits,
            vocab,
            &r["top5_per_position"],
            1e-3,
            r["prompt"].as_str().unwrap(),
        );
        let want = ids(&r["greedy_ids"]);
        assert_eq!(greedy(&mut model, &prompt, want.len(), &[]), want);
    }
}

#[test]
fn hf_folders_match_reference() {
    for name in ["tiny-hf-llama", "tiny-hf-qwen2"] {
        let (_, mut model) = load(&data(&format!("hf-tiny/{name}")));
        let reference = json(&format!("hf-tiny/{name}/reference.json"));
        let vocab = model.config().vocab_size;
        for r in reference["prompts"].as_array().unwrap() {
            let prompt = ids(&r["prompt_ids"]);
            let logits = model.forward(&prompt, 0, true).unwrap();
            assert_top_matches(&logits, vocab, &r["top5_per_position"], 1e-3, name);
            let want = ids(&r["greedy_ids"]);
            assert_eq!(greedy(&mut model, &prompt, want.len(), &[]), want, "{name}");
        }
    }
}
