//! Model architectures, one file each. An architecture is a name, the way its GGUF keys and
//! Hugging Face `config.json` fill a [`ModelConfig`], and the names its files give tensors; the
//! forward pass (`src/model/transformer.rs`) is shared, and what differs between architectures
//! is data in [`ModelConfig`] (biases, head norms, post-norms, soft-caps, windows, the
//! activation…).
//!
//! Adding an architecture: a file here implementing [`Architecture`], a variant of [`Arch`] and
//! its line in [`Arch::def`].

mod gemma2;
mod gemma3;
mod llama;
mod phi3;
mod qwen2;
mod qwen3;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::format::ModelConfig;
use crate::format::gguf::{GgufFile, MetaValue};
use crate::format::tensor::TensorView;

/// The model families Ember runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Llama 2/3/3.2, TinyLlama, SmolLM, Mistral.
    Llama,
    /// Qwen2 / Qwen2.5.
    Qwen2,
    /// Qwen3.
    Qwen3,
    /// Gemma 2.
    Gemma2,
    /// Gemma 3 (text).
    Gemma3,
    /// Phi-3, Phi-3.5, Phi-4-mini.
    Phi3,
}

impl Arch {
    /// Every architecture, in the order `ember` lists them.
    pub const ALL: [Arch; 6] = [
        Arch::Llama,
        Arch::Qwen2,
        Arch::Qwen3,
        Arch::Gemma2,
        Arch::Gemma3,
        Arch::Phi3,
    ];

    /// The architecture's definition.
    pub fn def(self) -> &'static dyn Architecture {
        match self {
            Arch::Llama => &llama::Llama,
            Arch::Qwen2 => &qwen2::Qwen2,
            Arch::Qwen3 => &qwen3::Qwen3,
            Arch::Gemma2 => &gemma2::Gemma2,
            Arch::Gemma3 => &gemma3::Gemma3,
            Arch::Phi3 => &phi3::Phi3,
        }
    }

    /// GGUF's name for the architecture (`general.architecture`).
    pub fn name(self) -> &'static str {
        self.def().gguf_name()
    }

    /// The architecture a GGUF `general.architecture` or an HF `model_type` names.
    pub fn from_name(name: &str) -> Result<Arch> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == name || a.def().hf_model_types().contains(&name))
            .ok_or_else(|| {
                let known: Vec<&str> = Arch::ALL.iter().map(|a| a.name()).collect();
                Error::Unsupported(format!(
                    "architecture {name:?} (supported: {}; Hugging Face mistral folders too)",
                    known.join(", ")
                ))
            })
    }
}

/// Reads an architecture's `{arch}.*` GGUF keys.
pub struct GgufKeys<'a> {
    /// The file.
    pub file: &'a GgufFile,
    /// The key prefix (`general.architecture`).
    pub arch: &'a str,
}

impl GgufKeys<'_> {
    /// The full name of key `k`.
    pub fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.arch)
    }

    /// A key's value, if present.
    pub fn get(&self, k: &str) -> Option<&MetaValue> {
        self.file.get(&self.key(k))
    }

    /// An optional float.
    pub fn float(&self, k: &str) -> Option<f32> {
        self.get(k).and_then(|v| v.as_f64()).map(|v| v as f32)
    }

    /// An optional size, checked to be plausible.
    pub fn size(&self, k: &str) -> Result<Option<usize>> {
        self.get(k)
            .and_then(|v| v.as_u64())
            .map(|v| plausible_size(v, &self.key(k)))
            .transpose()
    }
}

/// A positive size that a real model could have (guards later allocations against nonsense).
pub fn plausible_size(v: u64, key: &str) -> Result<usize> {
    if v == 0 || v > 1 << 24 {
        return Err(Error::format(format!(
            "{key} = {v} is not a plausible size"
        )));
    }
    Ok(v as usize)
}

/// What one architecture contributes. The defaults are Llama's.
pub trait Architecture: Sync {
    /// `general.architecture` in GGUF files.
    fn gguf_name(&self) -> &'static str;
    /// Hugging Face `model_type`s read as this architecture.
    fn hf_model_types(&self) -> &'static [&'static str];
    /// Sets what this architecture's GGUF keys and conventions decide, after the keys every
    /// architecture shares have been read into `cfg`.
    fn gguf_config(&self, keys: &GgufKeys<'_>, cfg: &mut ModelConfig) -> Result<()>;
    /// Sets what this architecture's `config.json` decides, after the shared fields.
    fn hf_config(&self, c: &Value, cfg: &mut ModelConfig) -> Result<()>;
    /// GGUF keys beyond the shared ones that a file of `cfg` needs (`ember quantize` of a folder).
    fn gguf_keys(&self, cfg: &ModelConfig) -> Result<Vec<(String, MetaValue)>> {
        let _ = cfg;
        Ok(Vec::new())
    }
    /// The Hugging Face name of a block tensor's role (`attn_q` → `self_attn.q_proj`).
    fn hf_role(&self, role: &str) -> Option<&'static str> {
        llama_hf_role(role)
    }
    /// A tensor as Hugging Face stores it, made what the GGUF convention holds (Gemma's norms
    /// store `w - 1`).
    fn convert_hf_tensor(&self, t: TensorView) -> Result<TensorView> {
        Ok(t)
    }
    /// Block tensors stored fused: (the fused role, the roles it holds, whose rows follow one
    /// another in that order). The loader slices them; `ember quantize` writes them fused.
    fn fused(&self) -> &'static [(&'static str, &'static [&'static str])] {
        &[]
    }
    /// Whether llama.cpp's converter reorders q/k rows for interleaved RoPE (so a GGUF written
    /// from a folder must too).
    fn permutes_qk(&self) -> bool {
        false
    }
}

/// Hugging Face names of the Llama block layout.
pub fn llama_hf_role(role: &str) -> Option<&'static str> {
    Some(match role {
        "attn_norm" => "input_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "attn_output" => "self_attn.o_proj",
        "ffn_norm" => "post_attention_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    })
}

/// Hugging Face's name for a canonical (GGUF-convention) tensor name under `arch`.
pub fn hf_name(arch: Arch, canonical: &str) -> Option<String> {
    let fixed = match canonical {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = canonical.strip_prefix("blk.")?;
    let (layer, role) = rest.split_once('.')?;
    let (role, kind) = role.rsplit_once('.')?;
    let hf = arch.def().hf_role(role)?;
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}
