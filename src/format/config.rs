//! Architecture hyper-parameters, from GGUF metadata or a Hugging Face `config.json`, in one shape.
//! The keys every architecture shares are read here; each architecture's file in `src/arch/`
//! reads the rest.

use serde_json::Value;

pub use crate::arch::Arch;
use crate::arch::{GgufKeys, plausible_size};
use crate::error::{Error, Result};
use crate::format::gguf::GgufFile;

/// Which dimensions RoPE rotates together within a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeLayout {
    /// Pairs `(2i, 2i + 1)`. llama.cpp's converter permutes the q/k rows of `llama` models so
    /// that this layout is right for GGUF files of that architecture.
    Interleaved,
    /// Pairs `(i, i + d/2)` ("rotate_half"): Hugging Face weights and most GGUF architectures.
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

/// Phi-3's `longrope`: per-frequency divisors for contexts within the original one (short)
/// and beyond it (long), and a factor on the rotated q and k for both.
#[derive(Clone, Debug, PartialEq)]
pub struct LongRope {
    /// Divisors of the inverse frequencies within the original context.
    pub short: Vec<f32>,
    /// Divisors beyond it.
    pub long: Vec<f32>,
    /// The context the model was pre-trained with.
    pub original_context: usize,
    /// Multiplies the rotated q and k (so the scores by its square).
    pub attn_factor: f32,
}

impl LongRope {
    /// llama.cpp's choice for a context of `ctx` positions: the long factors when the context,
    /// rounded up to 256 as llama.cpp pads it, exceeds the original one.
    pub fn factors(&self, ctx: usize) -> &[f32] {
        if ctx.next_multiple_of(256) > self.original_context {
            &self.long
        } else {
            &self.short
        }
    }
}

/// The gated MLP's activation of the gate branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `x · sigmoid(x)` (Llama, Qwen, Phi).
    Silu,
    /// GELU, tanh approximation (Gemma).
    GeluTanh,
}

impl Activation {
    /// The function, in f32 as every backend computes it.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Silu => x / (1.0 + (-x).exp()),
            Activation::GeluTanh => {
                const C: f32 = 0.797_884_6; // sqrt(2 / pi)
                0.5 * x * (1.0 + (C * (x + 0.044715 * x * x * x)).tanh())
            }
        }
    }
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
    /// Dimensions of each head that RoPE rotates (the first ones): `head_dim`, or fewer with a
    /// partial rotary factor (Phi-4-mini, Phi-3 configs that set one).
    pub rope_dims: usize,
    /// Phi-3's longrope factors.
    pub longrope: Option<LongRope>,
    /// RoPE base of the sliding-window layers when it differs (Gemma 3's local layers, which
    /// have no frequency rescaling either).
    pub rope_theta_local: Option<f32>,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Trained context length.
    pub context_length: usize,
    /// Whether logits come from the token embedding (no separate output matrix).
    pub tied_output: bool,
    /// Whether q/k/v projections carry biases.
    pub qkv_bias: bool,
    /// Whether q and k go through an RMSNorm per head before RoPE (Qwen3, Gemma 3).
    pub qk_norm: bool,
    /// Whether each block's attention and MLP outputs go through an RMSNorm of their own before
    /// the residual add (Gemma 2/3).
    pub post_norms: bool,
    /// The gated MLP's activation.
    pub activation: Activation,
    /// Multiplies the embedding rows (Gemma: √hidden; 1 elsewhere).
    pub embed_scale: f32,
    /// Multiplies q·k before the softmax (1/√head_dim unless the model says otherwise).
    pub attn_scale: f32,
    /// Soft cap of attention scores, `s ← c·tanh(s/c)` (0: none; Gemma 2).
    pub attn_softcap: f32,
    /// Soft cap of the final logits (0: none; Gemma 2).
    pub final_softcap: f32,
    /// Sliding-window attention: positions a token attends to, itself included (0: all).
    pub sliding_window: usize,
    /// Which layers use the window (one entry per layer).
    pub sliding_layers: Vec<bool>,
}

fn missing(key: &str) -> Error {
    Error::format(format!(
        "metadata key {key} is missing or has the wrong type"
    ))
}

