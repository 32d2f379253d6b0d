//! One model on one backend, measured into llama-bench style records.

use std::path::Path;
use std::time::Instant;

use super::{BenchConfig, Record, mean_std, model_type, peak_rss_bytes, profile_decode, run_tests};
use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::{GpuBackend, GpuChoice, list_adapters};
use crate::error::{Error, Result};
use crate::format::ModelFile;
use crate::model::{LanguageModel, Model};

/// The backends a `--backend` value names: `all` is the CPU plus every graphics API with an
/// adapter; otherwise a comma list of cpu, vulkan, metal, dx12, gl, gpu. `None` is the CPU.
pub fn parse_backends(spec: &str) -> Result<Vec<Option<GpuChoice>>> {
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
            other => Err(Error::Invalid(format!(
                "unknown backend {other:?} (all, cpu, vulkan, metal, dx12, gl, gpu)"
            ))),
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

/// What describes the device a model runs on, for the records.
struct Device {
    name: String,
    backend: String,
    driver: String,
    device_type: String,
    features: String,
}

/// Loads `path` on `backend` and runs the pp and tg tests (and the decode profile if asked):
/// one record per test.
pub fn measure(
    path: &Path,
    backend: Option<GpuChoice>,
    cfg: &BenchConfig,
    threads: usize,
    profile: bool,
) -> Result<Vec<Record>> {
    let started = Instant::now();
    let file = ModelFile::open(path)?;
    let ctx = (cfg.n_prompt.max(cfg.n_gen) + 8).min(file.config.context_length);
    let (mut model, device): (Box<dyn LanguageModel>, Device) = match backend {
        None => {
            let cpu = CpuBackend::with_precision(threads, cfg.precision)?;
            let device = Device {
                name: format!("cpu {} {}", cfg.precision.name(), cpu.level().name()),
                backend: "CPU".into(),
                driver: String::new(),
                device_type: "Cpu".into(),
                features: String::new(),
            };
            (Box::new(Model::new(&file, cpu, ctx)?), device)
        }
        Some(choice) => {
            let mut gpu = GpuBackend::new(choice)?;
            // The kernels `ember tune` measured fastest here, as `ember run` uses them.
            let tuned = gpu.apply_default_tune_cache(&file).unwrap_or_else(|e| {
                log::warn!("{e}; benchmarking the default kernels");
                None
            });
            let a = gpu.adapter().clone();
            let mut features: Vec<String> = [
                (a.subgroups, "subgroups"),
                (a.shader_f16, "shader-f16"),
                (a.timestamp_query, "timestamp-query"),
            ]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, name)| name.to_string())
            .collect();
            features.extend(tuned.map(|t| format!("tuned: {}", t.describe())));
            let device = Device {
                name: a.name,
                backend: a.backend,
                driver: a.driver,
                device_type: a.device_type,
                features: features.join(", "),
            };
            (Box::new(Model::new(&file, gpu, ctx)?), device)
        }
    };
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let run = run_tests(model.as_mut(), cfg)?;
    let profile = if profile {
        Some(profile_decode(
            model.as_mut(),
            cfg.n_prompt.min(ctx - 8),
            4,
        )?)
    } else {
        None
    };
    let weights = file.weights.all();
    let params: u64 = weights.iter().map(|t| t.elements() as u64).sum();
    let size: u64 = weights.iter().map(|t| t.bytes().len() as u64).sum();
    let mut records = Vec::new();
    for (samples, is_pp) in [(&run.pp, true), (&run.tg, false)] {
        let Some(samples) = samples else { continue };
        let ns: Vec<u64> = samples.times.iter().map(|t| t.as_nanos() as u64).collect();
        let (avg_ns, std_ns) = mean_std(&ns.iter().map(|&n| n as f64).collect::<Vec<_>>());
        let ts = samples.rates();
        let (avg_ts, std_ts) = mean_std(&ts);
        records.push(Record {
            build_version: env!("CARGO_PKG_VERSION").into(),
            build_commit: env!("EMBER_COMMIT").into(),
            cpu_info: cpu_name(),
            gpu_info: device.name.clone(),
            model_filename: path.display().to_string(),
            model_type: model_type(&file),
            model_size: size,
            model_n_params: params,
            backends: device.backend.clone(),
            n_threads: threads,
            n_prompt: if is_pp { samples.tokens } else { 0 },
            n_gen: if is_pp { 0 } else { samples.tokens },
            test_time: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            avg_ns: avg_ns as u64,
            stddev_ns: std_ns as u64,
            avg_ts,
            stddev_ts: std_ts,
            samples_ns: ns,
            samples_ts: ts,
            driver: device.driver.clone(),
            device_type: device.device_type.clone(),
            features: device.features.clone(),
            ttft_ms: run.ttft.as_secs_f64() * 1e3,
            load_ms,
            peak_rss_bytes: peak_rss_bytes(),
            gpu_buffer_bytes: model.device_bytes(),
            telemetry: samples.telemetry.clone(),
            profile: if is_pp { None } else { profile.clone() },
        });
    }
    Ok(records)
}
