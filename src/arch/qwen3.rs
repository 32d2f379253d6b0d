//! `qwen3`: no q/k/v biases; an RMSNorm over each head of q and k before RoPE; a head size of
//! its own (not width / heads).

use serde_json::Value;

use super::{Architecture, GgufKeys};
use crate::error::Result;
use crate::format::ModelConfig;

/// The Qwen3 architecture.
pub struct Qwen3;

impl Architecture for Qwen3 {
    fn gguf_name(&self) -> &'static str {
        "qwen3"
    }

    fn hf_model_types(&self) -> &'static [&'static str] {
        &["qwen3"]
    }

    fn gguf_config(&self, _keys: &GgufKeys<'_>, cfg: &mut ModelConfig) -> Result<()> {
        cfg.qk_norm = true;
        Ok(())
    }

    fn hf_config(&self, _c: &Value, cfg: &mut ModelConfig) -> Result<()> {
        cfg.qk_norm = true;
        cfg.qkv_bias = false;
        Ok(())
    }
}
