//! What `ember serve` counts: requests, tokens, queue and slot use, speeds and the time to first
//! token, served as Prometheus text at `/metrics`, and one JSON line per finished request in
//! `--metrics-file`.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::engine::Summary;
use crate::error::{Error, Result};
use crate::session::StopReason;

/// Upper bounds (seconds) of the time-to-first-token histogram's buckets.
const TTFT_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// A finished answer as the metrics see it.
#[derive(Clone, Debug)]
pub struct Finished {
    /// Prompt tokens, of them reused from a slot's cache, and generated tokens.
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV entries were reused.
    pub cached_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Seconds from arrival to the first token.
    pub first_token: f64,
    /// Seconds evaluating the prompt, and decoding.
    pub prompt_seconds: f64,
    /// Seconds from the first to the last token.
    pub decode_seconds: f64,
    /// OpenAI's finish reason.
    pub finish_reason: &'static str,
}

impl From<&Summary> for Finished {
    fn from(s: &Summary) -> Finished {
        Finished {
            prompt_tokens: s.prompt_tokens,
            cached_tokens: s.cached_tokens,
            completion_tokens: s.completion_tokens,
            first_token: s.first_token.as_secs_f64(),
            prompt_seconds: s.prompt_time.as_secs_f64(),
            decode_seconds: s.decode_time.as_secs_f64(),
            finish_reason: finish_reason(s.reason),
        }
    }
}

impl Finished {
    /// Prompt tokens evaluated (not reused) per second.
    pub fn prompt_tps(&self) -> f64 {
        rate(
            (self.prompt_tokens - self.cached_tokens) as f64,
            self.prompt_seconds,
        )
    }

    /// Tokens per second after the first.
    pub fn decode_tps(&self) -> f64 {
        rate(
            self.completion_tokens.saturating_sub(1) as f64,
            self.decode_seconds,
        )
    }
}

fn rate(n: f64, secs: f64) -> f64 {
    if secs > 0.0 { n / secs } else { 0.0 }
}

/// OpenAI's `finish_reason` for how an answer ended.
pub fn finish_reason(r: StopReason) -> &'static str {
    match r {
        StopReason::EndOfSequence | StopReason::StopString => "stop",
        StopReason::MaxTokens | StopReason::ContextFull => "length",
        StopReason::Cancelled => "cancelled",
    }
}

#[derive(Default)]
struct State {
    backend: String,
    finished: u64,
    failed: u64,
    cancelled: u64,
    rejected: u64,
    bad_requests: u64,
    prompt_tokens: u64,
    cached_tokens: u64,
    completion_tokens: u64,
    prompt_seconds: f64,
    decode_seconds: f64,
    last_prompt_tps: f64,
    last_decode_tps: f64,
    ttft_counts: [u64; TTFT_BUCKETS.len()],
    ttft_sum: f64,
    slots: usize,
    busy: usize,
    waiting: usize,
    kv_used: usize,
    kv_capacity: usize,
}

/// The server's counters, shared by the engine and the HTTP handlers.
pub struct Metrics {
    state: Mutex<State>,
    file: Option<Mutex<std::fs::File>>,
}

