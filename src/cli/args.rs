//! Argument groups shared by several subcommands.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use ember::ModelFile;
use ember::backend::cpu::{CpuBackend, Precision};
use ember::backend::gpu::fault::FAULT_VAR;
use ember::backend::gpu::{GpuBackend, GpuChoice, context::has_hardware_adapter};
use ember::model::{LanguageModel, Model};
use ember::sample::SamplerConfig;
use ember::tokenizer::ChatMessage;

/// Which compute backend runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// The best hardware GPU, else the CPU (with a notice).
    Auto,
    /// The best GPU adapter of any API, software adapters included.
    Gpu,
    /// A Vulkan adapter.
    Vulkan,
    /// A Metal adapter.
    Metal,
    /// A DirectX 12 adapter.
    Dx12,
    /// An OpenGL / GLES adapter.
    Gl,
    /// The CPU.
    Cpu,
}

impl BackendChoice {
    /// The GPU this choice names, if it names one.
    pub fn gpu(self) -> Option<GpuChoice> {
        Some(match self {
            BackendChoice::Gpu => GpuChoice::Any,
            BackendChoice::Vulkan => GpuChoice::Vulkan,
            BackendChoice::Metal => GpuChoice::Metal,
            BackendChoice::Dx12 => GpuChoice::Dx12,
            BackendChoice::Gl => GpuChoice::Gl,
            BackendChoice::Auto | BackendChoice::Cpu => return None,
        })
    }
}

/// `-m MODEL`.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model: a GGUF file or a Hugging Face folder (default: the model in assets/).
    #[arg(short = 'm', long = "model")]
    pub model: Option<PathBuf>,
    /// The key of an encrypted model (`ember encrypt`); EMBER_KEY_FILE also names it.
    #[arg(long = "key-file")]
    pub key_file: Option<PathBuf>,
}

impl ModelArgs {
    /// Opens the model file (decrypting it in memory with --key-file, if given).
    pub fn open(&self) -> Result<ModelFile> {
        let path = self.model.clone().unwrap_or_else(ember::default_model_path);
        let mut file = match &self.key_file {
            Some(key) if ember::format::encrypted::is_encrypted(&path) => {
                let key = ember::format::encrypted::Key::from_file(key)?;
                ModelFile::open_encrypted(&path, &key)?
            }
            Some(_) => bail!(
                "--key-file is for encrypted models; {} is not encrypted",
                path.display()
            ),
            None => ModelFile::open(&path)?,
        };
        file.release_tokenizer_source();
        Ok(file)
    }
}

/// Options for running a model.
#[derive(Args, Debug, Clone)]
pub struct RuntimeArgs {
    /// Compute backend.
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: BackendChoice,
    /// CPU threads (0: one per core).
    #[arg(short = 't', long, default_value_t = 0)]
    pub threads: usize,
    /// Context length in tokens (0: the model's own).
    #[arg(short = 'c', long = "ctx-size", default_value_t = 0)]
    pub ctx: usize,
    /// GPU: the KV cache's element type. f16 (where the adapter has shader-f16, else f32) halves
    /// its memory and bandwidth, moving logits by up to ~2e-2; f32 keeps attention exact.
    #[arg(long = "cache-type", value_enum, default_value = "f16")]
    pub cache_type: CacheType,
    /// CPU: how activations meet quantized weights in matrix products.
    #[arg(long, value_enum, default_value = "i16")]
    pub precision: PrecisionChoice,
    /// Keep the whole context in the KV cache of sliding-window layers too (as llama.cpp's
    /// --swa-full): more memory, but a conversation can go back to any earlier point without
    /// evaluating it again. By default those layers keep only their window.
    #[arg(long = "swa-full")]
    pub swa_full: bool,
}

/// `--cache-type` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CacheType {
    /// Half precision where the adapter supports it (the default).
    F16,
    /// Full precision.
    F32,
}

