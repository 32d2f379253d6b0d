//! `ember serve`: the OpenAI-compatible HTTP server (see `ember::server`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;

use super::args::{ModelArgs, RuntimeArgs};
use ember::server::{self, ServerConfig};

/// Arguments of `ember serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Backend, threads, cache type and context (`--ctx-size`: per slot; 0: the model's own).
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Address to listen on; other machines can connect only if this is not a loopback
    /// address (e.g. 0.0.0.0).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port (0: any free port; the one chosen is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Sequences decoded together, each with a KV cache of its own.
    #[arg(long, short = 'P', visible_alias = "np", default_value_t = 1)]
    parallel: usize,
    /// Requests that may wait for a free slot; more get 503 with Retry-After.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// API key: `/v1` requests need `Authorization: Bearer KEY`.
    #[arg(long, conflicts_with = "api_key_file")]
    api_key: Option<String>,
    /// Read the API key from this file (first line), keeping it out of the process list.
    #[arg(long)]
    api_key_file: Option<PathBuf>,
    /// Append one JSON line per finished request to this file.
    #[arg(long)]
    metrics_file: Option<PathBuf>,
    /// Allow browser pages from this origin (`*`: any) to call the API.
    #[arg(long)]
    cors: Option<String>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    body_limit: usize,
    /// The model's name in the API (default: the file name without extension).
    #[arg(long)]
    alias: Option<String>,
}

/// Starts the server and runs it until Ctrl-C or SIGTERM.
pub fn run(args: &ServeArgs) -> Result<()> {
    if args.parallel == 0 || args.parallel > 64 {
        bail!("--parallel must be between 1 and 64");
    }
    if args.queue == 0 {
        bail!("--queue must be at least 1");
    }
    let bad_origin = |o: &str| {
        o != "*"
            && (!(o.starts_with("http://") || o.starts_with("https://"))
                || o.contains(char::is_whitespace))
    };
    if args.cors.as_deref().is_some_and(bad_origin) {
        bail!("--cors takes an origin such as https://app.example.com, or *");
    }
    let api_key = match (&args.api_key, &args.api_key_file) {
        (Some(k), _) => Some(k.clone()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the API key file {}", path.display()))?;
            Some(text.lines().next().unwrap_or("").trim().to_string())
        }
        (None, None) => None,
    };
    if api_key.as_deref() == Some("") {
        bail!("the API key is empty");
    }
    let file = Arc::new(args.model.open()?);
    let ctx = match args.runtime.ctx {
        0 => file.config.context_length,
        c => c,
    };
    let model_id = args.alias.clone().unwrap_or_else(|| {
        file.path
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned())
    });
    let config = ServerConfig {
        host: args.host.clone(),
        port: args.port,
        parallel: args.parallel,
        ctx,
        queue: args.queue,
        api_key,
        metrics_file: args.metrics_file.clone(),
        cors: args.cors.clone(),
        body_limit: args.body_limit,
        model_id,
    };
    let runtime = args.runtime.clone();
    let loading = file.clone();
    let load: server::Loader = Box::new(move |slots| {
        runtime
            .load_slots(&loading, slots)
            .map_err(|e| ember::Error::Backend(format!("{e:#}")))
    });
    server::serve(file, config, load)?;
    Ok(())
}
