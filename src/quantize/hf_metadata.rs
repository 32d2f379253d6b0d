//! GGUF metadata for a model that comes from a Hugging Face folder: hyper-parameters from
//! `config.json`, the vocabulary from `tokenizer.json` as `tokenizer.ggml.*` keys, so the written
//! file stands alone in Ember and in llama.cpp.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::format::gguf::MetaValue;
use crate::format::safetensors::read_json;
use crate::format::{ModelFile, RopeScaling};
use crate::tokenizer::gguf_vocab::token_type;

fn s(v: &str) -> MetaValue {
    MetaValue::String(v.to_string())
}

fn strings(v: Vec<String>) -> MetaValue {
    MetaValue::Array(8, v.into_iter().map(MetaValue::String).collect())
}

/// llama.cpp's name for the pre-tokenizer a `tokenizer.json` describes.
fn pre_tokenizer_name(pre: &Value) -> Result<&'static str> {
    let steps: Vec<&Value> = match pre["type"].as_str() {
        Some("Sequence") => pre["pretokenizers"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        Some(_) => vec![pre],
        None => vec![],
    };
    let kinds: Vec<&str> = steps.iter().filter_map(|p| p["type"].as_str()).collect();
    let split_regex = steps
        .iter()
        .find(|p| p["type"] == "Split")
        .and_then(|p| p["pattern"]["Regex"].as_str())
        .unwrap_or("");
    let name = match kinds.as_slice() {
        ["ByteLevel"] if steps[0]["use_regex"] != false => "gpt-2",
        ["Digits", "ByteLevel"] if steps[0]["individual_digits"] == true => "smollm",
        ["Split", "ByteLevel"] if split_regex.contains(r"\p{N}{1,3}") => "llama-bpe",
        ["Split", "ByteLevel"] if split_regex.contains(r"\p{N}|") => "qwen2",
        _ => {
            return Err(Error::Unsupported(format!(
                "this tokenizer.json pre-tokenizer ({kinds:?}) has no llama.cpp equivalent Ember knows"
            )));
        }
    };
    Ok(name)
}

/// The `tokenizer.ggml.*` keys for a byte-level BPE `tokenizer.json`.
fn tokenizer_metadata(file: &ModelFile, vocab_rows: usize) -> Result<Vec<(String, MetaValue)>> {
    let json = read_json(&file.path.join("tokenizer.json"))?;
    if json["model"]["type"] != "BPE" || json["decoder"]["type"] != "ByteLevel" {
        return Err(Error::Unsupported(
            "converting a tokenizer.json that is not byte-level BPE".into(),
        ));
    }
    let pre = pre_tokenizer_name(&json["pre_tokenizer"])?;
    let mut tokens: Vec<Option<String>> = vec![None; vocab_rows];
    let mut types = vec![token_type::NORMAL as i32; vocab_rows];
    let vocab = json["model"]["vocab"]
        .as_object()
        .ok_or_else(|| Error::Tokenizer("tokenizer.json has no vocab".into()))?;
    let entries = vocab.iter().map(|(t, id)| (t.clone(), id.as_u64(), false));
    let added = json["added_tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["content"].as_str().unwrap_or_default().to_string(),
                a["id"].as_u64(),
                a["special"] == true,
            )
        });
    for (text, id, special) in entries.chain(added) {
        let id = id.ok_or_else(|| Error::Tokenizer(format!("token {text:?} has no id")))? as usize;
        if id >= vocab_rows {
            return Err(Error::Tokenizer(format!(
                "token id {id} is past the embedding's {vocab_rows} rows"
            )));
        }
        tokens[id] = Some(text);
        if special {
            types[id] = token_type::CONTROL as i32;
        }
    }
    // Rows the tokenizer never produces still need a (unique) piece.
    let tokens: Vec<String> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            t.unwrap_or_else(|| {
                types[i] = token_type::USER_DEFINED as i32;
                format!("[PAD{i}]")
            })
        })
        .collect();
    let merges: Vec<String> = json["model"]["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| match m {
            Value::String(s) => Some(s.clone()),
            Value::Array(p) => Some(format!("{} {}", p.first()?.as_str()?, p.get(1)?.as_str()?)),
            _ => None,
        })
        .collect();
    let t = &file.tokenizer;
    let mut md = vec![
        ("tokenizer.ggml.model".into(), s("gpt2")),
        ("tokenizer.ggml.pre".into(), s(pre)),
        ("tokenizer.ggml.tokens".into(), strings(tokens)),
        (
            "tokenizer.ggml.token_type".into(),
            MetaValue::Array(5, types.into_iter().map(MetaValue::I32).collect()),
        ),
        ("tokenizer.ggml.merges".into(), strings(merges)),
        (
            "tokenizer.ggml.add_bos_token".into(),
            MetaValue::Bool(t.add_bos),
        ),
    ];
    md.extend(
        t.bos
            .map(|b| ("tokenizer.ggml.bos_token_id".to_string(), MetaValue::U32(b))),
    );
    md.extend(
        t.eos
            .map(|e| ("tokenizer.ggml.eos_token_id".to_string(), MetaValue::U32(e))),
    );
    md.extend(
        t.chat_template
            .clone()
            .map(|c| ("tokenizer.chat_template".to_string(), MetaValue::String(c))),
    );
    Ok(md)
}

/// Every metadata key a GGUF file of this model needs.
pub fn metadata(file: &ModelFile, config: &Value) -> Result<Vec<(String, MetaValue)>> {
    let c = &file.config;
    let a = c.arch.name();
    let k = |key: &str| format!("{a}.{key}");
    let u = |v: usize| MetaValue::U32(v as u32);
    let name = file
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let mut md = vec![
        ("general.architecture".to_string(), s(a)),
        (
            "general.name".to_string(),
            MetaValue::String(
                config["_name_or_path"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or(name),
            ),
        ),
        (k("context_length"), u(c.context_length)),
        (k("embedding_length"), u(c.hidden)),
        (k("block_count"), u(c.layers)),
        (k("feed_forward_length"), u(c.ffn)),
        (k("attention.head_count"), u(c.heads)),
        (k("attention.head_count_kv"), u(c.kv_heads)),
        (k("attention.key_length"), u(c.head_dim)),
        (k("attention.value_length"), u(c.head_dim)),
        (k("rope.dimension_count"), u(c.head_dim)),
        (k("rope.freq_base"), MetaValue::F32(c.rope_theta)),
        (
            k("attention.layer_norm_rms_epsilon"),
            MetaValue::F32(c.rms_eps),
        ),
        (k("vocab_size"), u(c.vocab_size)),
    ];
    match c.rope_scaling {
        RopeScaling::None => {}
        RopeScaling::Linear { factor } => {
            md.push((k("rope.scaling.type"), s("linear")));
            md.push((k("rope.scaling.factor"), MetaValue::F32(factor)));
        }
        RopeScaling::Llama3 { .. } => {
            return Err(Error::Unsupported(
                "writing Llama 3 rope scaling to GGUF (rope_freqs) is not implemented yet".into(),
            ));
        }
    }
    md.extend(c.arch.def().gguf_keys(c)?);
    md.extend(tokenizer_metadata(file, c.vocab_size)?);
    Ok(md)
}