impl Metrics {
    /// Counters from zero; with `file`, finished requests are appended to it as JSON lines.
    pub fn new(file: Option<&Path>) -> Result<Metrics> {
        let file = file
            .map(|p| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| Error::io(p, e))
            })
            .transpose()?
            .map(Mutex::new);
        Ok(Metrics {
            state: Mutex::default(),
            file,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A panic elsewhere while holding the lock leaves plain counters: keep counting.
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    }

    /// Names the backend (once the model is loaded).
    pub fn set_backend(&self, name: &str) {
        self.with(|s| s.backend = name.to_string());
    }

    /// Slots and the KV-cache positions they hold in all.
    pub fn set_capacity(&self, slots: usize, kv_capacity: usize) {
        self.with(|s| {
            s.slots = slots;
            s.kv_capacity = kv_capacity;
        });
    }

    /// Busy slots, jobs waiting for one, and KV-cache positions in use.
    pub fn set_load(&self, busy: usize, waiting: usize, kv_used: usize) {
        self.with(|s| {
            s.busy = busy;
            s.waiting = waiting;
            s.kv_used = kv_used;
        });
    }

    /// Counts a finished answer, and writes its line to the metrics file.
    pub fn finished(&self, f: &Finished) {
        let backend = self.with(|s| {
            s.finished += 1;
            s.prompt_tokens += f.prompt_tokens as u64;
            s.cached_tokens += f.cached_tokens as u64;
            s.completion_tokens += f.completion_tokens as u64;
            s.prompt_seconds += f.prompt_seconds;
            s.decode_seconds += f.decode_seconds;
            s.last_prompt_tps = f.prompt_tps();
            s.last_decode_tps = f.decode_tps();
            for (count, &le) in s.ttft_counts.iter_mut().zip(&TTFT_BUCKETS) {
                if f.first_token <= le {
                    *count += 1;
                }
            }
            s.ttft_sum += f.first_token;
            s.backend.clone()
        });
        if let Some(file) = &self.file {
            let time = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let line = json!({
                "time": time,
                "prompt_tokens": f.prompt_tokens,
                "cached_tokens": f.cached_tokens,
                "completion_tokens": f.completion_tokens,
                "time_to_first_token_s": f.first_token,
                "prompt_tokens_per_s": f.prompt_tps(),
                "decode_tokens_per_s": f.decode_tps(),
                "backend": backend,
                "finish_reason": f.finish_reason,
            });
            let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
            // Telemetry must not take the server down: a full disk loses lines, not answers.
            if let Err(e) = writeln!(file, "{line}") {
                log::warn!("metrics file: {e}");
            }
        }
    }

    /// Counts an answer whose client went away.
    pub fn cancelled(&self) {
        self.with(|s| s.cancelled += 1);
    }

    /// Counts an answer that failed in the model.
    pub fn failed(&self) {
        self.with(|s| s.failed += 1);
    }

    /// Counts a request turned away because the queue was full.
    pub fn rejected(&self) {
        self.with(|s| s.rejected += 1);
    }

    /// Counts a request refused as invalid (4xx).
    pub fn bad_request(&self) {
        self.with(|s| s.bad_requests += 1);
    }

    /// The counters in Prometheus' text format.
    pub fn render(&self) -> String {
        self.with(|s| {
            let mut out = String::new();
            let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
                out.push_str(&format!(
                    "# HELP ember_{name} {help}\n# TYPE ember_{name} {kind}\n"
                ));
                for (labels, v) in samples {
                    out.push_str(&format!("ember_{name}{labels} {v}\n"));
                }
            };
            metric(
                "requests_total",
                "counter",
                "Completion requests by outcome.",
                &[
                    ("finished", s.finished),
                    ("failed", s.failed),
                    ("cancelled", s.cancelled),
                    ("rejected", s.rejected),
                    ("invalid", s.bad_requests),
                ]
                .map(|(o, n)| (format!("{{outcome=\"{o}\"}}"), n as f64)),
            );
            // (name, type, help, value): one line each, as the exposition format lists them.
            #[rustfmt::skip]
            let plain: [(&str, &str, &str, f64); 13] = [
                ("prompt_tokens_total", "counter", "Prompt tokens of finished requests.", s.prompt_tokens as f64),
                ("prompt_tokens_cached_total", "counter", "Prompt tokens reused from a slot's KV cache.", s.cached_tokens as f64),
                ("completion_tokens_total", "counter", "Tokens generated for finished requests.", s.completion_tokens as f64),
                ("prompt_seconds_total", "counter", "Seconds spent evaluating prompts.", s.prompt_seconds),
                ("decode_seconds_total", "counter", "Seconds from first to last token, summed over requests.", s.decode_seconds),
                ("prompt_tokens_per_second", "gauge", "Prompt evaluation speed of the last finished request.", s.last_prompt_tps),
                ("decode_tokens_per_second", "gauge", "Decode speed of the last finished request.", s.last_decode_tps),
                ("queue_depth", "gauge", "Requests waiting for a slot.", s.waiting as f64),
                ("slots_busy", "gauge", "Slots generating an answer.", s.busy as f64),
                ("slots", "gauge", "Slots (--parallel).", s.slots as f64),
                ("kv_cache_used_tokens", "gauge", "KV-cache positions holding tokens, over all slots.", s.kv_used as f64),
                ("kv_cache_capacity_tokens", "gauge", "KV-cache positions, over all slots.", s.kv_capacity as f64),
                ("backend_info", "gauge", "The backend running the model (in the label).", 1.0),
            ];
            for (name, kind, help, v) in plain {
                let labels = if name == "backend_info" {
                    format!("{{backend=\"{}\"}}", s.backend.replace('"', "'"))
                } else {
                    String::new()
                };
                metric(name, kind, help, &[(labels, v)]);
            }
            let mut buckets: Vec<(String, f64)> = TTFT_BUCKETS
                .iter()
                .zip(&s.ttft_counts)
                .map(|(le, &n)| (format!("_bucket{{le=\"{le}\"}}"), n as f64))
                .collect();
            buckets.push(("_bucket{le=\"+Inf\"}".into(), s.finished as f64));
            buckets.push(("_sum".into(), s.ttft_sum));
            buckets.push(("_count".into(), s.finished as f64));
            metric(
                "time_to_first_token_seconds",
                "histogram",
                "Seconds from a request's arrival to its first token.",
                &buckets,
            );
            out
        })
    }
}
