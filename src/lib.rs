//! Ember: an inference engine for small language models on edge devices.
//!
//! The data path: a model file ([`format`]) becomes a [`format::ModelFile`] — hyper-parameters,
//! weights still in their GGUF block encodings ([`quant`]), and a [`tokenizer`]. The forward pass
//! ([`model`]) is written once against the [`backend::Backend`] interface; a [`session::Session`]
//! keeps the KV cache and drives prefill, decode and [`sample`]-ing; [`server`] batches many
//! conversations on one model behind an OpenAI-compatible HTTP API, whose requests ([`openai`])
//! the browser engine takes too.

// Data from files and users must give errors, not panics: no `unwrap`/`expect` in the library.
// The few calls backed by an internal invariant carry `#[allow(..., reason = "...")]` naming it.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod arch;
pub mod error;
pub mod format;
pub mod imatrix;
pub mod quant;
pub mod tokenizer;

pub use error::{Error, Result};
pub use format::ModelFile;
pub mod backend;
pub mod model;
pub mod openai;
pub mod quantize;
pub mod resident;
pub mod sample;
pub mod session;

/// File name of the default model shipped in `assets/`.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Where the default model is: `$EMBER_MODEL` if set, else `assets/` of this source tree, else
/// `assets/` under the current directory.
pub fn default_model_path() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("EMBER_MODEL") {
        return p.into();
    }
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join(DEFAULT_MODEL_FILE);
    if built.is_file() {
        return built;
    }
    std::path::Path::new("assets").join(DEFAULT_MODEL_FILE)
}
pub mod bench;
#[cfg(not(target_arch = "wasm32"))]
pub mod delta;
pub mod eval;
#[cfg(not(target_arch = "wasm32"))]
pub mod server;
pub mod telemetry;
