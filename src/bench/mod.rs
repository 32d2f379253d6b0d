//! The measurements behind `ember bench`: prompt processing (pp) and generation (tg) speed, time
//! to first token, load time and memory, per model and backend, as llama-bench reports them.

mod chart;
#[cfg(not(target_arch = "wasm32"))]
mod measure;
mod report;

use std::time::{Duration, Instant};

pub use chart::svg_chart;
#[cfg(not(target_arch = "wasm32"))]
pub use measure::{measure, parse_backends};
pub use report::{Record, to_csv, to_markdown};

use crate::error::Result;
use crate::format::ModelFile;
use crate::model::LanguageModel;
use crate::telemetry::Meter;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Prompt tokens for the pp test (0: skip).
    pub n_prompt: usize,
    /// Generated tokens for the tg test (0: skip).
    pub n_gen: usize,
    /// Repetitions after the warm-up.
    pub reps: usize,
    /// CPU matrix-product precision.
    pub precision: crate::backend::cpu::Precision,
}

/// Timings of one test's repetitions.
#[derive(Clone, Debug)]
pub struct Samples {
    /// Wall time of each repetition.
    pub times: Vec<Duration>,
    /// Tokens each repetition processed.
    pub tokens: usize,
    /// Power and heat over all the repetitions.
    pub telemetry: crate::telemetry::Telemetry,
}

impl Samples {
    /// Tokens per second of each repetition.
    pub fn rates(&self) -> Vec<f64> {
        self.times
            .iter()
            .map(|t| self.tokens as f64 / t.as_secs_f64().max(1e-12))
            .collect()
    }
}

/// Mean and sample standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Token ids for the synthetic prompt: spread over the vocabulary, the same every run.
fn prompt_tokens(n: usize, vocab: usize) -> Vec<u32> {
    (0..n)
        .map(|i| ((i as u64 * 2654435761 + 12345) % vocab as u64) as u32)
        .collect()
}

/// Evaluates `tokens` from position 0 in chunks, as a session's prefill would.
fn prefill(model: &mut dyn LanguageModel, tokens: &[u32]) -> Result<()> {
    for (i, chunk) in tokens.chunks(512).enumerate() {
        model.forward(chunk, i * 512, false)?;
    }
    Ok(())
}

/// Results for one model on one backend.
#[derive(Clone, Debug)]
pub struct BenchRun {
    /// pp test (empty when skipped).
    pub pp: Option<Samples>,
    /// tg test.
    pub tg: Option<Samples>,
    /// Mean time to the first token of a generation: the prefill of `n_prompt` tokens plus
    /// one decode step.
    pub ttft: Duration,
}

/// Runs the pp and tg tests on a loaded model: one warm-up of each, then `reps` repetitions.
pub fn run_tests(model: &mut dyn LanguageModel, cfg: &BenchConfig) -> Result<BenchRun> {
    let vocab = model.config().vocab_size;
    let prompt = prompt_tokens(cfg.n_prompt.max(1), vocab);
    let mut run = BenchRun {
        pp: None,
        tg: None,
        ttft: Duration::ZERO,
    };
    // Warm-up: pipelines, caches, page faults.
    prefill(model, &prompt[..prompt.len().min(16)])?;
    model.forward(&prompt[..1], 0, false)?;
    if cfg.n_prompt > 0 {
        let meter = Meter::start();
        let mut times = Vec::new();
        let mut ttfts = Vec::new();
        for _ in 0..cfg.reps {
            let t = Instant::now();
            prefill(model, &prompt)?;
            times.push(t.elapsed());
            model.forward(&prompt[..1], prompt.len(), false)?;
            ttfts.push(t.elapsed());
        }
        run.ttft = ttfts.iter().sum::<Duration>() / ttfts.len().max(1) as u32;
        run.pp = Some(Samples {
            times,
            tokens: cfg.n_prompt,
            telemetry: meter.stop(cfg.n_prompt * cfg.reps),
        });
    }
    if cfg.n_gen > 0 {
        let meter = Meter::start();
        let mut times = Vec::new();
        for _ in 0..cfg.reps {
            let t = Instant::now();
            for pos in 0..cfg.n_gen {
                model.forward(
                    &prompt[pos % prompt.len()..pos % prompt.len() + 1],
                    pos,
                    false,
                )?;
            }
            times.push(t.elapsed());
        }
        run.tg = Some(Samples {
            times,
            tokens: cfg.n_gen,
            telemetry: meter.stop(cfg.n_gen * cfg.reps),
        });
    }
    Ok(run)
}

/// Peak resident memory of this process so far, in bytes (0 where unknown).
pub fn peak_rss_bytes() -> u64 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getrusage only writes into the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
            return usage.ru_maxrss as u64 * 1024;
        }
    }
    0
}

