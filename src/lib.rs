//! Ember: an inference engine for small language models on edge devices.
//!
//! The data path: a model file ([`format`]) becomes a [`format::ModelFile`] — hyper-parameters,
//! weights still in their GGUF block encodings ([`quant`]), and a [`tokenizer`]. The forward pass
//! ([`model`]) is written once against the [`backend::Backend`] interface; a [`session::Session`]
//! keeps the KV cache and drives prefill, decode and [`sample`]-ing.

pub mod error;
pub mod format;
pub mod quant;
pub mod tokenizer;

pub use error::{Error, Result};
pub use format::ModelFile;
pub mod backend;
pub mod model;
