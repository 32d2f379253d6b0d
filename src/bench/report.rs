//! Benchmark records and their renderings. Field names follow llama-bench's JSON wherever the
//! quantity is the same, so scripts written for it read Ember's output.

use serde::Serialize;

/// One model x backend x test result.
#[derive(Clone, Debug, Serialize)]
pub struct Record {
    /// Ember's version.
    pub build_version: String,
    /// Git commit Ember was built from.
    pub build_commit: String,
    /// CPU model name.
    pub cpu_info: String,
    /// Adapter name (`cpu` for the CPU backend).
    pub gpu_info: String,
    /// Model file or folder.
    pub model_filename: String,
    /// Architecture, size and main tensor type.
    pub model_type: String,
    /// Bytes of weights.
    pub model_size: u64,
    /// Parameters.
    pub model_n_params: u64,
    /// Backend (CPU, Vulkan, Gl, Metal, Dx12).
    pub backends: String,
    /// CPU threads.
    pub n_threads: usize,
    /// Prompt tokens of the test (0 for tg).
    pub n_prompt: usize,
    /// Generated tokens of the test (0 for pp).
    pub n_gen: usize,
    /// ISO 8601 time of the test.
    pub test_time: String,
    /// Mean nanoseconds per repetition.
    pub avg_ns: u64,
    /// Standard deviation of the nanoseconds.
    pub stddev_ns: u64,
    /// Mean tokens per second.
    pub avg_ts: f64,
    /// Standard deviation of tokens per second.
    pub stddev_ts: f64,
    /// Nanoseconds of every repetition.
    pub samples_ns: Vec<u64>,
    /// Tokens per second of every repetition.
    pub samples_ts: Vec<f64>,
    /// Adapter driver.
    pub driver: String,
    /// Adapter type (discrete, integrated, CPU …).
    pub device_type: String,
    /// Optional GPU features in use.
    pub features: String,
    /// Mean time to first token (prefill + one decode step), ms.
    pub ttft_ms: f64,
    /// Time to open the model and upload its weights, ms.
    pub load_ms: f64,
    /// Peak resident memory of the process so far.
    pub peak_rss_bytes: u64,
    /// GPU memory held by weights and activations.
    pub gpu_buffer_bytes: u64,
    /// Power, energy per token, temperature and throttling over the test (null with a reason
    /// where the device does not say).
    #[serde(flatten)]
    pub telemetry: crate::telemetry::Telemetry,
    /// Per-op profile of a decode step (tg records, with `--profile`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<super::Profile>,
}

impl Record {
    /// llama-bench's test name: `pp128`, `tg64`.
    pub fn test(&self) -> String {
        if self.n_gen > 0 {
            format!("tg{}", self.n_gen)
        } else {
            format!("pp{}", self.n_prompt)
        }
    }
}

fn mib(b: u64) -> String {
    format!("{:.2} MiB", b as f64 / (1024.0 * 1024.0))
}

/// A llama-bench style table, with Ember's extra columns.
pub fn to_markdown(records: &[Record]) -> String {
    let mut s = String::new();
    if let Some(r) = records.first() {
        s.push_str(&format!(
            "ember {} ({}), CPU: {}\n\n",
            r.build_version, r.build_commit, r.cpu_info
        ));
    }
    s.push_str("| model | size | params | backend | adapter | threads | test | t/s | ttft ms | load ms | peak RSS | GPU buffers |\n");
    s.push_str(
        "| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in records {
        s.push_str(&format!(
            "| {} | {} | {:.2} M | {} | {} | {} | {} | {:.2} ± {:.2} | {:.1} | {:.1} | {} | {} |\n",
            r.model_type,
            mib(r.model_size),
            r.model_n_params as f64 / 1e6,
            r.backends,
            r.gpu_info,
            r.n_threads,
            r.test(),
            r.avg_ts,
            r.stddev_ts,
            r.ttft_ms,
            r.load_ms,
            mib(r.peak_rss_bytes),
            mib(r.gpu_buffer_bytes),
        ));
    }
    for r in records {
        if let Some(p) = &r.profile {
            s.push_str(&profile_table(r, p));
        }
    }
    s
}

/// The markdown of one decode-step profile: ops slowest first, then the host's part of a GPU
/// step and whatever no op accounts for.
fn profile_table(r: &Record, p: &super::Profile) -> String {
    let mut s = format!(
        "\nProfile of a decode step on {} ({}): {:.2} ms per token ({:.2} ms while profiled",
        r.backends, r.gpu_info, p.step_ms, p.profiled_step_ms
    );
    if let Some(d) = p.device_ms {
        s.push_str(&format!(", {d:.2} ms of it on the device"));
    }
    s.push_str(&format!(
        "); ops cover {:.1}% of the profiled step. The ops must move {:.1} MB per token: {:.1} GB/s \
         over the step, to set against the device's memory bandwidth\n\n\
         | op | ms/token | share of step | MB/token | GB/s |\n| --- | ---: | ---: | ---: | ---: |\n",
        p.covered * 100.0,
        p.mb_per_token,
        p.gb_per_s()
    ));
    let mut row = |name: &str, ms: f64, traffic: Option<(f64, f64)>| {
        let (mb, gbs) = traffic.map_or((String::new(), String::new()), |(mb, gbs)| {
            (format!("{mb:.2}"), format!("{gbs:.1}"))
        });
        s.push_str(&format!(
            "| {name} | {ms:.3} | {:.1}% | {mb} | {gbs} |\n",
            100.0 * ms / p.profiled_step_ms
        ));
    };
    for o in &p.ops {
        row(&o.op, o.ms_per_token, Some((o.mb_per_token, o.gb_per_s)));
    }
    let rest = p.profiled_step_ms * (1.0 - p.covered);
    if let Some(host) = p.host_ms() {
        row("(host: recording, submission, read-back)", host, None);
        // What neither the kernels nor the host account for (the clocks differ slightly).
        let unaccounted = rest - host;
        if unaccounted.abs() >= 0.0005 * p.profiled_step_ms {
            row("(unaccounted)", unaccounted, None);
        }
    } else if rest.abs() >= 0.0005 * p.profiled_step_ms {
        row("(outside ops)", rest, None);
    }
    s
}

fn csv_field(v: &serde_json::Value) -> String {
    let text = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// CSV with the JSON's fields as columns, in the same order.
pub fn to_csv(records: &[Record]) -> String {
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = records
        .iter()
        .filter_map(|r| match serde_json::to_value(r) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            _ => None,
        })
        .collect();
    let Some(first) = rows.first() else {
        return String::new();
    };
    let header: Vec<&String> = first.keys().collect();
    let mut s = header
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(",");
    s.push('\n');
    for row in &rows {
        s.push_str(
            &header
                .iter()
                .map(|k| csv_field(&row[k.as_str()]))
                .collect::<Vec<_>>()
                .join(","),
        );
        s.push('\n');
    }
    s
}