impl ModelConfig {
    /// The shared defaults for an architecture of these sizes: Llama's choices everywhere.
    #[allow(clippy::too_many_arguments)]
    fn base(
        arch: Arch,
        vocab_size: usize,
        hidden: usize,
        layers: usize,
        heads: usize,
        kv_heads: usize,
        head_dim: usize,
        ffn: usize,
    ) -> ModelConfig {
        ModelConfig {
            arch,
            vocab_size,
            hidden,
            layers,
            heads,
            kv_heads,
            head_dim,
            ffn,
            rope_theta: 10000.0,
            rope_scaling: RopeScaling::None,
            rope_layout: RopeLayout::Halves,
            rope_dims: head_dim,
            longrope: None,
            rope_theta_local: None,
            rms_eps: 1e-6,
            context_length: 4096,
            tied_output: false,
            qkv_bias: false,
            qk_norm: false,
            post_norms: false,
            activation: Activation::Silu,
            embed_scale: 1.0,
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
            attn_softcap: 0.0,
            final_softcap: 0.0,
            sliding_window: 0,
            sliding_layers: vec![false; layers],
        }
    }

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
        if !(self.rms_eps > 0.0 && self.rope_theta > 0.0 && self.attn_scale > 0.0) {
            return Err(Error::format(
                "RMS epsilon, rope theta and the attention scale must be positive",
            ));
        }
        if !(self.attn_softcap >= 0.0 && self.final_softcap >= 0.0 && self.embed_scale > 0.0) {
            return Err(Error::format(
                "soft caps must not be negative and the embedding scale must be positive",
            ));
        }
        if !self.rope_dims.is_multiple_of(2) || self.rope_dims > self.head_dim {
            return Err(Error::format(format!(
                "RoPE over {} dimensions of a head of {}: it needs an even count up to the head size",
                self.rope_dims, self.head_dim
            )));
        }
        if let Some(lr) = &self.longrope
            && (lr.short.len() != self.rope_dims / 2 || lr.long.len() != self.rope_dims / 2)
        {
            return Err(Error::format(format!(
                "longrope factors of {} and {} values for {} rotated pairs",
                lr.short.len(),
                lr.long.len(),
                self.rope_dims / 2
            )));
        }
        if self.sliding_layers.len() != self.layers {
            return Err(Error::format(format!(
                "{} sliding-window flags for {} layers",
                self.sliding_layers.len(),
                self.layers
            )));
        }
        Ok(self)
    }

    /// The window of layer `layer` (0: it attends to every earlier position).
    pub fn layer_window(&self, layer: usize) -> usize {
        if self.sliding_layers.get(layer) == Some(&true) {
            self.sliding_window
        } else {
            0
        }
    }

    /// Reads the `{arch}.*` keys of a GGUF file.
    pub fn from_gguf(g: &GgufFile, vocab_size: usize, tied_output: bool) -> Result<ModelConfig> {
        let arch_name = g
            .get("general.architecture")
            .and_then(|v| v.as_str())
            .ok_or_else(|| missing("general.architecture"))?;
        let arch = Arch::from_name(arch_name)?;
        let keys = GgufKeys {
            file: g,
            arch: arch_name,
        };
        let uint = |k: &str| keys.size(k)?.ok_or_else(|| missing(&keys.key(k)));
        let hidden = uint("embedding_length")?;
        let heads = uint("attention.head_count")?;
        let head_dim = keys.size("attention.key_length")?.unwrap_or(hidden / heads);
        let mut cfg = ModelConfig::base(
            arch,
            vocab_size,
            hidden,
            uint("block_count")?,
            heads,
            keys.size("attention.head_count_kv")?.unwrap_or(heads),
            head_dim,
            uint("feed_forward_length")?,
        );
        cfg.rope_scaling = match keys.get("rope.scaling.type").and_then(|v| v.as_str()) {
            None | Some("none") => RopeScaling::None,
            Some("linear") => RopeScaling::Linear {
                factor: keys.float("rope.scaling.factor").unwrap_or(1.0),
            },
            Some(other) => return Err(Error::Unsupported(format!("rope scaling {other:?}"))),
        };
        cfg.rope_theta = keys.float("rope.freq_base").unwrap_or(10000.0);
        cfg.rope_dims = keys.size("rope.dimension_count")?.unwrap_or(head_dim);
        cfg.rms_eps = keys
            .float("attention.layer_norm_rms_epsilon")
            .ok_or_else(|| missing(&keys.key("attention.layer_norm_rms_epsilon")))?;
        cfg.context_length = uint("context_length")?;
        cfg.tied_output = tied_output;
        arch.def().gguf_config(&keys, &mut cfg)?;
        cfg.validated()
    }

    /// Reads a Hugging Face `config.json` (both the top-level `rope_theta` of older configs and the
    /// `rope_parameters` object of transformers 5).
    pub fn from_hf(c: &Value) -> Result<ModelConfig> {
        let arch_name = c["model_type"]
            .as_str()
            .ok_or_else(|| Error::format("config.json has no model_type"))?;
        let arch = Arch::from_name(arch_name)?;
        let uint = |k: &str| -> Result<usize> {
            plausible_size(
                c[k].as_u64().ok_or_else(|| {
                    Error::format(format!("config.json: {k} is missing or not an integer"))
                })?,
                k,
            )
        };
        let hidden = uint("hidden_size")?;
        let heads = uint("num_attention_heads")?;
        let head_dim = match c["head_dim"].as_u64() {
            Some(d) => plausible_size(d, "head_dim")?,
            None => hidden / heads,
        };
        let kv_heads = c["num_key_value_heads"]
            .as_u64()
            .map(|v| plausible_size(v, "num_key_value_heads"))
            .transpose()?
            .unwrap_or(heads);
        let mut cfg = ModelConfig::base(
            arch,
            uint("vocab_size")?,
            hidden,
            uint("num_hidden_layers")?,
            heads,
            kv_heads,
            head_dim,
            uint("intermediate_size")?,
        );
        let (theta, scaling) = hf_rope(c, c)?;
        cfg.rope_theta = theta;
        cfg.rope_scaling = scaling;
        let partial = c["rope_parameters"]["partial_rotary_factor"]
            .as_f64()
            .or_else(|| c["partial_rotary_factor"].as_f64())
            .unwrap_or(1.0);
        cfg.rope_dims = (head_dim as f64 * partial) as usize;
        cfg.rms_eps = c["rms_norm_eps"].as_f64().unwrap_or(1e-6) as f32;
        cfg.context_length = uint("max_position_embeddings")?;
        cfg.tied_output = c["tie_word_embeddings"].as_bool().unwrap_or(false);
        cfg.qkv_bias = c["attention_bias"].as_bool() == Some(true);
        arch.def().hf_config(c, &mut cfg)?;
        cfg.validated()
    }

    /// Inverse rotary frequency of each pair (`head_dim / 2` values) of the layers without a
    /// window (all layers unless [`ModelConfig::rope_theta_local`]), scaling applied.
    pub fn rope_inv_freqs(&self) -> Vec<f32> {
        inv_freqs(self.rope_dims, self.rope_theta, self.rope_scaling)
    }

    /// Llama 3's rescaling as per-frequency divisors (what llama.cpp's converter stores as
    /// `rope_freqs.weight`): 1 for the high frequencies, the factor for the low ones, blended
    /// between. `None` without Llama 3 scaling.
    pub fn llama3_rope_factors(&self) -> Option<Vec<f32>> {
        let RopeScaling::Llama3 { .. } = self.rope_scaling else {
            return None;
        };
        let plain = inv_freqs(self.rope_dims, self.rope_theta, RopeScaling::None);
        let scaled = self.rope_inv_freqs();
        Some(plain.iter().zip(&scaled).map(|(p, s)| p / s).collect())
    }

    /// Inverse rotary frequencies of the sliding-window layers, when they differ from
    /// [`ModelConfig::rope_inv_freqs`].
    pub fn rope_inv_freqs_local(&self) -> Option<Vec<f32>> {
        self.rope_theta_local
            .map(|theta| inv_freqs(self.rope_dims, theta, RopeScaling::None))
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

/// RoPE base and scaling from the rope object of `config.json` (`rope_parameters` in
/// transformers 5, else `rope_scaling` with `rope_theta` at the top level of `top`).
pub fn hf_rope(rope_or_config: &Value, top: &Value) -> Result<(f32, RopeScaling)> {
    let c = rope_or_config;
    let rope = if c["rope_parameters"].is_object() {
        &c["rope_parameters"]
    } else if c["rope_scaling"].is_object() {
        &c["rope_scaling"]
    } else {
        c
    };
    let theta = rope["rope_theta"]
        .as_f64()
        .or_else(|| top["rope_theta"].as_f64())
        .unwrap_or(10000.0) as f32;
    let f = |k: &str, default: f64| rope[k].as_f64().unwrap_or(default) as f32;
    let rope_type = rope["rope_type"]
        .as_str()
        .or_else(|| rope["type"].as_str())
        .unwrap_or("default");
    let scaling = match rope_type {
        // Phi-3's per-frequency factors: read by its architecture (ModelConfig::longrope).
        "default" | "longrope" | "su" => RopeScaling::None,
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
    Ok((theta, scaling))
}

/// Inverse rotary frequencies of `dims` rotated dimensions with base `theta`, `scaling` applied.
fn inv_freqs(dims: usize, theta: f32, scaling: RopeScaling) -> Vec<f32> {
    let d = dims as f64;
    (0..dims / 2)
        .map(|i| {
            let f = 1.0 / (theta as f64).powf(2.0 * i as f64 / d);
            let f = match scaling {
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
        assert!(
            ModelConfig::from_hf(&hf(
                json!({"model_type": "qwen2", "use_sliding_window": true})
            ))
            .is_err()
        );
    }
}
