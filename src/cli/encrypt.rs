//! `ember encrypt IN OUT --key-file K`: a model encrypted at rest (see
//! `ember::format::encrypted`), run later with `--key-file K` or `EMBER_KEY_FILE=K`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use ember::format::encrypted::{self, Key};

/// Arguments of `ember encrypt`.
#[derive(Args, Debug)]
pub struct EncryptArgs {
    /// The model file to encrypt (GGUF).
    input: PathBuf,
    /// The encrypted file to write (replaced atomically).
    output: PathBuf,
    /// The key: 32 bytes or 64 hexadecimal digits.
    #[arg(long = "key-file")]
    key_file: PathBuf,
    /// Make a new random key and write it to --key-file first (which must not exist).
    #[arg(long = "new-key")]
    new_key: bool,
}

/// Encrypts the model, making the key first if asked.
pub fn run(args: &EncryptArgs) -> Result<()> {
    if encrypted::is_encrypted(&args.input) {
        bail!("{} is already encrypted", args.input.display());
    }
    // A model that does not load is not worth protecting: it is checked before its bytes are
    // sealed (and the plaintext stays where it was).
    ember::ModelFile::open(&args.input)?;
    let key = if args.new_key {
        let key = Key::generate()?;
        write_new_key(&args.key_file, &key)?;
        key
    } else {
        Key::from_file(&args.key_file)?
    };
    let done = encrypted::encrypt_file(&args.input, &args.output, &key)?;
    eprintln!(
        "encrypted {} ({} bytes, {} chunks) into {}{}",
        args.input.display(),
        done.plain,
        done.chunks,
        args.output.display(),
        if args.new_key {
            format!("; the key is in {}", args.key_file.display())
        } else {
            String::new()
        }
    );
    Ok(())
}

/// Writes `key` as hex to a new file readable by its owner only.
fn write_new_key(path: &PathBuf, key: &Key) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| {
        format!(
            "cannot create the key file {} (it must not exist)",
            path.display()
        )
    })?;
    writeln!(file, "{}", key.to_hex()).with_context(|| format!("writing {}", path.display()))
}