/// `--precision` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PrecisionChoice {
    /// Two-byte (~15-bit) activations, integer dot products: near-f32 results (the default).
    I16,
    /// One-byte activations, integer dot products (llama.cpp's numerics): the fastest.
    I8,
    /// f32 activations against exactly decoded weights: the reference, slower.
    F32,
}

impl PrecisionChoice {
    /// The CPU backend's setting.
    pub fn cpu(self) -> Precision {
        match self {
            PrecisionChoice::I16 => Precision::I16,
            PrecisionChoice::I8 => Precision::I8,
            PrecisionChoice::F32 => Precision::F32,
        }
    }
}

impl RuntimeArgs {
    /// A GPU backend on `choice` with the chosen cache type and default kernels.
    pub fn gpu_backend(&self, choice: GpuChoice) -> Result<GpuBackend> {
        Ok(GpuBackend::new_with_kv_f16(
            choice,
            self.cache_type == CacheType::F16,
        )?)
    }

    /// Uploads `file` to the chosen backend.
    pub fn load(&self, file: &ModelFile) -> Result<Box<dyn LanguageModel>> {
        self.load_slots(file, 1)
    }

    /// Uploads `file` to the chosen backend with `slots` KV caches of `--ctx-size` positions
    /// each (sequences decoded together, as `ember serve` does).
    pub fn load_slots(&self, file: &ModelFile, slots: usize) -> Result<Box<dyn LanguageModel>> {
        let trained = file.config.context_length;
        if self.ctx > trained {
            bail!(
                "context {} exceeds the model's trained context of {trained} tokens",
                self.ctx
            );
        }
        let cpu = || -> Result<Box<dyn LanguageModel>> {
            Ok(Box::new(Model::with_caches(
                file,
                CpuBackend::with_precision(self.threads, self.precision.cpu())?,
                self.ctx,
                slots,
                !self.swa_full,
            )?))
        };
        let gpu = |choice| -> Result<Box<dyn LanguageModel>> {
            let mut gpu = self.gpu_backend(choice)?;
            // The kernels `ember tune` measured fastest on this adapter for this model.
            if let Err(e) = gpu.apply_default_tune_cache(file) {
                eprintln!("notice: {e}; using the default kernels");
            }
            Ok(Box::new(Model::with_caches(
                file,
                gpu,
                self.ctx,
                slots,
                !self.swa_full,
            )?))
        };
        let model = match (self.backend, self.backend.gpu()) {
            (_, Some(choice)) => gpu(choice),
            // A fault injected for a test stands for a hardware GPU that fails: the software
            // adapters of a machine without one then take its place.
            (BackendChoice::Auto, _) if has_hardware_adapter() || fault_injected() => {
                gpu(GpuChoice::Any).and_then(warmed_up).or_else(|e| {
                    eprintln!("notice: the GPU failed ({e}); using the CPU");
                    cpu()
                })
            }
            (BackendChoice::Auto, _) => {
                eprintln!(
                    "notice: no hardware GPU adapter found (software ones are used only with --backend gpu/vulkan/gl); using the CPU"
                );
                cpu()
            }
            _ => cpu(),
        }?;
        if self.ctx == 0 && model.context_len() < trained {
            eprintln!(
                "notice: the KV cache of the model's full context ({trained} tokens) does not fit in memory; using {} (set --ctx-size to choose)",
                model.context_len()
            );
        }
        // Only where no GPU driver was ever loaded: driver threads may map and unmap files.
        if self.backend == BackendChoice::Cpu {
            ember::resident::release_startup_code();
        }
        Ok(model)
    }
}

/// `model` after a short prompt pass and a decode step (what it computes is overwritten by the
/// first real prompt): the GPU compiles its pipelines and runs its kernels once, so a device
/// that cannot run the model fails here, while the CPU can still take over, and not mid-answer.
fn warmed_up(mut model: Box<dyn LanguageModel>) -> Result<Box<dyn LanguageModel>> {
    const PROMPT: usize = 8;
    model.forward(&[0; PROMPT], 0, false)?;
    model.forward(&[0], PROMPT, false)?;
    Ok(model)
}

