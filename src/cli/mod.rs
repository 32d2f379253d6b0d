//! The `ember` command line.

pub mod args;
pub mod bench;
pub mod chat;
pub mod compare;
pub mod delta;
pub mod devices;
pub mod encrypt;
pub mod imatrix;
pub mod info;
pub mod metrics_log;
pub mod perplexity;
pub mod quantize;
pub mod run;
pub mod serve;
#[cfg(unix)]
pub mod sigbus;
pub mod tokenize;
pub mod tune;

use clap::{Parser, Subcommand};

/// Ember: run small language models on the device — GGUF or Hugging Face, quantized, CPU or GPU.
#[derive(Parser, Debug)]
#[command(name = "ember", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate a continuation of a prompt (streams text, or --json).
    Run(run::RunArgs),
    /// Interactive multi-turn chat.
    Chat(chat::ChatArgs),
    /// Teacher-forced top logits at every prompt position, as JSON.
    Score(run::ScoreArgs),
    /// Prompt text to token ids, as JSON.
    Tokenize(tokenize::TokenizeArgs),
    /// Describe a model file.
    Info(info::InfoArgs),
    /// List the GPU adapters and their limits.
    Devices(devices::DevicesArgs),
    /// Perplexity of a model on a text (non-overlapping windows).
    Perplexity(perplexity::PerplexityArgs),
    /// Serve the model over an OpenAI-compatible HTTP API, batching concurrent requests.
    Serve(serve::ServeArgs),
    /// Measure a model's importance matrix over a calibration text (llama.cpp's imatrix GGUF),
    /// for quantizing with --imatrix.
    Imatrix(imatrix::ImatrixArgs),
    /// Re-encode a model (GGUF or Hugging Face folder) into a GGUF file of another type.
    Quantize(quantize::QuantizeArgs),
    /// Measure prompt processing and generation speed per model and backend.
    Bench(bench::BenchArgs),
    /// Time the GPU's decode kernel choices for a model and remember the fastest (used by later
    /// runs on the same adapter, driver and model shape).
    Tune(tune::TuneArgs),
    /// How far one model's predictions are from another's on a text: KL divergence, top-1
    /// agreement, perplexities (two files, or one file under two settings).
    Compare(compare::CompareArgs),
    /// Encrypt a model at rest (XChaCha20-Poly1305 in authenticated chunks); run it with
    /// --key-file or EMBER_KEY_FILE.
    Encrypt(encrypt::EncryptArgs),
    /// Write a patch turning one GGUF into another: changed tensors only, compressed (for
    /// updating devices over thin links).
    Diff(delta::DiffArgs),
    /// Apply a patch from `ember diff`: checks both files' SHA-256, writes atomically.
    Patch(delta::PatchArgs),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn dispatch(&self) -> anyhow::Result<()> {
        match &self.command {
            Command::Run(a) => run::run(a),
            Command::Chat(a) => chat::run(a),
            Command::Score(a) => run::score(a),
            Command::Tokenize(a) => tokenize::run(a),
            Command::Info(a) => info::run(a),
            Command::Devices(a) => devices::run(a),
            Command::Perplexity(a) => perplexity::run(a),
            Command::Quantize(a) => quantize::run(a),
            Command::Imatrix(a) => imatrix::run(a),
            Command::Bench(a) => bench::run(a),
            Command::Compare(a) => compare::run(a),
            Command::Tune(a) => tune::run(a),
            Command::Serve(a) => serve::run(a),
            Command::Encrypt(a) => encrypt::run(a),
            Command::Diff(a) => delta::diff(a),
            Command::Patch(a) => delta::patch(a),
        }
    }
}
