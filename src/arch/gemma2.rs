//! `gemma2`: Gemma 2. Against Llama: embeddings scaled by √width; RMSNorm weights stored as
//! `w - 1` in Hugging Face folders (the converter adds the 1); norms after attention and after
//! the MLP too; a GELU (tanh) gated MLP; an attention scale of its own; soft-capped attention
//! scores and final logits; a sliding window on every other layer (the even ones).

use serde_json::Value;

use super::{Architecture, GgufKeys, plausible_size};
use crate::error::{Error, Result};
use crate::format::gguf::MetaValue;
use crate::format::tensor::TensorView;
use crate::format::{Activation, ModelConfig};

/// The Gemma 2 architecture.
pub struct Gemma2;

/// What Gemma 2 and 3 share: post-norms, GELU, the √width embedding scale.
pub fn gemma_common(cfg: &mut ModelConfig) {
    cfg.post_norms = true;
    cfg.activation = Activation::GeluTanh;
    cfg.embed_scale = (cfg.hidden as f32).sqrt();
    cfg.qkv_bias = false;
}

/// llama.cpp's attention scale for a Gemma GGUF file, which does not store one: 1/√(width /
/// heads) for the 27B models (`layers_27b` blocks), 1/√head_dim otherwise.
pub fn gguf_attn_scale(cfg: &ModelConfig, layers_27b: usize) -> f32 {
    let d = if cfg.layers == layers_27b {
        cfg.hidden / cfg.heads
    } else {
        cfg.head_dim
    };
    1.0 / (d as f32).sqrt()
}

/// Which layers slide: the GGUF `attention.sliding_window_pattern` (a period, or one flag per
/// layer) or else `period`: layer `i` slides unless `i % period == period - 1`.
pub fn gguf_sliding_layers(keys: &GgufKeys<'_>, layers: usize, period: usize) -> Result<Vec<bool>> {
    let key = keys.key("attention.sliding_window_pattern");
    match keys.get("attention.sliding_window_pattern") {
        Some(MetaValue::Array(_, flags)) => {
            let flags: Option<Vec<bool>> = flags.iter().map(MetaValue::as_bool).collect();
            match flags {
                Some(f) if f.len() >= layers => Ok(f[..layers].to_vec()),
                _ => Err(Error::format(format!(
                    "{key} must hold a flag for each of the {layers} layers"
                ))),
            }
        }
        Some(v) => {
            let p = v
                .as_u64()
                .ok_or_else(|| Error::format(format!("{key} is not a number")))?;
            Ok(pattern(layers, p as usize))
        }
        None => Ok(pattern(layers, period)),
    }
}

/// Layer `i` slides unless it is the last of each `period` (0: every layer slides).
fn pattern(layers: usize, period: usize) -> Vec<bool> {
    (0..layers)
        .map(|i| period == 0 || i % period < period - 1)
        .collect()
}

/// Which layers slide in a `config.json`: its `layer_types`, else one global layer in `period`.
pub fn hf_sliding_layers(c: &Value, layers: usize, period: usize) -> Result<Vec<bool>> {
    match c["layer_types"].as_array() {
        Some(types) if types.len() == layers => {
            Ok(types.iter().map(|t| t == "sliding_attention").collect())
        }
        Some(_) => Err(Error::format(format!(
            "config.json: layer_types must name the kind of each of the {layers} layers"
        ))),
        None => Ok(pattern(layers, period)),
    }
}

/// The window and the attention scale of a Gemma `config.json`.
pub fn hf_window_and_scale(c: &Value, cfg: &mut ModelConfig, period: usize) -> Result<()> {
    if let Some(w) = c["sliding_window"].as_u64() {
        cfg.sliding_window = plausible_size(w, "sliding_window")?;
        cfg.sliding_layers = hf_sliding_layers(c, cfg.layers, period)?;
    }
    if let Some(s) = c["query_pre_attn_scalar"].as_f64() {
        cfg.attn_scale = 1.0 / (s as f32).sqrt();
    }
    Ok(())
}

