//! Turns a GGUF vocabulary (`tokenizer.ggml.*`) into a Hugging Face `tokenizers` definition.
//!
//! The pieces and merges become a [`CompactBpe`]; the normalizer and pre-tokenizer are described
//! as `tokenizer.json` would describe them, so GGUF and Hugging Face models share one pipeline.
//! - `gpt2` vocabularies: byte-level BPE; the pre-tokenizer regexes are those llama.cpp uses for
//!   the `tokenizer.ggml.pre` name, applied in sequence.
//! - `llama` vocabularies: SentencePiece BPE. llama.cpp merges the adjacent pair whose union has
//!   the best score; that is BPE whose merge ranks follow the merged piece's score.

use std::collections::HashMap;

use serde_json::{Value, json};
use tokenizers::AddedToken;

use super::compact_bpe::{BpeOptions, CompactBpe};
use crate::error::{Error, Result};
use crate::format::gguf::GgufFile;

/// GGUF token types (`tokenizer.ggml.token_type`).
pub mod token_type {
    /// An ordinary piece.
    pub const NORMAL: i64 = 1;
    /// The unknown token.
    pub const UNKNOWN: i64 = 2;
    /// A control token (BOS, EOS, chat markers): matched in text only when parsing specials.
    pub const CONTROL: i64 = 3;
    /// A user-defined token: always matched as a whole in text.
    pub const USER_DEFINED: i64 = 4;
    /// A byte-fallback token `<0xAB>`.
    pub const BYTE: i64 = 6;
}

/// The regexes llama.cpp splits text with before byte-level BPE, by `tokenizer.ggml.pre`.
fn pre_tokenizer_regexes(pre: &str) -> Result<Vec<&'static str>> {
    const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
    const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    Ok(match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "dbrx" | "smaug-bpe" => vec![LLAMA3],
        "qwen2" | "stablelm2" => vec![QWEN2],
        "gpt-2" | "gpt2" | "mpt" | "olmo" | "jais" => vec![GPT2],
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" => {
            vec![r"\p{N}", GPT2]
        }
        "default" => vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
        other => {
            return Err(Error::Unsupported(format!(
                "BPE pre-tokenizer {other:?} (tokenizer.ggml.pre)"
            )));
        }
    })
}

/// A GGUF vocabulary, ready to assemble into a tokenizer pipeline.
pub struct GgufVocab {
    /// The BPE model: pieces and merges.
    pub model: CompactBpe,
    /// `normalizer` and `pre_tokenizer`, as `tokenizer.json` writes them.
    pub stages: Value,
    /// Control, user-defined and unknown tokens, matched in text as a whole.
    pub added: Vec<AddedToken>,
    /// Whether pieces are byte-level (GPT-2) rather than SentencePiece.
    pub byte_level: bool,
    /// SentencePiece: whether a space is put in front of the text (and removed when decoding).
    pub add_space_prefix: bool,
    /// Token types, by id.
    pub types: Vec<i64>,
}

