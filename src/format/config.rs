//! Architecture hyper-parameters, from GGUF metadata or a Hugging Face `config.json`, in one shape.

use serde_json::Value;

use super::gguf::GgufFile;
use crate::error::{Error, Result};

/// Model families Ember runs. Their differences are data in [`ModelConfig`], not code paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Llama 2/3, TinyLlama, SmolLM, Mistral (no sliding window).
    Llama,
    /// Qwen2: biases on q/k/v, usually an untied output head.
    Qwen2,
    /// Qwen3: no biases; an RMSNorm over each head of q and k before RoPE; head size
    /// independent of the width.
    Qwen3,
}

impl Arch {
    /// Parses GGUF's `general.architecture` / HF's `model_type`.
    pub fn from_name(name: &str) -> Result<Arch> {
        match name {
            "llama" | "mistral" => Ok(Arch::Llama),
            "qwen2" => Ok(Arch::Qwen2),
            "qwen3" => Ok(Arch::Qwen3),
            other => Err(Error::Unsupported(format!(
                "architecture {other:?} (supported: llama, mistral, qwen2, qwen3)"
            ))),
        }
    }

    /// GGUF's name for the architecture.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
        }
    }

    /// Whether q and k go through a per-head RMSNorm before RoPE.
    pub fn qk_norm(self) -> bool {
        self == Arch::Qwen3
    }
}

/// Which dimensions RoPE rotates together within a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeLayout {
    /// Pairs `(2i, 2i + 1)`. llama.cpp's converter permutes the q/k rows of `llama` models so
    /// that this layout is right for GGUF files of that architecture.
    Interleaved,
    /// Pairs `(i, i + d/2)` ("rotate_half"): Hugging Face weights and GGUF `qwen2`.
    Halves,
}

/// How rotary frequencies are rescaled for long contexts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Positions divided by `factor`.
    Linear {
        /// The divisor.
        factor: f32,
    },
    /// Llama 3's frequency-dependent rescaling.
    Llama3 {
        /// Scale applied to low frequencies.
        factor: f32,
        /// Wavelength boundary (as a fraction of the original context) for low frequencies.
        low_freq_factor: f32,
        /// Wavelength boundary for high frequencies.
        high_freq_factor: f32,
        /// The context length the model was trained with.
        original_context: f32,
    },
}

/// Everything the forward pass needs to know about the network's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Model family.
    pub arch: Arch,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (GQA when fewer than `heads`).
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Feed-forward inner width.
    pub ffn: usize,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// RoPE frequency rescaling.
    pub rope_scaling: RopeScaling,
    /// Which dimensions RoPE pairs.
    pub rope_layout: RopeLayout,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Trained context length.
    pub context_length: usize,
    /// Whether logits come from the token embedding (no separate output matrix).
    pub tied_output: bool,
    /// Whether q/k/v projections carry biases.
    pub qkv_bias: bool,
    /// Sliding-window attention: positions a token attends to, itself included (0: all).
    pub sliding_window: usize,
}

fn missing(key: &str) -> Error {
    Error::format(format!(
        "metadata key {key} is missing or has the wrong type"
    ))
}

/// A positive size that a real model could have (guards later allocations against nonsense).
fn size(v: u64, key: &str) -> Result<usize> {
    if v == 0 || v > 1 << 24 {
        return Err(Error::format(format!(
            "{key} = {v} is not a plausible size"
        )));
    }
    Ok(v as usize)
}

impl ModelConfig {
    /// Checks relations between the sizes that the forward pass relies on.
    fn validated(self) -> Result<ModelConfig> {
        if !self.heads.is_multiple_of(self.kv_heads) {
            return Err(Error::format(format!(
                "{} attention heads is not a multiple of {} key/value heads",
                self.heads, self.kv_heads
            )));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(Error::format(format!(
                "head size {} is odd; RoPE needs pairs",
                self.head_dim
            )));
        }
        if !(self.rms_eps > 0.0 && self.rope_theta > 0.0) {
            return Err(Error::format("RMS epsilon and rope theta must be positive"));
        }
        Ok(self)
    }

