//! Sessions: a second turn that reuses the KV cache gives exactly what a fresh evaluation of the
//! whole conversation gives; stop strings and limits end generation as documented.

mod common;

use common::*;
use ember::ModelFile;
use ember::backend::cpu::CpuBackend;
use ember::model::Model;
use ember::sample::SamplerConfig;
use ember::session::{GenerateOptions, Session, StopReason};
use ember::tokenizer::ChatMessage;

fn tiny() -> ModelFile {
    ModelFile::open(data("tiny-llama-q4_k_m/tiny-llama-2l-Q4_K_M.gguf").as_ref()).unwrap()
}

fn greedy(n: usize) -> GenerateOptions {
    GenerateOptions {
        max_tokens: n,
        sampler: SamplerConfig::greedy(),
        stop: vec![],
    }
}

#[test]
fn cache_reuse_matches_fresh_evaluation() {
    let file = tiny();
    let tok = &file.tokenizer;
    let mut messages = vec![ChatMessage::new("user", "Tell me a story.")];
    let first = tok
        .encode(&tok.apply_chat_template(&messages, true).unwrap(), true)
        .unwrap();

    let mut model = Model::new(&file, CpuBackend::new(0).unwrap(), 512).unwrap();
    let mut session = Session::new(&mut model, tok);
    let reply = session.generate(&first, &greedy(8), &mut |_| true).unwrap();
    messages.push(ChatMessage::new("assistant", &reply.text));
    messages.push(ChatMessage::new("user", "And then?"));
    let second = tok
        .encode(&tok.apply_chat_template(&messages, true).unwrap(), true)
        .unwrap();
    let reused = session
        .generate(&second, &greedy(8), &mut |_| true)
        .unwrap();
    assert!(
        reused.timings.prompt_tokens < second.len(),
        "the shared prefix was not reused"
    );

    let mut fresh_model = Model::new(&file, CpuBackend::new(0).unwrap(), 512).unwrap();
    let mut fresh = Session::new(&mut fresh_model, tok);
    let expected = fresh.generate(&second, &greedy(8), &mut |_| true).unwrap();
    assert_eq!(expected.timings.prompt_tokens, second.len());
    assert_eq!(reused.ids, expected.ids);
}

#[test]
fn limits_and_stop_strings() {
    let file = tiny();
    let prompt = file.tokenizer.encode("Once upon a time", true).unwrap();
    let mut model = Model::new(&file, CpuBackend::new(0).unwrap(), 16).unwrap();
    let mut session = Session::new(&mut model, &file.tokenizer);

    let g = session
        .generate(&prompt, &greedy(5), &mut |_| true)
        .unwrap();
    assert_eq!((g.ids.len(), g.stop_reason), (5, StopReason::MaxTokens));
    let full_text = g.text.clone();

    // The context (16) ends generation before 100 tokens.
    let g = session
        .generate(&prompt, &greedy(100), &mut |_| true)
        .unwrap();
    assert_eq!(g.stop_reason, StopReason::ContextFull);
    assert_eq!(prompt.len() + g.ids.len(), 17);

    // A stop string taken from the greedy text cuts it there, and streaming never shows it.
    let words: Vec<&str> = full_text.split_whitespace().collect();
    let stop = words[words.len() / 2].to_string();
    let mut streamed = String::new();
    let opts = GenerateOptions {
        stop: vec![stop.clone()],
        ..greedy(5)
    };
    let g = session
        .generate(&prompt, &opts, &mut |s| {
            streamed.push_str(s);
            true
        })
        .unwrap();
    assert_eq!(g.stop_reason, StopReason::StopString);
    assert_eq!(g.text, full_text[..full_text.find(&stop).unwrap()]);
    assert_eq!(streamed, g.text);

    // A prompt longer than the context is refused.
    let long = vec![prompt[0]; 17];
    let e = session
        .generate(&long, &greedy(1), &mut |_| true)
        .unwrap_err();
    assert!(e.to_string().contains("longer than the context"), "{e}");
}
