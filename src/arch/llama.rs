//! `llama`: Llama 2/3/3.2, TinyLlama, SmolLM, and Mistral (`model_type` `mistral` in folders;
//! llama.cpp's converter writes Mistral as `llama`). The reference layout every other
//! architecture starts from.

use serde_json::Value;

use super::{Architecture, GgufKeys};
use crate::error::Result;
use crate::format::{ModelConfig, RopeLayout};

/// The Llama architecture.
pub struct Llama;

impl Architecture for Llama {
    fn gguf_name(&self) -> &'static str {
        "llama"
    }

    fn hf_model_types(&self) -> &'static [&'static str] {
        &["llama", "mistral"]
    }

    fn gguf_config(&self, _keys: &GgufKeys<'_>, cfg: &mut ModelConfig) -> Result<()> {
        // The converter permutes q/k rows so that RoPE pairs adjacent dimensions. llama.cpp
        // reads no sliding window for `llama` files (Mistral's converted files behave as there).
        cfg.rope_layout = RopeLayout::Interleaved;
        Ok(())
    }

    fn hf_config(&self, c: &Value, cfg: &mut ModelConfig) -> Result<()> {
        // Mistral's window applies to every layer (`null`: none).
        if c["model_type"] == "mistral"
            && let Some(w) = c["sliding_window"].as_u64()
        {
            cfg.sliding_window = super::plausible_size(w, "sliding_window")?;
            cfg.sliding_layers = vec![true; cfg.layers];
        }
        Ok(())
    }

    fn permutes_qk(&self) -> bool {
        true
    }
}