    /// Reads the `{arch}.*` keys of a GGUF file.
    pub fn from_gguf(g: &GgufFile, vocab_size: usize, tied_output: bool) -> Result<ModelConfig> {
        let arch_name = g
            .get("general.architecture")
            .and_then(|v| v.as_str())
            .ok_or_else(|| missing("general.architecture"))?;
        let arch = Arch::from_name(arch_name)?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let uint = |k: &str| -> Result<usize> {
            let full = key(k);
            size(
                g.get(&full)
                    .and_then(|v| v.as_u64())
                    .ok_or_else(|| missing(&full))?,
                &full,
            )
        };
        let opt_uint = |k: &str| -> Result<Option<usize>> {
            let full = key(k);
            g.get(&full)
                .and_then(|v| v.as_u64())
                .map(|v| size(v, &full))
                .transpose()
        };
        let float = |k: &str| g.get(&key(k)).and_then(|v| v.as_f64()).map(|v| v as f32);

        let hidden = uint("embedding_length")?;
        let heads = uint("attention.head_count")?;
        let head_dim = match opt_uint("attention.key_length")? {
            Some(d) => d,
            None => hidden / heads,
        };
        let rope_scaling = match g.get(&key("rope.scaling.type")).and_then(|v| v.as_str()) {
            None | Some("none") => RopeScaling::None,
            Some("linear") => RopeScaling::Linear {
                factor: float("rope.scaling.factor").unwrap_or(1.0),
            },
            Some(other) => return Err(Error::Unsupported(format!("rope scaling {other:?}"))),
        };
        ModelConfig {
            arch,
            vocab_size,
            hidden,
            layers: uint("block_count")?,
            heads,
            kv_heads: opt_uint("attention.head_count_kv")?.unwrap_or(heads),
            head_dim,
            ffn: uint("feed_forward_length")?,
            rope_theta: float("rope.freq_base").unwrap_or(10000.0),
            rope_scaling,
            rope_layout: match arch {
                Arch::Llama => RopeLayout::Interleaved,
                Arch::Qwen2 | Arch::Qwen3 => RopeLayout::Halves,
            },
            rms_eps: float("attention.layer_norm_rms_epsilon")
                .ok_or_else(|| missing(&key("attention.layer_norm_rms_epsilon")))?,
            context_length: uint("context_length")?,
            tied_output,
            qkv_bias: arch == Arch::Qwen2,
            // llama.cpp reads no window for these architectures (its converter writes Mistral
            // as `llama` without one): files behave as there.
            sliding_window: 0,
        }
        .validated()
    }

    /// Reads a Hugging Face `config.json` (both the top-level `rope_theta` of older configs and the
    /// `rope_parameters` object of transformers 5).
    pub fn from_hf(c: &Value) -> Result<ModelConfig> {
        let arch_name = c["model_type"]
            .as_str()
            .ok_or_else(|| Error::format("config.json has no model_type"))?;
        let arch = Arch::from_name(arch_name)?;
        let uint = |k: &str| -> Result<usize> {
            size(
                c[k].as_u64().ok_or_else(|| {
                    Error::format(format!("config.json: {k} is missing or not an integer"))
                })?,
                k,
            )
        };
        let hidden = uint("hidden_size")?;
        let heads = uint("num_attention_heads")?;
        let head_dim = match c["head_dim"].as_u64() {
            Some(d) => size(d, "head_dim")?,
            None => hidden / heads,
        };
        // transformers 5 nests rope settings in `rope_parameters`; older files use `rope_theta`
        // and `rope_scaling` at the top level.
        let rope = if c["rope_parameters"].is_object() {
            &c["rope_parameters"]
        } else {
            &c["rope_scaling"]
        };
        let theta = rope["rope_theta"]
            .as_f64()
            .or_else(|| c["rope_theta"].as_f64())
            .unwrap_or(10000.0) as f32;
        let f = |k: &str, default: f64| rope[k].as_f64().unwrap_or(default) as f32;
        let rope_type = rope["rope_type"]
            .as_str()
            .or_else(|| rope["type"].as_str())
            .unwrap_or("default");
        let rope_scaling = match rope_type {
            "default" => RopeScaling::None,
            "linear" => RopeScaling::Linear {
                factor: f("factor", 1.0),
            },
            "llama3" => RopeScaling::Llama3 {
                factor: f("factor", 8.0),
                low_freq_factor: f("low_freq_factor", 1.0),
                high_freq_factor: f("high_freq_factor", 4.0),
                original_context: f("original_max_position_embeddings", 8192.0),
            },
            other => return Err(Error::Unsupported(format!("rope scaling {other:?}"))),
        };
        if c["use_sliding_window"].as_bool() == Some(true) {
            return Err(Error::Unsupported(
                "Qwen2's sliding-window attention (use_sliding_window)".into(),
            ));
        }
        // Mistral's window applies to every layer (`null`: none).
        let sliding_window = match (arch_name, &c["sliding_window"]) {
            ("mistral", Value::Number(n)) => size(n.as_u64().unwrap_or(0), "sliding_window")?,
            _ => 0,
        };
        ModelConfig {
            arch,
            vocab_size: uint("vocab_size")?,
            hidden,
            layers: uint("num_hidden_layers")?,
            heads,
            kv_heads: c["num_key_value_heads"]
                .as_u64()
                .map(|v| size(v, "num_key_value_heads"))
                .transpose()?
                .unwrap_or(heads),
            head_dim,
            ffn: uint("intermediate_size")?,
            rope_theta: theta,
            rope_scaling,
            rope_layout: RopeLayout::Halves,
            rms_eps: c["rms_norm_eps"].as_f64().unwrap_or(1e-6) as f32,
            context_length: uint("max_position_embeddings")?,
            tied_output: c["tie_word_embeddings"].as_bool().unwrap_or(false),
            qkv_bias: arch == Arch::Qwen2 || c["attention_bias"].as_bool() == Some(true),
            sliding_window,
        }
        .validated()
    }