/// llama-bench's `model_type`: architecture, size class and main tensor type.
pub fn model_type(file: &ModelFile) -> String {
    let params: usize = file.weights.all().iter().map(|t| t.elements()).sum();
    let size = if params >= 1_000_000_000 {
        format!("{:.1}B", params as f64 / 1e9)
    } else {
        format!("{}M", params / 1_000_000)
    };
    let main = file
        .bytes_by_type()
        .first()
        .map(|(t, _, _)| t.name())
        .unwrap_or("?");
    format!("{} {size} {main}", file.config.arch.name())
}

/// Where a decode step's time goes: per kind of op, its time per token and share of the step.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProfileEntry {
    /// The op (kernel) name.
    pub op: String,
    /// Milliseconds per decode step.
    pub ms_per_token: f64,
    /// Fraction of the measured step time.
    pub share: f64,
    /// Megabytes (10^6) the op must move per decode step: weights, activations, KV cache.
    pub mb_per_token: f64,
    /// Its effective bandwidth, GB/s (`mb_per_token` over its time).
    pub gb_per_s: f64,
}

/// A profile of `steps` decode steps after a prompt of `context` tokens.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Profile {
    /// Wall time of one decode step without profiling, ms.
    pub step_ms: f64,
    /// Wall time of one decode step while profiling (what the shares are of), ms.
    pub profiled_step_ms: f64,
    /// GPU: device time of one step, first kernel start to last kernel end, ms.
    pub device_ms: Option<f64>,
    /// Sum of the ops' times as a fraction of the profiled step's wall time.
    pub covered: f64,
    /// Per op, slowest first.
    pub ops: Vec<ProfileEntry>,
    /// Megabytes every op of a step must move, together.
    pub mb_per_token: f64,
}

impl Profile {
    /// The step's effective bandwidth, GB/s: what its ops must move over its unprofiled time
    /// (the device's time on GPUs that report it). Against the device's memory bandwidth, the
    /// share of the roofline a decode reaches.
    pub fn gb_per_s(&self) -> f64 {
        self.mb_per_token / self.device_ms.unwrap_or(self.step_ms).max(1e-9)
    }
}

impl Profile {
    /// GPU: the step's time outside the device span (recording, submission, read-back), ms.
    pub fn host_ms(&self) -> Option<f64> {
        self.device_ms.map(|d| (self.profiled_step_ms - d).max(0.0))
    }
}

/// Times each op of decode steps (device time from timestamp queries on GPUs that have them).
/// On GPUs a kernel's time runs from the end of the kernel before it, so the kernels tile the
/// device span and the host's part of the step is what remains of the wall time.
pub fn profile_decode(
    model: &mut dyn LanguageModel,
    context: usize,
    steps: usize,
) -> Result<Profile> {
    let vocab = model.config().vocab_size;
    let prompt = prompt_tokens(context.max(1), vocab);
    prefill(model, &prompt)?;
    let decode = |model: &mut dyn LanguageModel| -> Result<f64> {
        let start = Instant::now();
        for s in 0..steps {
            model.forward(
                &prompt[s % prompt.len()..s % prompt.len() + 1],
                prompt.len() + s,
                false,
            )?;
        }
        Ok(start.elapsed().as_secs_f64() / steps as f64)
    };
    let step = decode(model)?;
    model.set_profiling(true);
    let profiled = decode(model)?;
    let times = model.take_profile();
    model.set_profiling(false);
    let device = times.device_span.map(|d| d.as_secs_f64() / steps as f64);
    let mb = |op: &str| {
        let bytes = times.bytes.iter().find(|(n, _)| n == op).map_or(0, |b| b.1);
        bytes as f64 / steps as f64 / 1e6
    };
    let mut ops: Vec<ProfileEntry> = times
        .ops
        .iter()
        .map(|(op, t)| {
            let per = t.as_secs_f64() / steps as f64;
            let mb_per_token = mb(op);
            ProfileEntry {
                op: op.clone(),
                ms_per_token: per * 1e3,
                share: per / profiled,
                mb_per_token,
                gb_per_s: mb_per_token / 1e3 / per.max(1e-12),
            }
        })
        .collect();
    ops.sort_by(|a, b| b.ms_per_token.total_cmp(&a.ms_per_token));
    Ok(Profile {
        step_ms: step * 1e3,
        profiled_step_ms: profiled * 1e3,
        device_ms: device.map(|d| d * 1e3),
        covered: ops.iter().map(|o| o.share).sum(),
        mb_per_token: times.bytes.iter().map(|b| b.1).sum::<u64>() as f64 / steps as f64 / 1e6,
        ops,
    })
}
