//! `ember imatrix -m MODEL -f TEXT -o imatrix.gguf`: measure a model's importance matrix over a
//! calibration text, in llama.cpp's GGUF imatrix format (for `ember quantize --imatrix` and
//! `llama-quantize --imatrix` alike).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use super::args::{ModelArgs, PrecisionChoice};
use ember::backend::cpu::CpuBackend;
use ember::imatrix::{CollectOptions, collect, file as imatrix_file};

/// Arguments of `ember imatrix`.
#[derive(Args, Debug)]
pub struct ImatrixArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The calibration text (a UTF-8 file). Not the text you evaluate on.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Where to write the importance matrix (GGUF, written atomically).
    #[arg(short = 'o', long = "output", default_value = "imatrix.gguf")]
    output: PathBuf,
    /// Tokens per chunk; each chunk is evaluated from an empty cache.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 512)]
    chunk: usize,
    /// Evaluate at most this many chunks (default: every whole chunk of the text).
    #[arg(long)]
    chunks: Option<usize>,
    /// Also measure the output head's inputs.
    #[arg(long)]
    process_output: bool,
    /// CPU threads (0: one per core).
    #[arg(short = 't', long, default_value_t = 0)]
    threads: usize,
    /// How activations meet quantized weights in the products (the measured activations are
    /// the f32 inputs either way).
    #[arg(long, value_enum, default_value = "i16")]
    precision: PrecisionChoice,
}

/// Measures and writes the matrix.
pub fn run(args: &ImatrixArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    let file = args.model.open()?;
    let tokens = file.tokenizer.encode(&text, false)?;
    let backend = CpuBackend::with_precision(args.threads, args.precision.cpu())?;
    let options = CollectOptions {
        chunk: args.chunk,
        max_chunks: args.chunks,
        process_output: args.process_output,
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} chunks, eta {eta}")
                .expect("valid progress template"),
        );
        bar
    });
    let start = Instant::now();
    let mut m = collect(&file, backend, &tokens, &options, &mut |done, total| {
        if let Some(b) = &bar {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    m.datasets.push(args.file.display().to_string());
    imatrix_file::write(&m, &args.output)?;
    eprintln!(
        "{} chunks of {} tokens ({} of the text's {}) in {:.1} s; {} matrices measured; wrote {}",
        m.chunk_count,
        m.chunk_size,
        m.chunk_count * m.chunk_size,
        tokens.len(),
        start.elapsed().as_secs_f64(),
        m.entries.len(),
        args.output.display()
    );
    Ok(())
}
