//! `gemma3`: Gemma 3 (text). Gemma 2's layout (see `gemma2.rs`) with RMSNorms over each head of
//! q and k, no soft-capping of attention scores, five sliding-window layers to each global one,
//! and a RoPE base of its own (without frequency scaling) for the sliding layers.

use serde_json::Value;

use super::gemma2::{
    gemma_common, gemma_hf_role, gemma_norm_from_hf, gguf_attn_scale, gguf_sliding_layers,
    gguf_window_keys, hf_window_and_scale,
};
use super::{Architecture, GgufKeys};
use crate::error::{Error, Result};
use crate::format::ModelConfig;
use crate::format::config::hf_rope;
use crate::format::gguf::MetaValue;
use crate::format::tensor::TensorView;

/// The Gemma 3 architecture.
pub struct Gemma3;

/// Layers of the 27B model, whose attention scale llama.cpp sets by convention.
const LAYERS_27B: usize = 62;

impl Architecture for Gemma3 {
    fn gguf_name(&self) -> &'static str {
        "gemma3"
    }

    fn hf_model_types(&self) -> &'static [&'static str] {
        &["gemma3_text", "gemma3"]
    }

    fn gguf_config(&self, keys: &GgufKeys<'_>, cfg: &mut ModelConfig) -> Result<()> {
        gemma_common(cfg);
        cfg.qk_norm = true;
        // As llama.cpp: a window only when the file gives one.
        if let Some(w) = keys.size("attention.sliding_window")? {
            cfg.sliding_window = w;
            cfg.sliding_layers = gguf_sliding_layers(keys, cfg.layers, 6)?;
            cfg.rope_theta_local = Some(keys.float("rope.freq_base_swa").unwrap_or(10000.0));
        }
        cfg.final_softcap = keys.float("final_logit_softcapping").unwrap_or(0.0);
        cfg.attn_scale = gguf_attn_scale(cfg, LAYERS_27B);
        Ok(())
    }

    fn hf_config(&self, c: &Value, cfg: &mut ModelConfig) -> Result<()> {
        gemma_common(cfg);
        cfg.qk_norm = true;
        hf_window_and_scale(c, cfg, 6)?;
        if c["attn_logit_softcapping"].as_f64().is_some() {
            return Err(Error::Unsupported(
                "attention soft-capping in a Gemma 3 model".into(),
            ));
        }
        cfg.final_softcap = c["final_logit_softcapping"].as_f64().unwrap_or(0.0) as f32;
        // transformers 5 gives each kind of layer its RoPE; older configs a global one plus
        // rope_local_base_freq.
        let rope = &c["rope_parameters"];
        if rope["full_attention"].is_object() {
            (cfg.rope_theta, cfg.rope_scaling) = hf_rope(&rope["full_attention"], c)?;
            cfg.rope_theta_local = Some(hf_rope(&rope["sliding_attention"], c)?.0);
        } else {
            cfg.rope_theta_local =
                Some(c["rope_local_base_freq"].as_f64().unwrap_or(10000.0) as f32);
        }
        Ok(())
    }

    fn gguf_keys(&self, cfg: &ModelConfig) -> Result<Vec<(String, MetaValue)>> {
        let mut md = gguf_window_keys(cfg, 6, LAYERS_27B)?;
        md.push((
            "gemma3.rope.freq_base_swa".into(),
            MetaValue::F32(cfg.rope_theta_local.unwrap_or(cfg.rope_theta)),
        ));
        if cfg.final_softcap > 0.0 {
            md.push((
                "gemma3.final_logit_softcapping".into(),
                MetaValue::F32(cfg.final_softcap),
            ));
        }
        Ok(md)
    }

    fn hf_role(&self, role: &str) -> Option<&'static str> {
        gemma_hf_role(role)
    }

    fn convert_hf_tensor(&self, t: TensorView) -> Result<TensorView> {
        gemma_norm_from_hf(t)
    }
}
