//! `ember bench`: pp/tg speed, time to first token, load time and memory for every model x
//! backend, as a llama-bench style table, JSON, CSV and an SVG chart.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use super::args::PrecisionChoice;
use ember::bench::{BenchConfig, measure, parse_backends, svg_chart, to_csv, to_markdown};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// llama-bench style markdown table.
    Md,
    /// A JSON array of records.
    Json,
    /// CSV with the JSON's fields.
    Csv,
}

/// Arguments of `ember bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Models to measure (repeatable; default: the model in assets/).
    #[arg(short = 'm', long = "model")]
    models: Vec<PathBuf>,
    /// Backends: `all` (the CPU and every GPU API with an adapter) or a comma list of cpu,
    /// vulkan, metal, dx12, gl.
    #[arg(long, default_value = "all")]
    backend: String,
    /// Prompt tokens for the pp test (0 skips it).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 128)]
    n_prompt: usize,
    /// Generated tokens for the tg test (0 skips it).
    #[arg(short = 'n', long = "n-gen", default_value_t = 64)]
    n_gen: usize,
    /// Repetitions (after one warm-up).
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    reps: usize,
    /// CPU threads (0: one per core).
    #[arg(short = 't', long, default_value_t = 0)]
    threads: usize,
    /// Output format.
    #[arg(long, value_enum, default_value = "md")]
    format: Format,
    /// Also draw the results as an SVG bar chart into this file.
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Time every op of a decode step (GPU: timestamp queries) and report each one's share.
    #[arg(long)]
    profile: bool,
    /// CPU: how activations meet quantized weights in matrix products.
    #[arg(long, value_enum, default_value = "i16")]
    precision: PrecisionChoice,
}

/// Runs every model x backend and prints the report.
pub fn run(args: &BenchArgs) -> Result<()> {
    if args.reps == 0 {
        bail!("--repetitions must be at least 1");
    }
    if args.n_prompt == 0 && args.n_gen == 0 {
        bail!("nothing to measure: -p and -n are both 0");
    }
    let models = if args.models.is_empty() {
        vec![ember::default_model_path()]
    } else {
        args.models.clone()
    };
    let cfg = BenchConfig {
        n_prompt: args.n_prompt,
        n_gen: args.n_gen,
        reps: args.reps,
        precision: args.precision.cpu(),
    };
    let threads = if args.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        args.threads
    };
    let backends = parse_backends(&args.backend)?;
    let mut records = Vec::new();
    for path in &models {
        for &backend in &backends {
            eprintln!(
                "benchmarking {} on {} ...",
                path.display(),
                backend.map_or("cpu".to_string(), |b| format!("{b:?}").to_lowercase())
            );
            records.extend(measure(path, backend, &cfg, threads, args.profile)?);
        }
    }
    match args.format {
        Format::Md => print!("{}", to_markdown(&records)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&records)?),
        Format::Csv => print!("{}", to_csv(&records)),
    }
    if let Some(path) = &args.chart {
        std::fs::write(path, svg_chart(&records))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
