//! `ember tune`: times every decode kernel choice on this GPU for this model, then every prefill
//! tile shape with the fastest of those, and remembers the winners in the tuning cache, which later `run`, `chat`, `score` and `bench` commands apply.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;

use super::args::{BackendChoice, CacheType, ModelArgs};
use ember::backend::gpu::GpuBackend;
use ember::backend::gpu::shaders::PREFILL_TILE;
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
    /// Prompt tokens on which the prefill tiles are timed (more than 8).
    #[arg(long, default_value_t = 64)]
    prompt: usize,
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
/// The bound for kernels that round on purpose — 8-bit activations (each value by up to 1/254
/// of its block's largest), f16 prefill tiles; they must also keep the most likely next token.
const AGREEMENT_ROUNDED: f32 = 3e-2;

/// Runs the tuning and writes the winner to the cache.
pub fn run(args: &TuneArgs) -> Result<()> {
    let Some(choice) = args.backend.gpu() else {
        bail!("`ember tune` measures GPU kernels: pick --backend gpu, vulkan, metal, dx12 or gl");
    };
    if args.steps == 0 || args.rounds == 0 || args.depth == 0 {
        bail!("--depth, --steps and --rounds must be at least 1");
    }
    if args.prompt <= PREFILL_TILE as usize {
        bail!(
            "--prompt must be more than {PREFILL_TILE} tokens: shorter prompts do not use the prefill tiles"
        );
    }
    let path = match &args.cache {
        Some(p) => p.clone(),
        None => TuneCache::default_path()
            .context("no place for the tuning cache: set EMBER_TUNE_CACHE or pass --cache")?,
    };
    let mut cache = TuneCache::load(&path)?;
    let file = args.model.open()?;
    let ctx = (args.depth + args.steps + 1).max(args.prompt);
    if ctx > file.config.context_length {
        bail!(
            "--depth {} with {} steps, or --prompt {}, exceeds the model's context of {} tokens",
            args.depth,
            args.steps,
            args.prompt,
            file.config.context_length
        );
    }
    let gpu = GpuBackend::new_with_kv_f16(choice, args.cache_type == CacheType::F16)?;
    let key = TuneKey::new(gpu.adapter(), &file);
    let default = gpu.tuning();
    let int8 = gpu.int8_available();
    let tile_f16 = gpu.tile_f16_available();
    let lanes = gpu.lane_choices();
    let mut model = Model::new(&file, gpu, ctx)?;
    if !args.json {
        eprintln!(
            "tuning {} for {} at depth {} and on a {}-token prompt ({} rounds of {} steps)",
            model.backend_name(),
            key.model,
            args.depth,
            args.prompt,
            args.rounds,
            args.steps
        );
    }
    // Any in-vocabulary ids do for timing; the default's logits are the answer to agree with.
    let vocab = file.config.vocab_size as u32;
    let ids: Vec<u32> = (0..ctx as u32).map(|i| (i * 7919 + 17) % vocab).collect();
    model.forward(&ids[..args.depth], 0, false)?;
    let token = ids[args.depth / 2];
    let (depth, steps) = (args.depth, args.steps);
    let decode = race(
        &mut model,
        default_first(default, default.decode_choices(int8, &lanes)),
        args.rounds,
        |m| m.forward(&[token], depth, false),
        |m| {
            let start = Instant::now();
            for step in 0..steps {
                m.forward(&[token], depth + step, false)?;
            }
            Ok(start.elapsed().as_secs_f64() * 1e3 / steps as f64)
        },
    )?;
    let prompt = &ids[..args.prompt];
    let prefill = race(
        &mut model,
        {
            let best = fastest(&decode);
            default_first(best, best.prefill_choices(tile_f16))
        },
        args.rounds,
        |m| m.forward(prompt, 0, false),
        |m| {
            let start = Instant::now();
            m.forward(prompt, 0, false)?;
            Ok(start.elapsed().as_secs_f64() * 1e3 / prompt.len() as f64)
        },
    )?;
    let best = fastest(&prefill);
    let entry = TuneEntry {
        key,
        tuning: best,
        measured: decode.clone(),
        prefill: prefill.clone(),
        depth: args.depth,
        prompt: args.prompt,
        version: env!("CARGO_PKG_VERSION").into(),
    };
    cache.insert(entry.clone());
    cache.save(&path)?;
    if args.json {
        println!(
            "{}",
            json!({
                "cache": path,
                "chosen": best.describe(),
                "candidates": decode.len(),
                "prefill_candidates": prefill.len(),
                "entry": entry,
            })
        );
        return Ok(());
    }
    print_table("decode kernels", "ms/token", &decode);
    println!();
    print_table("prefill tiles", "ms/prompt token", &prefill);
    println!("fastest: {}; saved to {}", best.describe(), path.display());
    Ok(())
}

