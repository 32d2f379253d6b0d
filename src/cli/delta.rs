//! `ember diff OLD NEW -o PATCH` and `ember patch OLD PATCH -o NEW` (see `ember::delta`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

/// Arguments of `ember diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The model the devices have (GGUF).
    old: PathBuf,
    /// The model they should have (GGUF).
    new: PathBuf,
    /// The patch to write.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
}

/// Arguments of `ember patch`.
#[derive(Args, Debug)]
pub struct PatchArgs {
    /// The model this device has.
    old: PathBuf,
    /// A patch made by `ember diff` from this model.
    patch: PathBuf,
    /// The model to write (may be OLD itself: it is replaced atomically).
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
}

/// Writes the patch and says what it holds.
pub fn diff(args: &DiffArgs) -> Result<()> {
    let r = ember::delta::diff(&args.old, &args.new, &args.output)?;
    let new = std::fs::metadata(&args.new).map_or(0, |m| m.len());
    eprintln!(
        "{}: {} bytes ({:.2}% of {}): {} tensors copied, {} stored as a difference, {} stored whole",
        args.output.display(),
        r.patch_bytes,
        100.0 * r.patch_bytes as f64 / new.max(1) as f64,
        args.new.display(),
        r.copied,
        r.xored,
        r.stored
    );
    Ok(())
}

/// Applies the patch and says what it wrote.
pub fn patch(args: &PatchArgs) -> Result<()> {
    let r = ember::delta::patch(&args.old, &args.patch, &args.output)?;
    eprintln!(
        "{}: {} bytes ({} copied from {}), SHA-256 {} as the patch says",
        args.output.display(),
        r.new_bytes,
        r.copied_bytes,
        args.old.display(),
        r.new_sha256
    );
    Ok(())
}