fn string_array<'g>(g: &'g GgufFile, key: &str) -> Result<Option<Vec<&'g str>>> {
    let Some(v) = g.get(key) else { return Ok(None) };
    let items = v
        .as_array()
        .ok_or_else(|| Error::Tokenizer(format!("{key} is not an array")))?;
    items
        .iter()
        .map(|s| {
            s.as_str()
                .ok_or_else(|| Error::Tokenizer(format!("{key} holds a non-string")))
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

fn number_array(g: &GgufFile, key: &str, len: usize) -> Result<Option<Vec<f64>>> {
    let Some(v) = g.get(key) else { return Ok(None) };
    let items = v
        .as_array()
        .ok_or_else(|| Error::Tokenizer(format!("{key} is not an array")))?;
    if items.len() != len {
        return Err(Error::Tokenizer(format!(
            "{key} has {} entries for {len} tokens",
            items.len()
        )));
    }
    items
        .iter()
        .map(|x| {
            x.as_f64()
                .ok_or_else(|| Error::Tokenizer(format!("{key} holds a non-number")))
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Reads `tokenizer.ggml.*` and builds the vocabulary.
pub fn from_gguf(g: &GgufFile) -> Result<GgufVocab> {
    let model = g
        .get("tokenizer.ggml.model")
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            Error::Tokenizer("the GGUF file has no tokenizer (tokenizer.ggml.model)".into())
        })?;
    let tokens = string_array(g, "tokenizer.ggml.tokens")?
        .ok_or_else(|| Error::Tokenizer("tokenizer.ggml.tokens is missing".into()))?;
    let n = tokens.len();
    let types: Vec<i64> = number_array(g, "tokenizer.ggml.token_type", n)?
        .map(|v| v.into_iter().map(|t| t as i64).collect())
        .unwrap_or_else(|| vec![token_type::NORMAL; n]);

    let added: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|&(_, &t)| {
            matches!(
                t,
                token_type::CONTROL | token_type::USER_DEFINED | token_type::UNKNOWN
            )
        })
        .map(|(&piece, &t)| {
            AddedToken::from(piece, t != token_type::USER_DEFINED)
                .single_word(false)
                .lstrip(false)
                .rstrip(false)
                .normalized(false)
        })
        .collect();
    let count = u32::try_from(n).map_err(|_| Error::Tokenizer("over 2^32 tokens".into()))?;
    let pieces = || (0..count).zip(tokens.iter().copied());

    let (model, stages, byte_level, add_space_prefix) = match model {
        "gpt2" => {
            let merges = string_array(g, "tokenizer.ggml.merges")?
                .ok_or_else(|| Error::Tokenizer("tokenizer.ggml.merges is missing".into()))?;
            let merges: Vec<(&str, &str)> = merges
                .iter()
                .map(|m| {
                    m.split_once(' ')
                        .ok_or_else(|| Error::Tokenizer(format!("merge {m:?} is not two pieces")))
                })
                .collect::<Result<_>>()?;
            let pre = g
                .get("tokenizer.ggml.pre")
                .and_then(|v| v.as_str())
                .unwrap_or("default");
            let mut steps: Vec<Value> = pre_tokenizer_regexes(pre)?
                .into_iter()
                .map(|r| json!({"type": "Split", "pattern": {"Regex": r}, "behavior": "Isolated", "invert": false}))
                .collect();
            steps.push(json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}));
            let options = BpeOptions {
                // llama.cpp takes a whole pre-token from the vocabulary before merging for Llama 3.
                ignore_merges: matches!(pre, "llama3" | "llama-v3" | "llama-bpe"),
                ..BpeOptions::default()
            };
            let stages = json!({"pre_tokenizer": {"type": "Sequence", "pretokenizers": steps}});
            (
                CompactBpe::new(pieces(), merges, options)?,
                stages,
                true,
                false,
            )
        }
        "llama" => {
            let scores =
                number_array(g, "tokenizer.ggml.scores", n)?.unwrap_or_else(|| vec![0.0; n]);
            let add_space_prefix = g
                .get("tokenizer.ggml.add_space_prefix")
                .and_then(|v| v.as_bool())
                .unwrap_or(true);
            let merges = spm_merges(&tokens, &types, &scores);
            let options = BpeOptions {
                unk_token: g
                    .get("tokenizer.ggml.unknown_token_id")
                    .and_then(|v| v.as_u64())
                    .and_then(|i| tokens.get(i as usize))
                    .map(|t| t.to_string()),
                fuse_unk: true,
                byte_fallback: true,
                ..BpeOptions::default()
            };
            let mut normalizers = vec![];
            if add_space_prefix {
                normalizers.push(json!({"type": "Prepend", "prepend": "\u{2581}"}));
            }
            normalizers.push(
                json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"}),
            );
            let stages = json!({"normalizer": {"type": "Sequence", "normalizers": normalizers}});
            (
                CompactBpe::new(pieces(), merges, options)?,
                stages,
                false,
                add_space_prefix,
            )
        }
        other => {
            return Err(Error::Unsupported(format!(
                "tokenizer model {other:?} (gpt2 and llama are supported)"
            )));
        }
    };
    Ok(GgufVocab {
        model,
        stages,
        added,
        byte_level,
        add_space_prefix,
        types,
    })
}

/// BPE merges equivalent to SentencePiece's score-driven merging: every split of every normal
/// piece into two pieces that exist, ranked by the merged piece's score (best first).
fn spm_merges<'t>(tokens: &[&'t str], types: &[i64], scores: &[f64]) -> Vec<(&'t str, &'t str)> {
    let mergeable = |i: usize| types[i] == token_type::NORMAL;
    let ids: HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .filter(|&(i, _)| mergeable(i))
        .map(|(i, &t)| (t, i))
        .collect();
    let mut merges: Vec<(f64, usize, usize, usize)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        if !mergeable(id) {
            continue;
        }
        for (cut, _) in piece.char_indices().skip(1) {
            let (a, b) = piece.split_at(cut);
            if let (Some(&ia), Some(&ib)) = (ids.get(a), ids.get(b)) {
                merges.push((scores[id], id, ia, ib));
            }
        }
    }
    // Best score first; ties by merged id, then by the left piece, for a stable order.
    merges.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    merges
        .into_iter()
        .map(|(_, _, a, b)| (tokens[a], tokens[b]))
        .collect()
}
