//! `ember bench`: records for the CPU and every GPU API with every field filled; markdown and CSV
//! say what the JSON says; the chart shows every record; the profile accounts for the step.

mod common;

use common::*;
use ember::backend::gpu::{GpuBackend, GpuChoice, GpuContext, GpuOptions};
use ember::bench::{BenchConfig, Record, measure, profile_decode, svg_chart, to_csv, to_markdown};
use ember::format::ModelFile;
use ember::model::Model;
use serde_json::Value;

/// Timing tests in this file run one at a time, so they do not slow each other down.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn records(backend: Option<GpuChoice>, profile: bool) -> Vec<Record> {
    let cfg = BenchConfig {
        n_prompt: 16,
        n_gen: 4,
        reps: 2,
        precision: Default::default(),
    };
    measure(default_model().as_ref(), backend, &cfg, 2, profile).expect("bench runs")
}

fn check_filled(r: &Record) {
    let v = serde_json::to_value(r).unwrap();
    for key in [
        "model_filename",
        "model_type",
        "backends",
        "gpu_info",
        "test_time",
        "build_commit",
        "build_version",
        "cpu_info",
    ] {
        assert!(
            v[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key} empty in {v}"
        );
    }
    for key in [
        "model_size",
        "model_n_params",
        "n_threads",
        "avg_ns",
        "peak_rss_bytes",
    ] {
        assert!(v[key].as_u64().is_some_and(|n| n > 0), "{key} in {v}");
    }
    for key in ["avg_ts", "ttft_ms", "load_ms"] {
        assert!(
            v[key].as_f64().is_some_and(|x| x > 0.0 && x.is_finite()),
            "{key} in {v}"
        );
    }
    assert_eq!(r.samples_ns.len(), 2);
    assert_eq!(r.samples_ts.len(), 2);
    assert!(r.model_size > 90 << 20 && r.model_n_params > 130_000_000);
    assert!((r.n_prompt == 16) ^ (r.n_gen == 4));
    // tokens/s and ns per repetition describe the same runs.
    let tokens = (r.n_prompt + r.n_gen) as f64;
    for (ns, ts) in r.samples_ns.iter().zip(&r.samples_ts) {
        assert!((tokens / (*ns as f64 / 1e9) / ts - 1.0).abs() < 1e-6);
    }
    if r.backends != "CPU" {
        assert!(
            r.gpu_buffer_bytes > 90 << 20,
            "GPU bytes {}",
            r.gpu_buffer_bytes
        );
    }
}

/// Splits one CSV line (fields may be quoted, with doubled quotes inside).
fn csv_fields(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[test]
fn cpu_and_gpu_records_are_complete_and_formats_agree() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut all = records(None, false);
    for choice in gpu_choices() {
        all.extend(records(Some(choice), false));
    }
    assert_eq!(all.len(), 2 * (1 + gpu_choices().len()));
    all.iter().for_each(check_filled);

    let json: Value = serde_json::to_value(&all).unwrap();
    let csv = to_csv(&all);
    let mut lines = csv.lines();
    let header = csv_fields(lines.next().unwrap());
    for (row, rec) in lines.zip(json.as_array().unwrap()) {
        for (key, field) in header.iter().zip(csv_fields(row)) {
            let want = match &rec[key.as_str()] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(field, want, "csv column {key}");
        }
    }
    let md = to_markdown(&all);
    for r in &all {
        let cell = format!("| {} | {:.2} ± {:.2} |", r.test(), r.avg_ts, r.stddev_ts);
        assert!(
            md.lines()
                .any(|l| l.contains(&cell) && l.contains(&r.backends) && l.contains(&r.gpu_info)),
            "{cell} missing:\n{md}"
        );
    }
    let svg = svg_chart(&all);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(
        svg.matches("<rect x=").count(),
        all.len(),
        "one bar per record"
    );
}

