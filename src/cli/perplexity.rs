//! `ember perplexity`: how well a model predicts a text, with the reference protocol.

use std::io::IsTerminal;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::args::{ModelArgs, RuntimeArgs, TextArgs};
use ember::eval::perplexity;

/// Arguments of `ember perplexity`.
#[derive(Args, Debug)]
pub struct PerplexityArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
    #[command(flatten)]
    text: TextArgs,
}

/// Runs the measurement and prints the result.
pub fn run(args: &PerplexityArgs) -> Result<()> {
    let text = args.text.read()?;
    let file = args.model.open()?;
    let tokens = file.tokenizer.encode(&text, false)?;
    let mut model = args.runtime.load(&file)?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(tokens.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} tokens, {per_sec}, eta {eta}",
            )
            .expect("valid progress template"),
        );
        bar
    });
    let result = perplexity(model.as_mut(), &tokens, args.text.window, &mut |done, _| {
        if let Some(b) = &bar {
            b.set_position(done as u64);
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if args.text.json {
        let v = json!({
            "model": file.path.display().to_string(),
            "backend": model.backend_name(),
            "ppl": result.ppl,
            "nll": result.total_nll,
            "tokens": result.tokens,
            "scored": result.scored,
            "window": args.text.window,
            "seconds": result.elapsed.as_secs_f64(),
            "tokens_per_s": result.tokens_per_second(),
        });
        println!("{v}");
    } else {
        println!(
            "perplexity {:.4} over {} scored tokens ({} tokens, window {}) on {}: {:.1} tokens/s",
            result.ppl,
            result.scored,
            result.tokens,
            args.text.window,
            model.backend_name(),
            result.tokens_per_second()
        );
    }
    Ok(())
}
