//! The encoding pipeline: `tokenizers`' normalizers, pre-tokenizers and added-token matching
//! around a vocabulary model, which is Ember's [`CompactBpe`] for BPE vocabularies (every GGUF
//! one, and `tokenizer.json` files of type BPE) and `tokenizers`' own model otherwise.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::BpeTrainer;
use tokenizers::{
    AddedToken, DecoderWrapper, Model, ModelWrapper, NormalizerWrapper, PostProcessorWrapper,
    PreTokenizerWrapper, Token, TokenizerImpl,
};

use super::compact_bpe::{BpeOptions, CompactBpe};
use crate::error::{Error, Result};

/// A vocabulary model: the compact BPE, or any model `tokenizers` reads.
pub enum VocabModel {
    /// Byte-pair encoding over flat tables.
    Bpe(CompactBpe),
    /// WordPiece, Unigram, WordLevel, or BPE with dropout.
    Other(ModelWrapper),
}

/// The tokenizer Ember encodes with.
pub type Pipeline = TokenizerImpl<
    VocabModel,
    NormalizerWrapper,
    PreTokenizerWrapper,
    PostProcessorWrapper,
    DecoderWrapper,
>;

impl Model for VocabModel {
    type Trainer = TrainerWrapper;

    fn tokenize(&self, sequence: &str) -> tokenizers::Result<Vec<Token>> {
        match self {
            VocabModel::Bpe(m) => m.tokenize(sequence),
            VocabModel::Other(m) => m.tokenize(sequence),
        }
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        match self {
            VocabModel::Bpe(m) => m.id_of(token),
            VocabModel::Other(m) => m.token_to_id(token),
        }
    }

    fn id_to_token(&self, id: u32) -> Option<String> {
        match self {
            VocabModel::Bpe(m) => m.piece_of(id).map(str::to_string),
            VocabModel::Other(m) => m.id_to_token(id),
        }
    }

    fn get_vocab(&self) -> HashMap<String, u32> {
        match self {
            VocabModel::Bpe(m) => m.entries().map(|(p, id)| (p.to_string(), id)).collect(),
            VocabModel::Other(m) => m.get_vocab(),
        }
    }

    fn get_vocab_size(&self) -> usize {
        match self {
            VocabModel::Bpe(m) => m.piece_count(),
            VocabModel::Other(m) => m.get_vocab_size(),
        }
    }

    fn save(&self, folder: &Path, prefix: Option<&str>) -> tokenizers::Result<Vec<PathBuf>> {
        match self {
            VocabModel::Bpe(_) => Err("Ember's BPE vocabularies are not saved as files".into()),
            VocabModel::Other(m) => m.save(folder, prefix),
        }
    }

    fn get_trainer(&self) -> TrainerWrapper {
        match self {
            VocabModel::Bpe(_) => TrainerWrapper::BpeTrainer(BpeTrainer::default()),
            VocabModel::Other(m) => m.get_trainer(),
        }
    }
}

impl VocabModel {
    /// Ids the model numbers (the largest plus one).
    pub fn id_count(&self) -> usize {
        match self {
            VocabModel::Bpe(m) => m.id_count(),
            VocabModel::Other(m) => m
                .get_vocab()
                .values()
                .max()
                .map_or(0, |&id| id as usize + 1),
        }
    }
}

fn tokenizer_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(format!("{what}: {e}"))
}

/// One stage of a `tokenizer.json` (`normalizer`, `pre_tokenizer` …); null or absent is none.
fn stage<T: for<'de> Deserialize<'de>>(json: &Value, key: &str) -> Result<Option<T>> {
    Option::<T>::deserialize(&json[key]).map_err(|e| tokenizer_error(key, e))
}

/// Puts a pipeline together: `stages` holds `normalizer`, `pre_tokenizer` and `post_processor`
/// as `tokenizer.json` writes them. (No decoder: Ember decodes from the token bytes it keeps.)
pub fn assemble(model: VocabModel, stages: &Value, added: &[AddedToken]) -> Result<Pipeline> {
    let mut pipeline = Pipeline::new(model);
    pipeline
        .with_normalizer(stage::<NormalizerWrapper>(stages, "normalizer")?)
        .with_pre_tokenizer(stage::<PreTokenizerWrapper>(stages, "pre_tokenizer")?)
        .with_post_processor(stage::<PostProcessorWrapper>(stages, "post_processor")?);
    pipeline.add_tokens(added);
    Ok(pipeline)
}

/// The added tokens of a `tokenizer.json`.
pub fn added_tokens(json: &Value) -> Result<Vec<AddedToken>> {
    match &json["added_tokens"] {
        Value::Null => Ok(Vec::new()),
        v => Vec::<AddedToken>::deserialize(v).map_err(|e| tokenizer_error("added_tokens", e)),
    }
}

/// The model of a `tokenizer.json`: BPE without dropout becomes a [`CompactBpe`].
pub fn model_from_json(model: &Value) -> Result<VocabModel> {
    let dropout = model["dropout"].as_f64().unwrap_or(0.0);
    if model["type"] != "BPE" || dropout != 0.0 {
        return ModelWrapper::deserialize(model)
            .map(VocabModel::Other)
            .map_err(|e| tokenizer_error("model", e));
    }
    let text = |key: &str| -> Result<Option<String>> {
        match &model[key] {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            _ => Err(Error::Tokenizer(format!("model.{key} is not a string"))),
        }
    };
    let flag = |key: &str| -> Result<bool> {
        match &model[key] {
            Value::Null => Ok(false),
            Value::Bool(b) => Ok(*b),
            _ => Err(Error::Tokenizer(format!("model.{key} is not a boolean"))),
        }
    };
    let options = BpeOptions {
        unk_token: text("unk_token")?,
        fuse_unk: flag("fuse_unk")?,
        byte_fallback: flag("byte_fallback")?,
        ignore_merges: flag("ignore_merges")?,
        continuing_subword_prefix: text("continuing_subword_prefix")?,
        end_of_word_suffix: text("end_of_word_suffix")?,
    };
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| Error::Tokenizer("model.vocab is not an object".into()))?;
    let pieces = vocab
        .iter()
        .map(|(piece, id)| {
            id.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .map(|id| (id, piece.as_str()))
                .ok_or_else(|| Error::Tokenizer(format!("model.vocab[{piece:?}] is not an id")))
        })
        .collect::<Result<Vec<_>>>()?;
    let merges = bpe_merges(&model["merges"])?;
    CompactBpe::new(pieces.into_iter(), merges, options).map(VocabModel::Bpe)
}

/// `merges` as `["a", "b"]` pairs or as `"a b"` lines (`#version` lines skipped).
fn bpe_merges(merges: &Value) -> Result<Vec<(&str, &str)>> {
    let list = match merges {
        Value::Null => return Ok(Vec::new()),
        Value::Array(list) => list,
        _ => return Err(Error::Tokenizer("model.merges is not a list".into())),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, merge) in list.iter().enumerate() {
        let pair = match merge {
            Value::String(line) if line.starts_with("#version") => continue,
            Value::String(line) => {
                let mut parts = line.split(' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(a), Some(b), None) => Some((a, b)),
                    _ => None,
                }
            }
            Value::Array(pair) if pair.len() == 2 => pair[0].as_str().zip(pair[1].as_str()),
            _ => None,
        };
        out.push(pair.ok_or_else(|| Error::Tokenizer(format!("merge {i} is not two pieces")))?);
    }
    Ok(out)
}
