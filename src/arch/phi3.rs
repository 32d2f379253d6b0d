//! `phi3`: Phi-3, Phi-3.5 and Phi-4-mini. The Llama layout with q/k/v in one fused matrix
//! (`attn_qkv`: q rows, then k, then v) and gate/up in another (`ffn_up`: gate rows first), RoPE
//! on the first `rope.dimension_count` dimensions of each head, and `longrope` frequency
//! factors: short ones within the original context, long ones beyond it, with an attention
//! factor on both.

use serde_json::Value;

use super::{Architecture, GgufKeys, plausible_size};
use crate::error::{Error, Result};
use crate::format::gguf::MetaValue;
use crate::format::{LongRope, ModelConfig};

/// The Phi-3 architecture.
pub struct Phi3;

/// Reads a rope-factor tensor of a GGUF file.
fn factors(keys: &GgufKeys<'_>, name: &str) -> Option<Vec<f32>> {
    keys.file.tensor(name).map(|t| t.to_f32())
}

/// The factors of a `config.json` list.
fn json_factors(rope: &Value, key: &str) -> Result<Vec<f32>> {
    rope[key]
        .as_array()
        .and_then(|a| a.iter().map(|v| v.as_f64().map(|f| f as f32)).collect())
        .ok_or_else(|| {
            Error::format(format!(
                "config.json: longrope {key} is not a list of numbers"
            ))
        })
}

impl Architecture for Phi3 {
    fn gguf_name(&self) -> &'static str {
        "phi3"
    }

    fn hf_model_types(&self) -> &'static [&'static str] {
        &["phi3"]
    }

    fn gguf_config(&self, keys: &GgufKeys<'_>, cfg: &mut ModelConfig) -> Result<()> {
        // llama.cpp disables Phi-3's sliding window (the file's key is ignored).
        if let (Some(short), Some(long)) = (
            factors(keys, "rope_factors_short.weight"),
            factors(keys, "rope_factors_long.weight"),
        ) {
            cfg.longrope = Some(LongRope {
                short,
                long,
                original_context: keys
                    .size("rope.scaling.original_context_length")?
                    .unwrap_or(cfg.context_length),
                attn_factor: keys.float("rope.scaling.attn_factor").unwrap_or(1.0),
            });
        }
        Ok(())
    }

    fn hf_config(&self, c: &Value, cfg: &mut ModelConfig) -> Result<()> {
        let rope = if c["rope_parameters"].is_object() {
            &c["rope_parameters"]
        } else {
            &c["rope_scaling"]
        };
        if matches!(
            rope["rope_type"].as_str().or(rope["type"].as_str()),
            Some("longrope" | "su")
        ) {
            let original = rope["original_max_position_embeddings"]
                .as_u64()
                .or_else(|| c["original_max_position_embeddings"].as_u64())
                .ok_or_else(|| {
                    Error::format("config.json: longrope needs original_max_position_embeddings")
                })?;
            let original = plausible_size(original, "original_max_position_embeddings")?;
            // transformers: the factor is the context's growth unless given; the attention
            // factor sqrt(1 + ln(factor) / ln(original)) unless given.
            let factor = rope["factor"]
                .as_f64()
                .unwrap_or(cfg.context_length as f64 / original as f64);
            let attn_factor = rope["attention_factor"]
                .as_f64()
                .unwrap_or(if factor <= 1.0 {
                    1.0
                } else {
                    (1.0 + factor.ln() / (original as f64).ln()).sqrt()
                });
            cfg.longrope = Some(LongRope {
                short: json_factors(rope, "short_factor")?,
                long: json_factors(rope, "long_factor")?,
                original_context: original,
                attn_factor: attn_factor as f32,
            });
        }
        // transformers masks every layer to the window when the config sets one.
        if let Some(w) = c["sliding_window"].as_u64() {
            cfg.sliding_window = plausible_size(w, "sliding_window")?;
            cfg.sliding_layers = vec![true; cfg.layers];
        }
        Ok(())
    }

    fn gguf_keys(&self, cfg: &ModelConfig) -> Result<Vec<(String, MetaValue)>> {
        let mut md = vec![];
        if let Some(lr) = &cfg.longrope {
            md.push((
                "phi3.rope.scaling.original_context_length".into(),
                MetaValue::U32(lr.original_context as u32),
            ));
            md.push((
                "phi3.rope.scaling.attn_factor".into(),
                MetaValue::F32(lr.attn_factor),
            ));
        }
        Ok(md)
    }

    fn hf_role(&self, role: &str) -> Option<&'static str> {
        match role {
            "attn_qkv" => Some("self_attn.qkv_proj"),
            "ffn_up" => Some("mlp.gate_up_proj"),
            "attn_q" | "attn_k" | "attn_v" | "ffn_gate" => None,
            _ => super::llama_hf_role(role),
        }
    }

    fn fused(&self) -> &'static [(&'static str, &'static [&'static str])] {
        &[
            ("attn_qkv", &["attn_q", "attn_k", "attn_v"]),
            ("ffn_up", &["ffn_gate", "ffn_up"]),
        ]
    }
}
