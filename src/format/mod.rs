//! Model files: GGUF and Hugging Face folders, read into one [`ModelFile`].

pub mod config;
#[cfg(not(target_arch = "wasm32"))]
pub mod encrypted;
pub mod gguf;
pub mod gguf_write;
pub mod safetensors;
pub mod storage;
pub mod tensor;
pub mod weights;

use std::path::{Path, PathBuf};

pub use config::{Activation, Arch, LongRope, ModelConfig, RopeLayout, RopeScaling};
pub use tensor::TensorView;
pub use weights::{LayerWeights, ModelWeights, TensorSource};

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;
use gguf::GgufFile;

/// Where a model came from.
pub enum ModelSource {
    /// A GGUF file (kept for its metadata).
    Gguf(GgufFile),
    /// A Hugging Face folder (its `config.json`).
    HuggingFace(serde_json::Value),
}

/// The environment variable naming the key file of encrypted models (`--key-file` overrides it).
pub const KEY_FILE_VAR: &str = "EMBER_KEY_FILE";

/// A model file, fully understood: hyper-parameters, weights (still encoded), tokenizer.
pub struct ModelFile {
    /// The path given.
    pub path: PathBuf,
    /// File or folder specifics.
    pub source: ModelSource,
    /// Architecture hyper-parameters.
    pub config: ModelConfig,
    /// The weights, borrowed from the file.
    pub weights: ModelWeights,
    /// The tokenizer and special tokens.
    pub tokenizer: Tokenizer,
}

impl TensorSource for GgufFile {
    fn tensor(&self, canonical: &str) -> Result<Option<TensorView>> {
        Ok(GgufFile::tensor(self, canonical))
    }
}

impl ModelFile {
    /// Opens a GGUF file or a Hugging Face folder.
    pub fn open(path: &Path) -> Result<ModelFile> {
        if !path.exists() {
            return Err(Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
            ));
        }
        #[cfg(not(target_arch = "wasm32"))]
        if !path.is_dir() && encrypted::is_encrypted(path) {
            let Some(key_file) = std::env::var_os(KEY_FILE_VAR) else {
                return Err(Error::Invalid(format!(
                    "{} is an encrypted model: give its key with --key-file or {KEY_FILE_VAR}",
                    path.display()
                )));
            };
            return Self::open_encrypted(path, &encrypted::Key::from_file(key_file.as_ref())?);
        }
        let file = if path.is_dir() {
            Self::open_hf(path)
        } else {
            Self::open_gguf(path)
        };
        crate::resident::release_freed_heap();
        file
    }

    /// Opens an encrypted model ([`encrypted`]) with `key`: decrypted in memory, never on disk.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open_encrypted(path: &Path, key: &encrypted::Key) -> Result<ModelFile> {
        let plain = encrypted::decrypt_file(path, key)?;
        let mut file = Self::from_gguf_bytes(&path.display().to_string(), plain)?;
        file.path = path.to_path_buf();
        crate::resident::release_freed_heap();
        Ok(file)
    }

    fn open_gguf(path: &Path) -> Result<ModelFile> {
        Self::from_gguf(path, GgufFile::open(path)?)
    }

    /// A GGUF model from bytes already in memory (a browser's fetched file); `name` stands in
    /// for its path in reports.
    pub fn from_gguf_bytes(name: &str, bytes: Vec<u8>) -> Result<ModelFile> {
        let path = Path::new(name);
        let g = GgufFile::from_bytes(bytes).map_err(|e| match e {
            Error::Format(m) => Error::Format(format!("{name}: {m}")),
            other => other,
        })?;
        Self::from_gguf(path, g)
    }

    fn from_gguf(path: &Path, g: GgufFile) -> Result<ModelFile> {
        // Check the architecture before building a tokenizer: it is the more useful error.
        let arch = g
            .get("general.architecture")
            .and_then(|v| v.as_str())
            .unwrap_or("(missing)");
        Arch::from_name(arch)?;
        let tokenizer = Tokenizer::from_gguf(&g)?;
        // Before the weights' checks below map pages of the file: the two together made the
        // peak resident size of a whole run.
        crate::resident::release_freed_heap();
        let vocab = g
            .tensor("token_embd.weight")
            .map(|t| t.rows())
            .ok_or_else(|| Error::Tensor {
                name: "token_embd.weight".into(),
                problem: "missing from the model file".into(),
            })?;
        let tied = g.tensor("output.weight").is_none();
        let config = ModelConfig::from_gguf(&g, vocab, tied)?;
        let weights = ModelWeights::load(&g, &config)?;
        Ok(ModelFile {
            path: path.to_path_buf(),
            source: ModelSource::Gguf(g),
            config,
            weights,
            tokenizer,
        })
    }

    /// Drops what only building the tokenizer needed: a GGUF's vocabulary arrays (tokens,
    /// merges, types, scores: ~8 MB parsed for a 50k vocabulary) and the resident pages of its
    /// header. For running a model; whoever rewrites the file (quantize) keeps them.
    pub fn release_tokenizer_source(&mut self) {
        if let ModelSource::Gguf(g) = &mut self.source {
            g.metadata.retain(|(k, v)| {
                !(k.starts_with("tokenizer.ggml.") && matches!(v, gguf::MetaValue::Array(..)))
            });
            g.release_header();
        }
        crate::resident::release_freed_heap();
    }

    fn open_hf(dir: &Path) -> Result<ModelFile> {
        let cfg_json = safetensors::read_json(&dir.join("config.json"))?;
        let config = ModelConfig::from_hf(&cfg_json)?;
        let tensors = safetensors::HfTensors::open(dir, config.arch)?;
        let weights = ModelWeights::load(&tensors, &config)?;
        let tokenizer = Tokenizer::from_hf_folder(dir, &cfg_json)?;
        Ok(ModelFile {
            path: dir.to_path_buf(),
            source: ModelSource::HuggingFace(cfg_json),
            config,
            weights,
            tokenizer,
        })
    }

    /// `e`, and for a numeric fault in the model's output also the weight it comes from (the
    /// first NaN or infinity in the weights), or that every weight is finite. Scans every
    /// weight: for reporting a fault, not for the running path.
    pub fn trace_fault(&self, e: Error) -> Error {
        match e {
            Error::NonFinite(what) => Error::NonFinite(match self.weights.first_non_finite() {
                Some(cause) => format!("{what}; traced to {cause}"),
                None => format!("{what}; every weight is finite (activations overflowed?)"),
            }),
            other => other,
        }
    }

    /// An error if a file the weights are mapped from was truncated or rewritten in place since
    /// it was opened. Long-running commands check it before each answer: a file replaced by
    /// rename is fine (the old bytes stay mapped), one changed in place is not the model any
    /// more, and reading a truncated one would end the process with SIGBUS.
    pub fn check_unchanged(&self) -> Result<()> {
        let all = self.weights.all();
        for (i, t) in all.iter().enumerate() {
            if !all[..i].iter().any(|seen| seen.same_storage(t)) {
                t.check_unchanged()?;
            }
        }
        Ok(())
    }

    /// Bytes of weights by encoding, largest first.
    pub fn bytes_by_type(&self) -> Vec<(crate::quant::GgmlType, usize, usize)> {
        let mut map = std::collections::BTreeMap::new();
        for t in self.weights.all() {
            let e = map.entry(t.dtype).or_insert((0usize, 0usize));
            e.0 += 1;
            e.1 += t.bytes().len();
        }
        let mut v: Vec<_> = map.into_iter().map(|(k, (n, b))| (k, n, b)).collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.2));
        v
    }
}
