//! `ember quantize IN OUT --type TYPE`: re-encode a model into a GGUF file.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use ember::ModelFile;
use ember::quant::GgmlType;
use ember::quantize::{Preset, QuantizeOptions, WRITABLE, quantize};

/// Arguments of `ember quantize`.
#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// Source: a GGUF file or a Hugging Face folder (safetensors + config.json + tokenizer.json).
    input: PathBuf,
    /// Destination GGUF file (written atomically).
    output: PathBuf,
    /// Target type.
    #[arg(long = "type", help = format!("Target type: one of {WRITABLE}"))]
    ty: String,
    /// Type for the token embedding (overrides the preset).
    #[arg(long)]
    token_embedding_type: Option<String>,
    /// Type for the output head (overrides the preset).
    #[arg(long)]
    output_type: Option<String>,
    /// A type for the tensors whose names contain PATTERN (repeatable; the first match wins,
    /// before the preset's rules), as llama-quantize's --tensor-type: `ffn_down=q8_0`.
    #[arg(long = "tensor-type", value_name = "PATTERN=TYPE")]
    tensor_type: Vec<String>,
    /// An importance matrix (`ember imatrix`, or llama.cpp's GGUF or .dat): each weight's
    /// rounding error is weighted by its column's importance, as `llama-quantize --imatrix`.
    #[arg(long)]
    imatrix: Option<PathBuf>,
}

/// A tensor type Ember writes, by llama.cpp's name.
fn type_named(name: &str) -> Result<GgmlType> {
    match GgmlType::from_name(name) {
        Some(t) => Ok(t),
        None => bail!("{name} is not a tensor type (F32, F16, Q4_K, IQ2_XS, ...)"),
    }
}

/// The type an optional flag names.
fn tensor_type(s: &Option<String>) -> Result<Option<GgmlType>> {
    s.as_deref().map(type_named).transpose()
}

/// Runs the conversion with a progress bar on a terminal.
pub fn run(args: &QuantizeArgs) -> Result<()> {
    let opts = QuantizeOptions {
        preset: Preset::parse(&args.ty)?,
        token_embd_type: tensor_type(&args.token_embedding_type)?,
        output_type: tensor_type(&args.output_type)?,
        tensor_types: args
            .tensor_type
            .iter()
            .map(|rule| match rule.split_once('=') {
                Some((pattern, ty)) if !pattern.is_empty() => {
                    Ok((pattern.to_string(), type_named(ty)?))
                }
                _ => bail!("--tensor-type {rule}: expected PATTERN=TYPE, e.g. ffn_down=q8_0"),
            })
            .collect::<Result<_>>()?,
        imatrix: args
            .imatrix
            .as_deref()
            .map(ember::imatrix::file::read)
            .transpose()?,
    };
    if args.output.is_dir() {
        bail!(
            "{} is a folder; give the output file's path",
            args.output.display()
        );
    }
    if args.output.exists()
        && std::fs::canonicalize(&args.output)? == std::fs::canonicalize(&args.input)?
    {
        bail!("the output would overwrite the input");
    }
    let input = ModelFile::open(&args.input)?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(input.weights.all().len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} tensors, eta {eta}")
                .expect("valid progress template"),
        );
        bar
    });
    let started = std::time::Instant::now();
    let report = quantize(&input, &args.output, &opts, &mut |done, _| {
        if let Some(b) = &bar {
            b.set_position(done as u64);
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut by_type = std::collections::BTreeMap::new();
    for (_, t) in &report.tensors {
        *by_type.entry(t.name()).or_insert(0usize) += 1;
    }
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "wrote {} in {:.1}s: {} tensors {by_type:?}, {:.2} MiB -> {:.2} MiB of weights",
        args.output.display(),
        started.elapsed().as_secs_f64(),
        report.tensors.len(),
        mib(report.bytes_in),
        mib(report.bytes_out)
    );
    Ok(())
}
