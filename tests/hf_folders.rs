//! Hugging Face folders load into the same `ModelConfig` and weight views a GGUF file gives:
//! canonical names, GGML dimension order, bf16 kept as stored, tokenizer from tokenizer.json.

mod common;

use common::*;
use ember::ModelFile;
use ember::format::{Arch, RopeLayout};
use ember::quant::GgmlType;

#[test]
fn tiny_llama_folder() {
    let f = ModelFile::open(data("hf-tiny/tiny-hf-llama").as_ref()).unwrap();
    let c = &f.config;
    assert_eq!(
        (
            c.arch, c.hidden, c.ffn, c.layers, c.heads, c.kv_heads, c.head_dim
        ),
        (Arch::Llama, 64, 192, 2, 4, 2, 16)
    );
    assert_eq!(
        (c.vocab_size, c.rope_theta, c.rms_eps, c.context_length),
        (49152, 1e4, 1e-5, 512)
    );
    assert!(c.tied_output && !c.qkv_bias);
    assert_eq!(c.rope_layout, RopeLayout::Halves);
    assert!(f.weights.output.is_none());
    let l = &f.weights.layers[1];
    assert_eq!(l.q.name, "blk.1.attn_q.weight");
    assert_eq!(l.q.shape, vec![64, 64]);
    assert_eq!(l.k.shape, vec![64, 32]);
    assert_eq!(l.down.shape, vec![192, 64]);
    assert_eq!(f.weights.token_embd.shape, vec![64, 49152]);
    assert_eq!(l.q.dtype, GgmlType::Bf16);
    assert!(l.q.to_f32().iter().all(|v| v.is_finite()) && l.q.to_f32().iter().any(|&v| v != 0.0));
}

#[test]
fn tiny_qwen2_folder() {
    let f = ModelFile::open(data("hf-tiny/tiny-hf-qwen2").as_ref()).unwrap();
    let c = &f.config;
    assert_eq!((c.arch, c.rope_theta, c.rms_eps), (Arch::Qwen2, 1e6, 1e-6));
    assert!(!c.tied_output && c.qkv_bias);
    let out = f.weights.output.as_ref().expect("untied head");
    assert_eq!(out.shape, vec![64, 49152]);
    let l = &f.weights.layers[0];
    assert_eq!(l.q_bias.as_ref().unwrap().shape, vec![64]);
    assert_eq!(l.k_bias.as_ref().unwrap().shape, vec![32]);
}

/// Qwen3 from its folder and from llama.cpp's GGUF of it: the same config (head size 32 at width
/// 64, no biases, NEOX RoPE) and a per-head q/k norm in every layer.
#[test]
fn tiny_qwen3_folder_and_gguf() {
    let hf = ModelFile::open(data("archs/tiny-qwen3/hf").as_ref()).unwrap();
    let gguf = ModelFile::open(data("archs/tiny-qwen3/tiny-qwen3-F16.gguf").as_ref()).unwrap();
    for f in [&hf, &gguf] {
        let c = &f.config;
        assert_eq!(
            (c.arch, c.hidden, c.heads, c.kv_heads, c.head_dim),
            (Arch::Qwen3, 64, 4, 2, 32)
        );
        assert!(!c.qkv_bias && c.tied_output);
        assert_eq!(c.rope_layout, RopeLayout::Halves);
        for l in &f.weights.layers {
            assert_eq!(l.q.shape, vec![64, 128]);
            assert_eq!(l.q_norm.as_ref().unwrap().shape, vec![32]);
            assert_eq!(l.k_norm.as_ref().unwrap().shape, vec![32]);
        }
        let reference = json("archs/tiny-qwen3/reference.json");
        for p in reference["prompts"].as_array().unwrap() {
            let got = f
                .tokenizer
                .encode(p["text"].as_str().unwrap(), true)
                .unwrap();
            assert_eq!(got, ids(&p["prompt_ids"]));
        }
    }
    assert_eq!(hf.config, gguf.config);
}

#[test]
fn folder_tokenizers_give_reference_prompt_ids() {
    for name in ["tiny-hf-llama", "tiny-hf-qwen2"] {
        let f = ModelFile::open(data(&format!("hf-tiny/{name}")).as_ref()).unwrap();
        let reference = json(&format!("hf-tiny/{name}/reference.json"));
        for p in reference["prompts"].as_array().unwrap() {
            let got = f
                .tokenizer
                .encode(p["text"].as_str().unwrap(), true)
                .unwrap();
            assert_eq!(got, ids(&p["prompt_ids"]), "{name}");
        }
        assert!(f.tokenizer.chat_template.is_some());
        assert_eq!(f.tokenizer.eos, Some(2));
    }
}

#[test]
fn broken_folders_are_refused() {
    let dir = std::env::temp_dir().join(format!("ember-hf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = data("hf-tiny/tiny-hf-llama");
    let err = |dir: &std::path::Path| ModelFile::open(dir).err().expect("refused").to_string();
    assert!(err(&dir).contains("config.json"));
    std::fs::copy(format!("{src}/config.json"), dir.join("config.json")).unwrap();
    assert!(err(&dir).contains("model.safetensors"));
    let weights = std::fs::read(format!("{src}/model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &weights[..weights.len() / 2]).unwrap();
    let e = err(&dir);
    assert!(!e.is_empty(), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sharded_folder_loads_like_a_single_file() {
    let src = data("hf-tiny/tiny-hf-qwen2");
    let dir = std::env::temp_dir().join(format!("ember-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(format!("{src}/{f}"), dir.join(f)).unwrap();
    }
    let bytes = std::fs::read(format!("{src}/model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let mut weight_map = serde_json::Map::new();
    for (shard, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        let tensors: Vec<(String, safetensors::tensor::TensorView)> = part
            .iter()
            .map(|n| (n.clone(), st.tensor(n).unwrap()))
            .collect();
        safetensors::serialize_to_file(tensors, None, &dir.join(shard)).unwrap();
        for n in part {
            weight_map.insert(n.clone(), shard.into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();

    let sharded = ModelFile::open(&dir).unwrap();
    let single = ModelFile::open(src.as_ref()).unwrap();
    assert_eq!(sharded.config, single.config);
    let (x, y) = (sharded.weights.all(), single.weights.all());
    assert_eq!(x.len(), y.len());
    for (p, q) in x.iter().zip(&y) {
        assert_eq!(
            (&p.name, &p.shape, p.dtype, p.bytes()),
            (&q.name, &q.shape, q.dtype, q.bytes())
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