/// Checks each candidate's logits against the first's (the default), then times those that
/// agree, every candidate once per round, and returns them with their median ms per token.
fn race(
    model: &mut Model<GpuBackend>,
    candidates: Vec<Tuning>,
    rounds: usize,
    mut logits: impl FnMut(&mut Model<GpuBackend>) -> ember::error::Result<Vec<f32>>,
    mut time: impl FnMut(&mut Model<GpuBackend>) -> ember::error::Result<f64>,
) -> Result<Vec<Timed>> {
    let mut want: Option<Vec<f32>> = None;
    let mut accepted = Vec::new();
    for t in candidates {
        model.backend().set_tuning(t, false);
        // Also the warm-up: pipelines are made on first use.
        let got = logits(model)?;
        let Some(reference) = &want else {
            want = Some(got);
            accepted.push(t);
            continue;
        };
        let scale = reference
            .iter()
            .fold(0f32, |m, v| m.max(v.abs()))
            .max(1e-20);
        let err = got
            .iter()
            .zip(reference)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
            / scale;
        let bound = if t.int8 || t.tile_f16 {
            AGREEMENT_ROUNDED
        } else {
            AGREEMENT
        };
        if err <= bound && argmax(&got) == argmax(reference) {
            accepted.push(t);
        } else {
            eprintln!(
                "warning: {} disagrees with the default kernels (relative error {err:.1e}); not a candidate",
                t.describe()
            );
        }
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); accepted.len()];
    for _ in 0..rounds {
        for (t, ms) in accepted.iter().zip(&mut times) {
            model.backend().set_tuning(*t, false);
            ms.push(time(model)?);
        }
    }
    Ok(accepted
        .iter()
        .zip(&mut times)
        .map(|(t, ms)| {
            ms.sort_by(f64::total_cmp);
            Timed {
                kernels: *t,
                ms_per_token: ms[ms.len() / 2],
            }
        })
        .collect())
}

/// `choices` with `default` first (the answer the others must agree with, and the base of the
/// table's ratios).
fn default_first(default: Tuning, choices: Vec<Tuning>) -> Vec<Tuning> {
    let mut all = vec![default];
    all.extend(choices.into_iter().filter(|t| *t != default));
    all
}

/// The fastest of `measured` (which holds at least the default).
fn fastest(measured: &[Timed]) -> Tuning {
    measured
        .iter()
        .min_by(|a, b| a.ms_per_token.total_cmp(&b.ms_per_token))
        .expect("the default kernels are always a candidate")
        .kernels
}

/// Prints `measured` as a Markdown table, against the first entry (the default).
fn print_table(what: &str, unit: &str, measured: &[Timed]) {
    let default_ms = measured[0].ms_per_token;
    println!("| {what} | {unit} | vs default |");
    println!("| --- | ---: | ---: |");
    for (i, t) in measured.iter().enumerate() {
        let mark = if i == 0 { " (default)" } else { "" };
        println!(
            "| {}{mark} | {:.2} | {:.2}x |",
            t.kernels.describe(),
            t.ms_per_token,
            default_ms / t.ms_per_token
        );
    }
}
