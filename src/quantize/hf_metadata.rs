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

/// Every token of a `tokenizer.json` by id, with whether it is a special added token; rows of
/// the embedding no token names are `None`.
fn tokens_by_id(json: &Value, vocab_rows: usize) -> Result<Vec<Option<(String, bool)>>> {
    let mut tokens: Vec<Option<(String, bool)>> = vec![None; vocab_rows];
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
        tokens[id] = Some((text, special));
    }
    Ok(tokens)
}

/// The merges of a `tokenizer.json` BPE model as pairs of pieces, in rank order.
fn merge_pairs(json: &Value) -> Vec<(String, String)> {
    json["model"]["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| match m {
            Value::String(s) => s.split_once(' ').map(|(a, b)| (a.into(), b.into())),
            Value::Array(p) => Some((p.first()?.as_str()?.into(), p.get(1)?.as_str()?.into())),
            _ => None,
        })
        .collect()
}

/// The keys naming special tokens and the chat template, shared by both vocabulary kinds.
fn special_keys(file: &ModelFile, md: &mut Vec<(String, MetaValue)>) {
    let t = &file.tokenizer;
    md.push((
        "tokenizer.ggml.add_bos_token".into(),
        MetaValue::Bool(t.add_bos),
    ));
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
}

/// The `tokenizer.ggml.*` keys for a `tokenizer.json`: byte-level BPE (`gpt2`), or
/// SentencePiece BPE with byte fallback (`llama`: Gemma, Phi-3, Llama 2).
fn tokenizer_metadata(file: &ModelFile, vocab_rows: usize) -> Result<Vec<(String, MetaValue)>> {
    let json = read_json(&file.path.join("tokenizer.json"))?;
    if json["model"]["type"] == "BPE" && json["model"]["byte_fallback"] == true {
        return sentencepiece_metadata(file, &json, vocab_rows);
    }
    if json["model"]["type"] != "BPE" || json["decoder"]["type"] != "ByteLevel" {
        return Err(Error::Unsupported(
            "converting a tokenizer.json that is neither byte-level BPE nor SentencePiece BPE \
             with byte fallback"
                .into(),
        ));
    }
    let pre = pre_tokenizer_name(&json["pre_tokenizer"])?;
    let mut types = vec![token_type::NORMAL as i32; vocab_rows];
    // Rows the tokenizer never produces still need a (unique) piece.
    let tokens: Vec<String> = tokens_by_id(&json, vocab_rows)?
        .into_iter()
        .enumerate()
        .map(|(i, t)| match t {
            Some((text, special)) => {
                if special {
                    types[i] = token_type::CONTROL as i32;
                }
                text
            }
            None => {
                types[i] = token_type::USER_DEFINED as i32;
                format!("[PAD{i}]")
            }
        })
        .collect();
    let merges: Vec<String> = merge_pairs(&json)
        .into_iter()
        .map(|(a, b)| format!("{a} {b}"))
        .collect();
    let mut md = vec![
        ("tokenizer.ggml.model".into(), s("gpt2")),
        ("tokenizer.ggml.pre".into(), s(pre)),
        ("tokenizer.ggml.tokens".into(), strings(tokens)),
        (
            "tokenizer.ggml.token_type".into(),
            MetaValue::Array(5, types.into_iter().map(MetaValue::I32).collect()),
        ),
        ("tokenizer.ggml.merges".into(), strings(merges)),
    ];
    special_keys(file, &mut md);
    Ok(md)
}

/// The `llama` (SentencePiece) keys for a BPE `tokenizer.json` with byte fallback. llama.cpp
/// merges the adjacent pair whose union scores best, so each piece's score is minus the rank of
/// the first merge that makes it (pieces no merge makes score below all of those); `<0xAB>`
/// pieces are bytes, special added tokens control tokens, rows without a token unused.
fn sentencepiece_metadata(
    file: &ModelFile,
    json: &Value,
    vocab_rows: usize,
) -> Result<Vec<(String, MetaValue)>> {
    const UNUSED: i32 = 5;
    let merges = merge_pairs(json);
    let mut first_merge: std::collections::HashMap<String, usize> = Default::default();
    for (rank, (a, b)) in merges.iter().enumerate() {
        first_merge.entry(format!("{a}{b}")).or_insert(rank);
    }
    let unk = json["model"]["unk_token"].as_str();
    let is_byte = |t: &str| {
        t.len() == 6
            && t.starts_with("<0x")
            && t.ends_with('>')
            && u8::from_str_radix(&t[3..5], 16).is_ok()
    };
    let (mut tokens, mut scores, mut types) = (vec![], vec![], vec![]);
    for (id, t) in tokens_by_id(json, vocab_rows)?.into_iter().enumerate() {
        let (text, ty, score) = match t {
            None => (format!("[PAD{id}]"), UNUSED, -1e9),
            Some((text, special)) => {
                let ty = if Some(text.as_str()) == unk {
                    token_type::UNKNOWN
                } else if special {
                    token_type::CONTROL
                } else if is_byte(&text) {
                    token_type::BYTE
                } else {
                    token_type::NORMAL
                };
                let score = match first_merge.get(&text) {
                    Some(&rank) => -(rank as f32),
                    None => -((merges.len() + id) as f32),
                };
                (text, ty as i32, score)
            }
        };
        tokens.push(text);
        types.push(ty);
        scores.push(score);
    }
    // A space in front of the text: a `Prepend` normalizer, or a Metaspace pre-tokenizer that
    // prepends (Llama 2, Phi-3); Gemma has neither.
    let prefix = json["normalizer"].to_string().contains("\"Prepend\"")
        || (json["pre_tokenizer"]["type"] == "Metaspace"
            && json["pre_tokenizer"]["prepend_scheme"] != "never"
            && json["pre_tokenizer"]["add_prefix_space"] != false);
    let mut md = vec![
        ("tokenizer.ggml.model".into(), s("llama")),
        ("tokenizer.ggml.pre".into(), s("default")),
        ("tokenizer.ggml.tokens".into(), strings(tokens)),
        (
            "tokenizer.ggml.scores".into(),
            MetaValue::Array(6, scores.into_iter().map(MetaValue::F32).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            MetaValue::Array(5, types.into_iter().map(MetaValue::I32).collect()),
        ),
        (
            "tokenizer.ggml.add_space_prefix".into(),
            MetaValue::Bool(prefix),
        ),
    ];
    if let Some(u) = unk.and_then(|u| file.tokenizer.token_id(u)) {
        md.push(("tokenizer.ggml.unknown_token_id".into(), MetaValue::U32(u)));
    }
    special_keys(file, &mut md);
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
        (k("rope.dimension_count"), u(c.rope_dims)),
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
        // As llama.cpp's converter: the rescaling as the rope_freqs.weight divisors.
        RopeScaling::Llama3 { .. } => {}
    }
    md.extend(c.arch.def().gguf_keys(c)?);
    md.extend(tokenizer_metadata(file, c.vocab_size)?);
    Ok(md)
}
