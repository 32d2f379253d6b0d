//! `ember tune`: times every decode kernel choice on this GPU for this model and remembers the
//! fastest in the tuning cache, which later `run`, `chat`, `score` and `bench` commands apply.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;

use super::args::{BackendChoice, CacheType, ModelArgs};
use ember::backend::gpu::GpuBackend;
use ember::backend::gpu::tuning::{Timed, TuneCache, TuneEntry, TuneKey, Tuning};
use ember::model::{LanguageModel, Model};
use ember::sample::argmax;

/// Arguments of `ember tune`.
#[derive(Args, Debug)]
pub struct TuneArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The GPU to tune.
    #[arg(long, value_enum, default_value = "gpu")]
    backend: BackendChoice,
    /// KV-cache element type, as for `run`.
    #[arg(long = "cache-type", value_enum, default_value = "f16")]
    cache_type: CacheType,
    /// Context depth at which decode steps are timed.
    #[arg(long, default_value_t = 256)]
    depth: usize,
    /// Decode steps timed per candidate in each round.
    #[arg(short = 'n', long, default_value_t = 8)]
    steps: usize,
    /// Rounds; every candidate runs once per round, so drift on a busy machine hits all alike.
    #[arg(short = 'r', long, default_value_t = 3)]
    rounds: usize,
    /// Cache file (default: EMBER_TUNE_CACHE, else $XDG_CACHE_HOME/ember/tune.json, else
    /// ~/.cache/ember/tune.json).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Print the stored entry as JSON.
    #[arg(long)]
    json: bool,
}

/// Candidates whose logits differ from the default's by more than this (relative to the largest
/// logit) are refused: a kernel choice must change the speed, not the answer.
const AGREEMENT: f32 = 1e-3;
/// The bound for 8-bit activations, which round each value by up to 1/254 of its block's
/// largest; they must also keep the most likely next token.
const AGREEMENT_INT8: f32 = 3e-2;

/// Runs the tuning and writes the winner to the cache.
pub fn run(args: &TuneArgs) -> Result<()> {
    let Some(choice) = args.backend.gpu() else {
        bail!("`ember tune` measures GPU kernels: pick --backend gpu, vulkan, metal, dx12 or gl");
    };
    if args.steps == 0 || args.rounds == 0 || args.depth == 0 {
        bail!("--depth, --steps and --rounds must be at least 1");
    }
    let path = match &args.cache {
        Some(p) => p.clone(),
        None => TuneCache::default_path()
            .context("no place for the tuning cache: set EMBER_TUNE_CACHE or pass --cache")?,
    };
    let mut cache = TuneCache::load(&path)?;
    let file = args.model.open()?;
    let ctx = args.depth + args.steps + 1;
    if ctx > file.config.context_length {
        bail!(
            "--depth {} with {} steps exceeds the model's context of {} tokens",
            args.depth,
            args.steps,
            file.config.context_length
        );
    }
    let gpu = GpuBackend::new_with_kv_f16(choice, args.cache_type == CacheType::F16)?;
    let key = TuneKey::new(gpu.adapter(), &file);
    let default = gpu.tuning();
    let int8 = gpu.int8_available();
    let lanes = gpu.lane_choices();
    let mut model = Model::new(&file, gpu, ctx)?;
    if !args.json {
        eprintln!(
            "tuning {} for {} at depth {} ({} rounds of {} steps)",
            model.backend_name(),
            key.model,
            args.depth,
            args.rounds,
            args.steps
        );
    }
    // Any in-vocabulary ids do for timing; the default's logits are the answer to agree with.
    let vocab = file.config.vocab_size as u32;
    let prompt: Vec<u32> = (0..args.depth as u32)
        .map(|i| (i * 7919 + 17) % vocab)
        .collect();
    model.forward(&prompt, 0, false)?;
    let token = prompt[prompt.len() / 2];
    let mut candidates = vec![default];
    candidates.extend(
        Tuning::all(int8, &lanes)
            .into_iter()
            .filter(|t| *t != default),
    );
    let tried = candidates.len();
    let mut want: Option<Vec<f32>> = None;
    let mut accepted = Vec::new();
    for t in candidates {
        model.backend().set_tuning(t, false);
        // Also the warm-up: pipelines are made on first use.
        let logits = model.forward(&[token], args.depth, false)?;
        let Some(reference) = &want else {
            want = Some(logits);
            accepted.push(t);
            continue;
        };
        let scale = reference
            .iter()
            .fold(0f32, |m, v| m.max(v.abs()))
            .max(1e-20);
        let err = logits
            .iter()
            .zip(reference)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
            / scale;
        let bound = if t.int8 { AGREEMENT_INT8 } else { AGREEMENT };
        if err <= bound && argmax(&logits) == argmax(reference) {
            accepted.push(t);
        } else {
            eprintln!(
                "warning: {} disagrees with the default kernels (relative error {err:.1e}); not a candidate",
                t.describe()
            );
        }
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); accepted.len()];
    for _ in 0..args.rounds {
        for (t, ms) in accepted.iter().zip(&mut times) {
            model.backend().set_tuning(*t, false);
            let start = Instant::now();
            for step in 0..args.steps {
                model.forward(&[token], args.depth + step, false)?;
            }
            ms.push(start.elapsed().as_secs_f64() * 1e3 / args.steps as f64);
        }
    }
    let measured: Vec<Timed> = accepted
        .iter()
        .zip(&mut times)
        .map(|(t, ms)| {
            ms.sort_by(f64::total_cmp);
            Timed {
                kernels: *t,
                ms_per_token: ms[ms.len() / 2],
            }
        })
        .collect();
    let best = *measured
        .iter()
        .min_by(|a, b| a.ms_per_token.total_cmp(&b.ms_per_token))
        .expect("the default kernels are always a candidate");
    let (best, best_ms) = (best.kernels, best.ms_per_token);
    let entry = TuneEntry {
        key,
        tuning: best,
        measured: measured.clone(),
        depth: args.depth,
        version: env!("CARGO_PKG_VERSION").into(),
    };
    cache.insert(entry.clone());
    cache.save(&path)?;
    if args.json {
        println!(
            "{}",
            json!({"cache": path, "chosen": best.describe(), "candidates": tried, "entry": entry})
        );
        return Ok(());
    }
    let default_ms = measured[0].ms_per_token;
    println!("| decode kernels | ms/token | vs default |");
    println!("| --- | ---: | ---: |");
    for Timed {
        kernels: t,
        ms_per_token: ms,
    } in &measured
    {
        let mark = if *t == default { " (default)" } else { "" };
        println!(
            "| {}{mark} | {ms:.2} | {:.2}x |",
            t.describe(),
            default_ms / ms
        );
    }
    println!(
        "fastest: {} ({best_ms:.2} ms/token); saved to {}",
        best.describe(),
        path.display()
    );
    Ok(())
}
