//! `qwen2`: Qwen2 and Qwen2.5 — the Llama layout with biases on q, k and v.

use serde_json::Value;

use super::{Architecture, GgufKeys};
use crate::error::{Error, Result};
use crate::format::ModelConfig;

/// The Qwen2 architecture.
pub struct Qwen2;

impl Architecture for Qwen2 {
    fn gguf_name(&self) -> &'static str {
        "qwen2"
    }

    fn hf_model_types(&self) -> &'static [&'static str] {
        &["qwen2"]
    }

    fn gguf_config(&self, _keys: &GgufKeys<'_>, cfg: &mut ModelConfig) -> Result<()> {
        cfg.qkv_bias = true;
        Ok(())
    }

    fn hf_config(&self, c: &Value, cfg: &mut ModelConfig) -> Result<()> {
        if c["use_sliding_window"].as_bool() == Some(true) {
            return Err(Error::Unsupported(
                "Qwen2's sliding-window attention (use_sliding_window)".into(),
            ));
        }
        cfg.qkv_bias = true;
        Ok(())
    }
}