    /// Inverse rotary frequency of each pair (`head_dim / 2` values), scaling applied.
    pub fn rope_inv_freqs(&self) -> Vec<f32> {
        let d = self.head_dim as f64;
        (0..self.head_dim / 2)
            .map(|i| {
                let f = 1.0 / (self.rope_theta as f64).powf(2.0 * i as f64 / d);
                let f = match self.rope_scaling {
                    RopeScaling::None => f,
                    RopeScaling::Linear { factor } => f / factor as f64,
                    RopeScaling::Llama3 {
                        factor,
                        low_freq_factor,
                        high_freq_factor,
                        original_context,
                    } => {
                        let (factor, lo, hi, ctx) = (
                            factor as f64,
                            low_freq_factor as f64,
                            high_freq_factor as f64,
                            original_context as f64,
                        );
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < ctx / hi {
                            f
                        } else if wavelen > ctx / lo {
                            f / factor
                        } else {
                            let smooth = (ctx / wavelen - lo) / (hi - lo);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    }
                };
                f as f32
            })
            .collect()
    }

    /// Width of the key/value projections.
    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    /// Width of the query projection.
    pub fn q_dim(&self) -> usize {
        self.heads * self.head_dim
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hf(extra: Value) -> Value {
        let mut c = json!({
            "model_type": "llama", "hidden_size": 64, "intermediate_size": 192, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
            "vocab_size": 100, "rms_norm_eps": 1e-5, "tie_word_embeddings": true
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    #[test]
    fn rope_theta_at_top_level_or_in_rope_parameters() {
        let old = ModelConfig::from_hf(&hf(json!({"rope_theta": 5e5}))).unwrap();
        let new = ModelConfig::from_hf(&hf(
            json!({"rope_parameters": {"rope_theta": 5e5, "rope_type": "default"}}),
        ))
        .unwrap();
        assert_eq!(old, new);
        assert_eq!(old.rope_theta, 5e5);
        assert_eq!(old.rope_layout, RopeLayout::Halves);
        assert_eq!(old.head_dim, 16);
    }

    #[test]
    fn llama3_rope_scaling_is_read_and_applied() {
        let c = ModelConfig::from_hf(&hf(json!({"rope_theta": 5e5, "rope_scaling": {
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}})))
        .unwrap();
        let plain = ModelConfig {
            rope_scaling: RopeScaling::None,
            ..c.clone()
        };
        let (scaled, base) = (c.rope_inv_freqs(), plain.rope_inv_freqs());
        // Highest frequency untouched, lowest divided by the factor.
        assert_eq!(scaled[0], base[0]);
        assert!((scaled[7] * 8.0 - base[7]).abs() < 1e-12);
    }

    #[test]
    fn bad_configs_are_refused() {
        assert!(
            ModelConfig::from_hf(&hf(json!({"model_type": "rwkv"})))
                .unwrap_err()
                .to_string()
                .contains("rwkv")
        );
        assert!(ModelConfig::from_hf(&hf(json!({"num_key_value_heads": 3}))).is_err());
        assert!(ModelConfig::from_hf(&hf(json!({"hidden_size": -4}))).is_err());
        assert!(ModelConfig::from_hf(&hf(json!({"use_sliding_window": true}))).is_err());
    }
}
