//! Text <-> token ids: the tokenizer (from `tokenizer.json` or a GGUF vocabulary), streaming
//! detokenization and chat templates.

pub mod chat;
mod compact_bpe;
pub mod gguf_vocab;
mod pipeline;
mod stream;
mod template_sandbox;

use std::path::Path;

use serde_json::Value;

pub use chat::ChatMessage;
pub use stream::StreamDecoder;

use crate::error::{Error, Result};
use crate::format::gguf::GgufFile;
use gguf_vocab::token_type;
use pipeline::Pipeline;

/// How vocabulary pieces map to bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VocabKind {
    /// GPT-2 byte-level BPE: each byte is drawn as a printable character.
    ByteLevel,
    /// SentencePiece: `▁` is a space, `<0xAB>` pieces are raw bytes.
    SentencePiece,
}

/// A model's tokenizer plus the facts about its special tokens.
pub struct Tokenizer {
    /// The tokenizer; its "encode special tokens" switch is flipped per call, hence the lock
    /// (one copy instead of two: a vocabulary costs tens of MB).
    inner: std::sync::Mutex<Pipeline>,
    kind: VocabKind,
    strip_leading_space: bool,
    /// Every token's bytes, back to back; token `i` ends at `token_ends[i]`.
    token_bytes: Vec<u8>,
    token_ends: Vec<u32>,
    control: Vec<bool>,
    /// Beginning-of-sequence token.
    pub bos: Option<u32>,
    /// End-of-sequence token.
    pub eos: Option<u32>,
    /// Tokens that end generation (EOS and end-of-turn markers).
    pub stop_ids: Vec<u32>,
    /// Whether encoding a prompt prepends BOS.
    pub add_bos: bool,
    /// The model's chat template, if it has one.
    pub chat_template: Option<String>,
}

/// GPT-2's byte-to-character table, inverted: printable character -> byte.
fn byte_level_decoder() -> std::collections::HashMap<char, u8> {
    let mut printable: Vec<u32> = ('!' as u32..='~' as u32).collect();
    printable.extend('¡' as u32..='¬' as u32);
    printable.extend('®' as u32..='ÿ' as u32);
    let mut map = std::collections::HashMap::new();
    let mut extra = 0u32;
    for b in 0..=255u32 {
        let c = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        #[allow(clippy::expect_used, reason = "c <= 0x143, below the surrogates")]
        let ch = char::from_u32(c).expect("valid code point");
        map.insert(ch, b as u8);
    }
    map
}

