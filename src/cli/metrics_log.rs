//! `--metrics-file F.jsonl` of `ember run` and `ember chat`: one JSON line per answer with its
//! tokens, timings and what it cost in power and heat (`ember::telemetry`), for devices on a
//! battery or without a fan, where tokens/s alone does not say whether a model fits.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ember::session::{Generation, Timings};
use ember::telemetry::{Meter, Telemetry};
use serde_json::{Value, json};

/// The `--metrics-file` flag.
#[derive(Args, Debug, Clone)]
pub struct MetricsArgs {
    /// Append one JSON line per answer (tokens, timings, watts, joules per token, temperature,
    /// throttling) to this file.
    #[arg(long)]
    metrics_file: Option<PathBuf>,
}

/// An open metrics file, or none.
pub struct MetricsLog {
    file: Option<(PathBuf, std::fs::File)>,
}

impl MetricsArgs {
    /// Opens the file for appending (created if missing), if one was given.
    pub fn open(&self) -> Result<MetricsLog> {
        let file = match &self.metrics_file {
            Some(path) => Some((
                path.clone(),
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open the metrics file {}", path.display()))?,
            )),
            None => None,
        };
        Ok(MetricsLog { file })
    }
}

impl MetricsLog {
    /// A meter for the next answer, when there is a file to write it to.
    pub fn meter(&self) -> Option<Meter> {
        self.file.as_ref().map(|_| Meter::start())
    }

    /// Writes the line of an answer of `command` on `backend`, measured by `meter`.
    pub fn write(
        &mut self,
        command: &str,
        backend: &str,
        g: &Generation,
        meter: Option<Meter>,
    ) -> Result<()> {
        let (Some((path, file)), Some(meter)) = (self.file.as_mut(), meter) else {
            return Ok(());
        };
        let telemetry: Telemetry = meter.stop(g.timings.generated_tokens);
        let mut line = json!({
            "time": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "command": command,
            "backend": backend,
            "stop_reason": format!("{:?}", g.stop_reason),
        });
        if let (Some(map), Value::Object(times), Ok(Value::Object(power))) = (
            line.as_object_mut(),
            timings_json(&g.timings),
            serde_json::to_value(&telemetry),
        ) {
            map.extend(times);
            map.extend(power);
        }
        writeln!(file, "{line}")
            .with_context(|| format!("cannot write the metrics file {}", path.display()))
    }
}

/// The timings of an answer as JSON (`ember run --json`'s `timings`, and the metrics lines).
pub fn timings_json(t: &Timings) -> Value {
    json!({
        "prompt_tokens": t.prompt_tokens,
        "prompt_ms": t.prompt.as_secs_f64() * 1e3,
        "prompt_tokens_per_s": t.prompt_tps(),
        "generated_tokens": t.generated_tokens,
        "generate_ms": t.generate.as_secs_f64() * 1e3,
        "generate_tokens_per_s": t.generate_tps(),
        "ttft_ms": t.first_token.as_secs_f64() * 1e3,
    })
}