#[test]
fn profile_shares_account_for_the_step() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut targets = vec![None];
    targets.extend(gpu_choices().into_iter().map(Some));
    for backend in targets {
        let recs = records(backend, true);
        let p = recs
            .iter()
            .find_map(|r| r.profile.clone())
            .expect("tg record carries the profile");
        assert!(
            p.ops.iter().any(|o| o.op.starts_with("mat"))
                && p.ops.iter().any(|o| o.op == "attention"),
            "{p:?}"
        );
        // The ops' times (CPU timers, or GPU timestamps that tile the device span) against the
        // wall time of the same steps: what they miss on a GPU is the host's recording,
        // submission and read-back.
        assert!(
            (p.covered - 1.0).abs() <= 0.1,
            "{backend:?}: ops cover {:.1}% of the step: {p:?}",
            p.covered * 100.0
        );
        assert!(p.step_ms > 0.0 && p.profiled_step_ms > 0.0, "{p:?}");
        // Bandwidth accounting: the matrix products of a decode step read every weight once
        // (the file minus its metadata), and the step's total and each op's GB/s follow.
        let weights = std::fs::metadata(default_model()).unwrap().len() as f64 / 1e6;
        let mat: f64 = p
            .ops
            .iter()
            .filter(|o| o.op.starts_with("mat"))
            .map(|o| o.mb_per_token)
            .sum();
        assert!(
            mat > 0.9 * weights && mat < 1.02 * weights,
            "{backend:?}: matrix products move {mat} MB per token; weights {weights} MB"
        );
        let attention = p.ops.iter().find(|o| o.op == "attention").unwrap();
        assert!(
            attention.mb_per_token > 0.0 && attention.gb_per_s > 0.0,
            "{p:?}"
        );
        assert!(p.mb_per_token >= mat && p.gb_per_s() > 0.0, "{p:?}");
        if let Some(device) = p.device_ms {
            let kernels: f64 = p.ops.iter().map(|o| o.ms_per_token).sum();
            assert!(
                (kernels / device - 1.0).abs() <= 0.01,
                "{backend:?}: kernels {kernels} ms vs device span {device} ms"
            );
        }
    }
}

/// Where timestamps cannot go inside a pass (WebGPU), each timed dispatch gets a pass of its own:
/// the kernels then sit inside the device span with the gaps between passes outside them.
#[test]
fn profile_with_a_pass_per_dispatch() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let file = ModelFile::open(default_model().as_ref()).unwrap();
    for choice in gpu_choices() {
        let ctx = GpuContext::new(choice).unwrap();
        let options = GpuOptions {
            timestamps_inside_passes: false,
            ..GpuOptions::accurate(&ctx)
        };
        let gpu = GpuBackend::with_context(ctx, options).unwrap();
        let mut model = Model::new(&file, gpu, 32).unwrap();
        let p = profile_decode(&mut model, 16, 2).unwrap();
        let kernels: f64 = p.ops.iter().map(|o| o.ms_per_token).sum();
        let device = p.device_ms.expect("device span");
        assert!(p.ops.iter().any(|o| o.op.starts_with("mat")), "{p:?}");
        assert!(
            kernels <= device * 1.001 && kernels >= 0.5 * device,
            "{choice:?}: kernels {kernels} ms in a device span of {device} ms"
        );
    }
}

#[test]
fn cli_json_and_chart() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("ember-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let chart = dir.join("bench.svg");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
        .args([
            "bench",
            "-p",
            "8",
            "-n",
            "2",
            "-r",
            "1",
            "--backend",
            "cpu",
            "--format",
            "json",
            "--chart",
            chart.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert!(
        std::fs::read_to_string(&chart)
            .unwrap()
            .contains("Generation")
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["bench", "--backend", "npu"])
        .output()
        .unwrap();
    assert!(
        !bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("unknown backend")
    );
    std::fs::remove_dir_all(&dir).ok();
}
