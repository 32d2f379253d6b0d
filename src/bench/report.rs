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
        let Some(p) = &r.profile else { continue };
        let base = p.device_ms.unwrap_or(p.step_ms);
        let of = if p.device_ms.is_some() {
            "device time"
        } else {
            "wall time"
        };
        s.push_str(&format!(
            "\nProfile of a decode step on {} ({}): {:.2} ms per token",
            r.backends, r.gpu_info, p.step_ms
        ));
        if let Some(d) = p.device_ms {
            s.push_str(&format!(
                ", {d:.2} ms of it on the device (the rest: recording, submission, read-back)"
            ));
        }
        s.push_str(&format!("; ops cover {:.0}% of the {of}\n\n| op | ms/token | share of {of} |\n| --- | ---: | ---: |\n", p.covered * 100.0));
        for o in &p.ops {
            s.push_str(&format!(
                "| {} | {:.3} | {:.1}% |\n",
                o.op,
                o.ms_per_token,
                o.share * 100.0
            ));
        }
        if p.covered < 1.0 {
            let rest = 1.0 - p.covered;
            s.push_str(&format!(
                "| (between ops) | {:.3} | {:.1}% |\n",
                base * rest,
                rest * 100.0
            ));
        }
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