/// Whether `EMBER_GPU_FAULT` asks the GPU backend to inject a fault.
fn fault_injected() -> bool {
    std::env::var_os(FAULT_VAR).is_some_and(|v| !v.is_empty())
}

/// A text to evaluate in windows (`perplexity`, `compare`).
#[derive(Args, Debug, Clone)]
pub struct TextArgs {
    /// The text (a UTF-8 file; `-` reads standard input).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Tokens per window (windows do not overlap; each is evaluated from an empty cache).
    #[arg(long, default_value_t = 128)]
    pub window: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl TextArgs {
    /// The text.
    pub fn read(&self) -> Result<String> {
        if self.file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("cannot read standard input")
        } else {
            std::fs::read_to_string(&self.file)
                .with_context(|| format!("cannot read {}", self.file.display()))
        }
    }
}

/// Where the prompt comes from, and whether it goes through the chat template.
#[derive(Args, Debug, Clone)]
pub struct PromptArgs {
    /// Prompt text (`-` reads standard input).
    #[arg(short = 'p', long = "prompt", conflicts_with = "file")]
    pub prompt: Option<String>,
    /// Read the prompt from a file.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Prompt text, as a positional argument.
    #[arg(conflicts_with_all = ["prompt", "file"])]
    pub text: Option<String>,
    /// Send the prompt as a user message through the model's chat template.
    #[arg(long)]
    pub chat: bool,
    /// System message for --chat.
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
}

impl PromptArgs {
    /// The raw prompt text.
    pub fn text(&self) -> Result<String> {
        if let Some(path) = &self.file {
            return std::fs::read_to_string(path)
                .with_context(|| format!("cannot read prompt file {}", path.display()));
        }
        match self.prompt.as_deref().or(self.text.as_deref()) {
            Some("-") => {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("cannot read the prompt from standard input")?;
                Ok(s)
            }
            Some(p) => Ok(p.to_string()),
            None => bail!("no prompt: give -p TEXT, -f FILE or the text as an argument"),
        }
    }

    /// Prompt token ids, through the chat template when `--chat`.
    pub fn tokens(&self, file: &ModelFile) -> Result<Vec<u32>> {
        let text = self.text()?;
        let tok = &file.tokenizer;
        if self.chat {
            let mut messages = Vec::new();
            if let Some(s) = &self.system {
                messages.push(ChatMessage::new("system", s));
            }
            messages.push(ChatMessage::new("user", &text));
            Ok(tok.encode_chat(&messages)?)
        } else {
            Ok(tok.encode(&text, true)?)
        }
    }
}

/// Sampling options.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Temperature (0: greedy).
    #[arg(long = "temp", default_value_t = 0.8)]
    pub temperature: f32,
    /// Top-k (0: off).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Top-p (1: off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Min-p (0: off).
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Repetition penalty (1: off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Subtracted from the logit of every recently seen token (OpenAI's presence penalty).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub presence_penalty: f32,
    /// Subtracted from a token's logit per recent occurrence (OpenAI's frequency penalty).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub frequency_penalty: f32,
    /// Tokens the penalties look back over.
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Random seed (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    /// The sampler settings, validated.
    pub fn config(&self) -> Result<SamplerConfig> {
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        });
        let cfg = SamplerConfig {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            repeat_last_n: self.repeat_last_n,
            seed,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// A model, a prompt for it and how to run it: what `run` and `score` share.
#[derive(Args, Debug, Clone)]
pub struct PromptedModelArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub prompt: PromptArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

impl PromptedModelArgs {
    /// Opens the model and tokenizes the prompt.
    pub fn open(&self) -> Result<(ModelFile, Vec<u32>)> {
        let file = self.model.open()?;
        let prompt = self.prompt.tokens(&file)?;
        Ok((file, prompt))
    }
}