/// Appends the bytes `piece` stands for to `out`.
fn push_piece_bytes(
    out: &mut Vec<u8>,
    piece: &str,
    kind: VocabKind,
    is_text_token: bool,
    table: &std::collections::HashMap<char, u8>,
) {
    if is_text_token {
        return out.extend_from_slice(piece.as_bytes());
    }
    match kind {
        VocabKind::ByteLevel => {
            for c in piece.chars() {
                match table.get(&c) {
                    Some(&b) => out.push(b),
                    None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
        }
        VocabKind::SentencePiece => {
            let hex = piece.strip_prefix("<0x").and_then(|h| h.strip_suffix('>'));
            match hex
                .filter(|h| h.len() == 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(b) => out.push(b),
                None => {
                    for (i, part) in piece.split('\u{2581}').enumerate() {
                        if i > 0 {
                            out.push(b' ');
                        }
                        out.extend_from_slice(part.as_bytes());
                    }
                }
            }
        }
    }
}

/// Token names that end a turn in common chat formats.
const END_OF_TURN: &[&str] = &[
    "<|im_end|>",
    "<|eot_id|>",
    "<|end|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<end_of_turn>",
];

/// The longest added (special) token accepted. Real ones are a few dozen bytes; the automaton
/// `tokenizers` builds to find them in text takes time growing with the square of a token's
/// length (a fuzzed tokenizer.json with an 82 KB token took 160 s to load).
const MAX_ADDED_TOKEN_BYTES: usize = 512;

/// Refuses added tokens too long to match in reasonable time.
fn check_added_tokens(added: &[tokenizers::AddedToken]) -> Result<()> {
    match added
        .iter()
        .enumerate()
        .find(|(_, t)| t.content.len() > MAX_ADDED_TOKEN_BYTES)
    {
        Some((i, t)) => Err(Error::Tokenizer(format!(
            "added token {i} is {} bytes long; at most {MAX_ADDED_TOKEN_BYTES} are supported",
            t.content.len()
        ))),
        None => Ok(()),
    }
}

/// Refuses BPE merges whose second token is shorter than the model's continuing-subword prefix:
/// `tokenizers` cuts the prefix off each one with a slice that panics then (found by fuzzing).
fn check_merges(json: &Value) -> Result<()> {
    let Some(prefix) = json["model"]["continuing_subword_prefix"].as_str() else {
        return Ok(());
    };
    let merges = json["model"]["merges"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    for (i, merge) in merges.iter().enumerate() {
        // "a b" (older files) or ["a", "b"].
        let second = match merge {
            Value::String(pair) => pair.split_once(' ').map(|(_, b)| b),
            Value::Array(pair) => pair.get(1).and_then(Value::as_str),
            _ => None,
        };
        if let Some(b) = second
            && !(b.len() >= prefix.len() && b.is_char_boundary(prefix.len()))
        {
            return Err(Error::Tokenizer(format!(
                "merge {i}'s second token {b:?} is shorter than the continuing-subword prefix {prefix:?}"
            )));
        }
    }
    Ok(())
}

/// Runs `f`, a call into `tokenizers` with untrusted input: that is a third party's code, and a
/// panic it still has becomes an error here rather than the end of the process.
fn without_panics<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| Error::Tokenizer("the tokenizer could not be built (it panicked)".into()))?
}

impl Tokenizer {
    fn build(
        model: pipeline::VocabModel,
        stages: &Value,
        added: &[tokenizers::AddedToken],
        kind: VocabKind,
        strip_leading_space: bool,
        control_of: impl Fn(u32, &str) -> bool,
    ) -> Result<Tokenizer> {
        check_added_tokens(added)?;
        let ids = model.id_count();
        // Every id gets a slot below: a claimed id far past the vocabulary's size would drive an
        // allocation (a WordLevel vocabulary may name any id).
        let entries = tokenizers::Model::get_vocab_size(&model) + added.len();
        if !compact_bpe::plausible_id_count(ids, entries) {
            return Err(Error::Tokenizer(format!(
                "vocabulary id {} is far beyond its {entries} entries",
                ids - 1
            )));
        }
        let pipeline = without_panics(|| pipeline::assemble(model, stages, added))?;
        let added_ids = pipeline.get_added_tokens_decoder();
        let n = added_ids
            .keys()
            .map(|&id| id as usize + 1)
            .fold(ids, usize::max);
        let n = u32::try_from(n).map_err(|_| Error::Tokenizer("over 2^32 tokens".into()))?;
        let table = byte_level_decoder();
        let mut token_bytes = Vec::new();
        let mut token_ends = Vec::with_capacity(n as usize);
        let mut control = Vec::with_capacity(n as usize);
        for id in 0..n {
            let piece = pipeline.id_to_token(id).unwrap_or_default();
            let text_token = added_ids.contains_key(&id);
            push_piece_bytes(&mut token_bytes, &piece, kind, text_token, &table);
            token_ends
                .push(u32::try_from(token_bytes.len()).map_err(|_| {
                    Error::Tokenizer("the vocabulary's pieces exceed 4 GiB".into())
                })?);
            control.push(control_of(id, &piece));
        }
        token_bytes.shrink_to_fit();
        Ok(Tokenizer {
            inner: std::sync::Mutex::new(pipeline),
            kind,
            strip_leading_space,
            token_bytes,
            token_ends,
            control,
            bos: None,
            eos: None,
            stop_ids: Vec::new(),
            add_bos: false,
            chat_template: None,
        })
    }

    fn finish_specials(mut self) -> Self {
        let mut stops: Vec<u32> = self.eos.into_iter().collect();
        for name in END_OF_TURN {
            if let Some(id) = self
                .token_id(name)
                .filter(|&id| self.is_control(id) && !stops.contains(&id))
            {
                stops.push(id);
            }
        }
        self.stop_ids = stops;
        self
    }

    /// Builds the tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(g: &GgufFile) -> Result<Tokenizer> {
        let v = gguf_vocab::from_gguf(g)?;
        let kind = if v.byte_level {
            VocabKind::ByteLevel
        } else {
            VocabKind::SentencePiece
        };
        let types = &v.types;
        let mut t = Self::build(
            pipeline::VocabModel::Bpe(v.model),
            &v.stages,
            &v.added,
            kind,
            v.add_space_prefix,
            |id, _| {
                matches!(
                    types.get(id as usize),
                    Some(&token_type::CONTROL) | Some(&token_type::UNKNOWN)
                )
            },
        )?;
        let id = |key: &str| {
            g.get(key)
                .and_then(|v| v.as_u64())
                .and_then(|i| u32::try_from(i).ok())
                .filter(|&i| (i as usize) < types.len())
        };
        t.bos = id("tokenizer.ggml.bos_token_id");
        t.eos = id("tokenizer.ggml.eos_token_id");
        t.add_bos = g
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.as_bool())
            .unwrap_or(kind == VocabKind::SentencePiece)
            && t.bos.is_some();
        t.chat_template = g
            .get("tokenizer.chat_template")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        Ok(t.finish_specials())
    }

    /// Loads `tokenizer.json` and `tokenizer_config.json` from a Hugging Face folder;
    /// `config` is the folder's `config.json` (a fallback for BOS/EOS ids).
    pub fn from_hf_folder(dir: &Path, config: &Value) -> Result<Tokenizer> {
        let json = crate::format::safetensors::read_json(&dir.join("tokenizer.json"))?;
        let cfg_path = dir.join("tokenizer_config.json");
        let tcfg = if cfg_path.is_file() {
            crate::format::safetensors::read_json(&cfg_path)?
        } else {
            Value::Null
        };
        let decoder = json["decoder"].to_string();
        let kind = if json["decoder"]["type"] == "ByteLevel"
            || json["pre_tokenizer"].to_string().contains("ByteLevel")
        {
            VocabKind::ByteLevel
        } else {
            VocabKind::SentencePiece
        };
        let strip = kind == VocabKind::SentencePiece && decoder.contains("Strip");
        let specials: std::collections::HashSet<u64> = json["added_tokens"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|t| t["special"] == true)
                    .filter_map(|t| t["id"].as_u64())
                    .collect()
            })
            .unwrap_or_default();
        check_merges(&json)?;
        let added = pipeline::added_tokens(&json)?;
        let model = without_panics(|| pipeline::model_from_json(&json["model"]))?;
        let mut t = Self::build(model, &json, &added, kind, strip, |id, _| {
            specials.contains(&u64::from(id))
        })?;
        // tokenizer_config names special tokens as strings or {"content": …} objects.
        let token_id = |t: &Tokenizer, key: &str| -> Option<u32> {
            let v = &tcfg[key];
            let s = v.as_str().or_else(|| v["content"].as_str())?;
            t.token_id(s)
        };
        let cfg_id = |key: &str| config[key].as_u64().and_then(|i| u32::try_from(i).ok());
        t.bos = token_id(&t, "bos_token").or_else(|| cfg_id("bos_token_id"));
        t.eos = token_id(&t, "eos_token").or_else(|| cfg_id("eos_token_id"));
        t.add_bos = tcfg["add_bos_token"].as_bool().unwrap_or(false) && t.bos.is_some();
        t.chat_template = match &tcfg["chat_template"] {
            Value::String(s) => Some(s.clone()),
            Value::Array(list) => list
                .iter()
                .find(|e| e["name"] == "default")
                .or(list.first())
                .and_then(|e| e["template"].as_str())
                .map(str::to_string),
            // transformers 5 saves the template in a file of its own.
            _ => {
                let file = dir.join("chat_template.jinja");
                if file.is_file() {
                    Some(std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?)
                } else {
                    None
                }
            }
        };
        Ok(t.finish_specials())
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.token_ends.len()
    }

    /// The vocabulary's piece style.
    pub fn kind(&self) -> VocabKind {
        self.kind
    }

    /// Whether `id` is a control token (not printed as text by default).
    pub fn is_control(&self, id: u32) -> bool {
        self.control.get(id as usize).copied().unwrap_or(false)
    }

    /// The id of a piece or special token, by its text.
    pub fn token_id(&self, piece: &str) -> Option<u32> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .token_to_id(piece)
    }

    /// Encodes `text`. `parse_special` makes special-token text (`<|im_start|>`) become that
    /// token; otherwise it is tokenized as ordinary text. BOS is prepended when the model asks.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        if self.add_bos {
            ids.extend(self.bos);
        }
        ids.extend(self.encode_pieces(text, parse_special)?);
        Ok(ids)
    }

    /// Encodes without BOS and without parsing special tokens (tokenizer test vectors).
    pub fn encode_raw(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_pieces(text, false)
    }

    fn encode_pieces(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        let mut tk = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        tk.set_encode_special_tokens(!parse_special);
        let enc = tk
            .encode(text, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The bytes `id` stands for (special tokens: their text).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        let id = id as usize;
        let Some(&end) = self.token_ends.get(id) else {
            return &[];
        };
        let start = id.checked_sub(1).map_or(0, |prev| self.token_ends[prev]);
        &self.token_bytes[start as usize..end as usize]
    }

    /// The text of one token, for naming special tokens.
    pub fn token_text(&self, id: u32) -> String {
        String::from_utf8_lossy(self.token_bytes(id)).into_owned()
    }

    /// A streaming decoder suited to this vocabulary.
    pub fn stream(&self) -> StreamDecoder {
        StreamDecoder::new(self.strip_leading_space)
    }

    /// Decodes ids to text; control tokens are rendered as their text when `specials` is true,
    /// dropped otherwise.
    pub fn decode(&self, ids: &[u32], specials: bool) -> String {
        let mut s = self.stream();
        let mut out = String::new();
        for &id in ids {
            if specials || !self.is_control(id) {
                out.push_str(&s.push(self.token_bytes(id)));
            }
        }
        out.push_str(&s.finish());
        out
    }

    /// Renders a conversation with the model's chat template.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self
            .chat_template
            .as_deref()
            .ok_or_else(|| Error::Template("the model has no chat template".into()))?;
        let name = |id: Option<u32>| id.map(|i| self.token_text(i)).unwrap_or_default();
        chat::render(
            template,
            messages,
            add_generation_prompt,
            &name(self.bos),
            &name(self.eos),
        )
    }

    /// The prompt tokens of a conversation: rendered with the chat template (the assistant's
    /// turn opened), then encoded. Templates that write BOS themselves do not get a second one.
    pub fn encode_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        let rendered = self.apply_chat_template(messages, true)?;
        let mut ids = self.encode(&rendered, true)?;
        if self.add_bos && ids.len() > 1 && ids[1] == ids[0] {
            ids.remove(0);
        }
        Ok(ids)
    }
}