/// The GGUF keys a Gemma file needs for its window, after checking that llama.cpp's convention
/// (which the file cannot override) gives the folder's layer pattern and attention scale.
pub fn gguf_window_keys(
    cfg: &ModelConfig,
    period: usize,
    layers_27b: usize,
) -> Result<Vec<(String, MetaValue)>> {
    let a = cfg.arch.name();
    if cfg.sliding_window > 0 && cfg.sliding_layers != pattern(cfg.layers, period) {
        return Err(Error::Unsupported(format!(
            "a {a} GGUF file cannot say which layers slide other than one global layer in {period}"
        )));
    }
    if (cfg.attn_scale - gguf_attn_scale(cfg, layers_27b)).abs() > 1e-6 * cfg.attn_scale {
        return Err(Error::Unsupported(format!(
            "a {a} GGUF file cannot carry this model's attention scale (query_pre_attn_scalar)"
        )));
    }
    let window = if cfg.sliding_window > 0 {
        cfg.sliding_window
    } else {
        // No window: one as long as the context slides nowhere.
        cfg.context_length
    };
    Ok(vec![(
        format!("{a}.attention.sliding_window"),
        MetaValue::U32(window as u32),
    )])
}

/// Hugging Face names of the Gemma block layout.
pub fn gemma_hf_role(role: &str) -> Option<&'static str> {
    match role {
        "post_attention_norm" => Some("post_attention_layernorm"),
        "ffn_norm" => Some("pre_feedforward_layernorm"),
        "post_ffw_norm" => Some("post_feedforward_layernorm"),
        _ => super::llama_hf_role(role),
    }
}

/// Gemma's RMSNorm multiplies by `1 + w`; folders store `w`, GGUF files `1 + w`.
pub fn gemma_norm_from_hf(t: TensorView) -> Result<TensorView> {
    if !t.name.ends_with("norm.weight") {
        return Ok(t);
    }
    let values: Vec<f32> = t.to_f32().into_iter().map(|w| 1.0 + w).collect();
    TensorView::owned_f32(&t.name, t.shape.clone(), &values)
}

impl Architecture for Gemma2 {
    fn gguf_name(&self) -> &'static str {
        "gemma2"
    }

    fn hf_model_types(&self) -> &'static [&'static str] {
        &["gemma2"]
    }

    fn gguf_config(&self, keys: &GgufKeys<'_>, cfg: &mut ModelConfig) -> Result<()> {
        gemma_common(cfg);
        // llama.cpp's defaults for keys a file may lack.
        cfg.sliding_window = keys.size("attention.sliding_window")?.unwrap_or(4096);
        cfg.sliding_layers = gguf_sliding_layers(keys, cfg.layers, 2)?;
        cfg.attn_softcap = keys.float("attn_logit_softcapping").unwrap_or(50.0);
        cfg.final_softcap = keys.float("final_logit_softcapping").unwrap_or(30.0);
        cfg.attn_scale = gguf_attn_scale(cfg, 46);
        cfg.tied_output = true;
        Ok(())
    }

    fn hf_config(&self, c: &Value, cfg: &mut ModelConfig) -> Result<()> {
        gemma_common(cfg);
        hf_window_and_scale(c, cfg, 2)?;
        cfg.attn_softcap = c["attn_logit_softcapping"].as_f64().unwrap_or(0.0) as f32;
        cfg.final_softcap = c["final_logit_softcapping"].as_f64().unwrap_or(0.0) as f32;
        cfg.tied_output = true;
        Ok(())
    }

    fn gguf_keys(&self, cfg: &ModelConfig) -> Result<Vec<(String, MetaValue)>> {
        let mut md = gguf_window_keys(cfg, 2, 46)?;
        md.push((
            "gemma2.attn_logit_softcapping".into(),
            MetaValue::F32(cfg.attn_softcap),
        ));
        md.push((
            "gemma2.final_logit_softcapping".into(),
            MetaValue::F32(cfg.final_softcap),
        ));
        Ok(md)
    }

    fn hf_role(&self, role: &str) -> Option<&'static str> {
        gemma_hf_role(role)
    }

    fn convert_hf_tensor(&self, t: TensorView) -> Result<TensorView> {
        gemma_norm_from_hf(t)
    }
}
