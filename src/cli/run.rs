//! `ember run` (generate a continuation) and `ember score` (teacher-forced logits).

use std::io::Write;

use anyhow::{Result, bail};
use clap::Args;
use serde_json::json;

use super::args::{PromptedModelArgs, SamplingArgs};
use ember::sample::top_k;
use ember::session::{GenerateOptions, Session};

/// Arguments of `ember run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    inputs: PromptedModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Tokens to generate at most.
    #[arg(short = 'n', long = "n-predict", default_value_t = 256)]
    n: usize,
    /// Stop when this text appears (repeatable).
    #[arg(long = "stop")]
    stop: Vec<String>,
    #[command(flatten)]
    metrics: super::metrics_log::MetricsArgs,
    /// Print one JSON object with ids, text and timings instead of streaming text.
    #[arg(long)]
    json: bool,
}

/// Streams (or returns as JSON) a continuation of the prompt.
pub fn run(args: &RunArgs) -> Result<()> {
    let (file, prompt) = args.inputs.open()?;
    let sampler = args.sampling.config()?;
    let mut model = args.inputs.runtime.load(&file)?;
    let mut session = Session::new(model.as_mut(), &file.tokenizer);
    let opts = GenerateOptions {
        max_tokens: args.n,
        sampler,
        stop: args.stop.clone(),
    };
    let stdout = std::io::stdout();
    let streaming = !args.json;
    let on_text = |s: &str| {
        if streaming {
            let mut out = stdout.lock();
            // A closed pipe (`| head`) ends generation quietly.
            return out
                .write_all(s.as_bytes())
                .and_then(|_| out.flush())
                .is_ok();
        }
        true
    };
    let mut log = args.metrics.open()?;
    let meter = log.meter();
    let mut streamed = false;
    let g = session
        .generate(&prompt, &opts, &mut |s: &str| {
            streamed |= streaming && !s.is_empty();
            on_text(s)
        })
        .map_err(|e| {
            // The error goes on a line of its own, after the text that was streamed.
            if streamed {
                println!();
            }
            file.trace_fault(e)
        })?;
    log.write("run", &session.model().backend_name(), &g, meter)?;
    let t = &g.timings;
    if args.json {
        let v = json!({
            "prompt_ids": prompt,
            "ids": g.ids,
            "text": g.text,
            "stop_reason": format!("{:?}", g.stop_reason),
            "backend": session.model().backend_name(),
            "timings": super::metrics_log::timings_json(t),
        });
        println!("{v}");
    } else {
        println!();
        eprintln!(
            "[{}] prompt: {} tokens, {:.1} tok/s | generation: {} tokens, {:.1} tok/s | stop: {:?}",
            session.model().backend_name(),
            t.prompt_tokens,
            t.prompt_tps(),
            t.generated_tokens,
            t.generate_tps(),
            g.stop_reason
        );
    }
    Ok(())
}

/// Positions evaluated per forward call by `score`.
const SCORE_CHUNK: usize = 256;

/// Arguments of `ember score`.
#[derive(Args, Debug)]
pub struct ScoreArgs {
    #[command(flatten)]
    inputs: PromptedModelArgs,
    /// How many of the highest logits to print per position.
    #[arg(long, default_value_t = 5)]
    top: usize,
}

/// Prints `{"prompt_ids":[…],"top":[[[id,logit],…] per position]}`.
pub fn score(args: &ScoreArgs) -> Result<()> {
    if args.top == 0 {
        bail!("--top must be at least 1");
    }
    let (file, prompt) = args.inputs.open()?;
    let mut model = args.inputs.runtime.load(&file)?;
    let ctx = model.context_len();
    if prompt.is_empty() || prompt.len() > ctx {
        bail!(
            "the prompt is {} tokens; it must be 1 to {ctx} (the context)",
            prompt.len()
        );
    }
    let vocab = model.config().vocab_size;
    // In chunks, so a long prompt never holds logits for every position at once.
    let mut top: Vec<Vec<(u32, f32)>> = Vec::with_capacity(prompt.len());
    for (i, chunk) in prompt.chunks(SCORE_CHUNK).enumerate() {
        let logits = model.forward(chunk, i * SCORE_CHUNK, true)?;
        top.extend(logits.chunks_exact(vocab).map(|row| top_k(row, args.top)));
    }
    println!("{}", json!({ "prompt_ids": prompt, "top": top }));
    Ok(())
}
