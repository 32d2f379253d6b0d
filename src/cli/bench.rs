//! `ember bench`: pp/tg speed, time to first token, load time and memory for every model x
//! backend, as a llama-bench style table, JSON, CSV and an SVG chart.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};

use ember::ModelFile;
use ember::backend::cpu::CpuBackend;
use ember::backend::gpu::{GpuBackend, GpuChoice, list_adapters};
use ember::bench::{
    BenchConfig, Record, mean_std, model_type, peak_rss_bytes, run_tests, svg_chart, to_csv,
    to_markdown,
};
use ember::model::{LanguageModel, Model};

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
}

/// The backends `--backend` names, checked.
fn backends(spec: &str) -> Result<Vec<Option<GpuChoice>>> {
    if spec == "all" {
        let mut v = vec![None];
        for a in list_adapters() {
            let choice = match a.backend.as_str() {
                "Vulkan" => GpuChoice::Vulkan,
                "Metal" => GpuChoice::Metal,
                "Dx12" => GpuChoice::Dx12,
                "Gl" => GpuChoice::Gl,
                _ => continue,
            };
            if !v.contains(&Some(choice)) {
                v.push(Some(choice));
            }
        }
        return Ok(v);
    }
    spec.split(',')
        .map(|b| match b.trim() {
            "cpu" => Ok(None),
            "vulkan" => Ok(Some(GpuChoice::Vulkan)),
            "metal" => Ok(Some(GpuChoice::Metal)),
            "dx12" => Ok(Some(GpuChoice::Dx12)),
            "gl" => Ok(Some(GpuChoice::Gl)),
            "gpu" => Ok(Some(GpuChoice::Any)),
            other => bail!("unknown backend {other:?} (all, cpu, vulkan, metal, dx12, gl, gpu)"),
        })
        .collect()
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
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
    };
    let threads = if args.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        args.threads
    };
    let mut records = Vec::new();
    for path in &models {
        for choice in backends(&args.backend)? {
            let started = Instant::now();
            let file = ModelFile::open(path)?;
            let ctx = (args.n_prompt.max(args.n_gen) + 8).min(file.config.context_length);
            let (mut model, info, backend_label, driver, device_type, features): (
                Box<dyn LanguageModel>,
                String,
                String,
                String,
                String,
                String,
            ) = match choice {
                None => (
                    Box::new(Model::new(&file, CpuBackend::new(threads)?, ctx)?),
                    "cpu".into(),
                    "CPU".into(),
                    String::new(),
                    "Cpu".into(),
                    String::new(),
                ),
                Some(c) => {
                    let gpu = GpuBackend::new(c)?;
                    let a = gpu.adapter().clone();
                    let mut f = Vec::new();
                    if a.subgroups {
                        f.push("subgroups");
                    }
                    if a.shader_f16 {
                        f.push("shader-f16 (KV cache f32 by default)");
                    }
                    (
                        Box::new(Model::new(&file, gpu, ctx)?),
                        a.name,
                        a.backend,
                        a.driver,
                        a.device_type,
                        f.join(", "),
                    )
                }
            };
            let load = started.elapsed();
            eprintln!(
                "benchmarking {} on {} ...",
                path.display(),
                model.backend_name()
            );
            let run = run_tests(model.as_mut(), &cfg)?;
            let params: u64 = file.weights.all().iter().map(|t| t.elements() as u64).sum();
            let size: u64 = file
                .weights
                .all()
                .iter()
                .map(|t| t.bytes().len() as u64)
                .sum();
            for samples in [&run.pp, &run.tg].into_iter().flatten() {
                let ns: Vec<u64> = samples.times.iter().map(|t| t.as_nanos() as u64).collect();
                let (avg_ns, std_ns) = mean_std(&ns.iter().map(|&n| n as f64).collect::<Vec<_>>());
                let ts = samples.rates();
                let (avg_ts, std_ts) = mean_std(&ts);
                let is_pp = run.pp.as_ref().is_some_and(|p| std::ptr::eq(p, samples));
                records.push(Record {
                    build_version: env!("CARGO_PKG_VERSION").into(),
                    build_commit: env!("EMBER_COMMIT").into(),
                    cpu_info: cpu_name(),
                    gpu_info: info.clone(),
                    model_filename: path.display().to_string(),
                    model_type: model_type(&file),
                    model_size: size,
                    model_n_params: params,
                    backends: backend_label.clone(),
                    n_threads: threads,
                    n_prompt: if is_pp { samples.tokens } else { 0 },
                    n_gen: if is_pp { 0 } else { samples.tokens },
                    test_time: humantime_now(),
                    avg_ns: avg_ns as u64,
                    stddev_ns: std_ns as u64,
                    avg_ts,
                    stddev_ts: std_ts,
                    samples_ns: ns,
                    samples_ts: ts,
                    driver: driver.clone(),
                    device_type: device_type.clone(),
                    features: features.clone(),
                    ttft_ms: run.ttft.as_secs_f64() * 1e3,
                    load_ms: load.as_secs_f64() * 1e3,
                    peak_rss_bytes: peak_rss_bytes(),
                    gpu_buffer_bytes: model.device_bytes(),
                });
            }
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

/// The current UTC time as ISO 8601 (seconds).
fn humantime_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
