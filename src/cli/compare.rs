//! `ember compare A B -f TEXT`: the quality gate for a re-quantized model or a faster setting —
//! KL divergence of B's next-token distributions from A's, top-1 agreement and both perplexities
//! (llama.cpp's `llama-perplexity --kl-divergence` is the anchor).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use serde_json::json;

use super::args::{PrecisionChoice, RuntimeArgs, TextArgs};
use ember::ModelFile;
use ember::eval::compare;

/// Arguments of `ember compare`.
#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Reference model A (GGUF file or Hugging Face folder).
    a: PathBuf,
    /// Model B (default: A again, under B's settings).
    b: Option<PathBuf>,
    #[command(flatten)]
    text: TextArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// CPU precision for A (default: --precision).
    #[arg(long, value_enum)]
    precision_a: Option<PrecisionChoice>,
    /// CPU precision for B (default: --precision).
    #[arg(long, value_enum)]
    precision_b: Option<PrecisionChoice>,
}

/// Runs both models over the text and prints the comparison.
pub fn run(args: &CompareArgs) -> Result<()> {
    let text = args.text.read()?;
    let path_b = args.b.clone().unwrap_or_else(|| args.a.clone());
    let (fa, fb) = (ModelFile::open(&args.a)?, ModelFile::open(&path_b)?);
    let tokens = fa.tokenizer.encode(&text, false)?;
    if fb.config.vocab_size != fa.config.vocab_size || fb.tokenizer.encode(&text, false)? != tokens
    {
        bail!(
            "{} and {} do not share a vocabulary (they tokenize the text differently): their predictions cannot be compared",
            args.a.display(),
            path_b.display()
        );
    }
    let load = |f: &ModelFile, p: Option<PrecisionChoice>| {
        let mut rt = args.runtime.clone();
        rt.precision = p.unwrap_or(rt.precision);
        rt.load(f)
    };
    let mut ma = load(&fa, args.precision_a)?;
    let mut mb = load(&fb, args.precision_b)?;
    let c = compare(ma.as_mut(), mb.as_mut(), &tokens, args.text.window)?;
    let label = |p: &PathBuf, pr: Option<PrecisionChoice>| {
        let pr = pr.unwrap_or(args.runtime.precision);
        let name = pr.to_possible_value().expect("no skipped values");
        format!("{} ({})", p.display(), name.get_name())
    };
    let (la, lb) = (
        label(&args.a, args.precision_a),
        label(&path_b, args.precision_b),
    );
    if args.text.json {
        let v = json!({
            "a": la, "b": lb, "backend_a": ma.backend_name(), "backend_b": mb.backend_name(),
            "tokens": tokens.len(), "window": args.text.window, "positions": c.positions,
            "mean_kld": c.mean_kld, "max_kld": c.max_kld, "p99_kld": c.p99_kld,
            "top1_agreement": c.top1_agreement, "ppl_a": c.ppl_a, "ppl_b": c.ppl_b,
        });
        println!("{v}");
    } else {
        println!("A: {la} on {}", ma.backend_name());
        println!("B: {lb} on {}", mb.backend_name());
        println!(
            "{} positions ({} tokens, window {})",
            c.positions,
            tokens.len(),
            args.text.window
        );
        println!(
            "KL divergence: mean {:.6}  p99 {:.6}  max {:.6}",
            c.mean_kld, c.p99_kld, c.max_kld
        );
        println!("top-1 agreement: {:.2}%", 100.0 * c.top1_agreement);
        println!(
            "perplexity: A {:.4}  B {:.4}  ({:+.3}%)",
            c.ppl_a,
            c.ppl_b,
            100.0 * (c.ppl_b / c.ppl_a - 1.0)
        );
    }
    Ok(())
}
