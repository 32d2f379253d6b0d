//! Encrypted model files at rest: XChaCha20-Poly1305 in independently authenticated chunks, so
//! a device decrypts as it loads, in memory, and a wrong key or one changed byte is caught
//! (naming the chunk) before any weight is used. What it guards against: a copied file or a
//! pulled SD card without the key. What it does not: anyone who can read the process's memory
//! or the key file on the device (root).
//!
//! Layout (little-endian):
//!
//! ```text
//! header  "EMBERENC" | version u32 = 1 | chunk bytes u32 | plaintext bytes u64 | salt [16]
//! chunks  ciphertext of chunk i (chunk bytes, the last one shorter) | Poly1305 tag [16]
//! ```
//!
//! Chunk `i` is sealed with the nonce `salt ‖ i` (u64) and, as associated data, the whole header
//! and one byte saying whether it is the last chunk: chunks cannot be reordered, dropped from
//! the end, or moved between files, and the header cannot be edited.

use std::io::{Read, Write};
use std::path::Path;

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};

use crate::error::{Error, Result};

/// The first bytes of an encrypted model.
pub const MAGIC: &[u8; 8] = b"EMBERENC";
const VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 4 + 8 + 16;
const TAG: usize = 16;
/// Plaintext bytes per chunk written by [`encrypt_file`].
pub const CHUNK: usize = 1 << 20;

/// A 256-bit key.
pub struct Key([u8; 32]);

impl Key {
    /// Reads a key file: 32 raw bytes, or 64 hexadecimal digits (a trailing newline allowed).
    pub fn from_file(path: &Path) -> Result<Key> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = || {
            Error::Invalid(format!(
                "{} is not a key: it must hold 32 bytes, or 64 hexadecimal digits (make one with `ember encrypt --new-key FILE`)",
                path.display()
            ))
        };
        if let Ok(raw) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(Key(raw));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| bad())?.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Key(key))
    }

    /// A new random key.
    pub fn generate() -> Result<Key> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|e| Error::Invalid(format!("no random numbers from the system: {e}")))?;
        Ok(Key(key))
    }

    /// The key as 64 hexadecimal digits (what a key file holds).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }
}

/// Whether the file at `path` is an encrypted model (starts with [`MAGIC`]).
pub fn is_encrypted(path: &Path) -> bool {
    let mut start = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut start))
        .is_ok_and(|_| &start == MAGIC)
}

/// The plaintext length of chunk `i` of `plain` bytes cut in `chunk`s, and whether it is the last.
fn chunk_len(plain: u64, chunk: usize, i: u64) -> (usize, bool) {
    let left = plain - i * chunk as u64;
    let len = left.min(chunk as u64) as usize;
    (len, left <= chunk as u64)
}

fn nonce(salt: &[u8], index: u64) -> XNonce {
    let mut n = [0u8; 24];
    n[..16].copy_from_slice(salt);
    n[16..].copy_from_slice(&index.to_le_bytes());
    n.into()
}

fn associated(header: &[u8], last: bool) -> Vec<u8> {
    let mut ad = header.to_vec();
    ad.push(u8::from(last));
    ad
}

/// The plaintext of the encrypted model at `path`, decrypted in memory with `key`.
pub fn decrypt_file(path: &Path, key: &Key) -> Result<Vec<u8>> {
    let name = path.display();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: read-only; the bytes are authenticated before use, so a file changed while this
    // runs fails a chunk's tag rather than giving wrong weights.
    let data = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let header = data
        .get(..HEADER)
        .filter(|h| h.starts_with(MAGIC))
        .ok_or_else(|| Error::format(format!("{name} is not an encrypted model")))?;
    let field = |at: usize, len: usize| &header[at..at + len];
    let version = u32::from_le_bytes(field(8, 4).try_into().unwrap_or_default());
    if version != VERSION {
        return Err(Error::Unsupported(format!(
            "{name}: encrypted-model version {version} (1 is supported)"
        )));
    }
    let chunk = u32::from_le_bytes(field(12, 4).try_into().unwrap_or_default()) as usize;
    let plain = u64::from_le_bytes(field(16, 8).try_into().unwrap_or_default());
    let salt = field(24, 16);
    let damaged = |what: String| Error::format(format!("{name}: {what}"));
    if chunk == 0 || plain == 0 {
        return Err(damaged("the header is damaged".into()));
    }
    let chunks = plain.div_ceil(chunk as u64);
    let expected = (HEADER as u64)
        .checked_add(plain)
        .and_then(|n| n.checked_add(chunks.checked_mul(TAG as u64)?));
    if expected != Some(data.len() as u64) {
        return Err(damaged(format!(
            "{} bytes, but its header describes {} (truncated, or the header is damaged)",
            data.len(),
            expected.map_or("an impossible size".to_string(), |n| format!("{n}"))
        )));
    }
    let cipher = key.cipher();
    let mut out = Vec::with_capacity(plain as usize);
    let mut at = HEADER;
    for i in 0..chunks {
        let (len, last) = chunk_len(plain, chunk, i);
        let start = out.len();
        out.extend_from_slice(&data[at..at + len]);
        let tag = Tag::from_slice(&data[at + len..at + len + TAG]);
        cipher
            .decrypt_in_place_detached(&nonce(salt, i), &associated(header, last), &mut out[start..], tag)
            .map_err(|_| {
                Error::Invalid(if i == 0 {
                    format!("{name}: chunk 0 of {chunks} failed authentication: the key is wrong, or the file is damaged")
                } else {
                    format!("{name}: chunk {i} of {chunks} failed authentication: the file is damaged (the key is right: the chunks before it decrypted)")
                })
            })?;
        at += len + TAG;
    }
    Ok(out)
}

/// What [`encrypt_file`] wrote.
pub struct Encrypted {
    /// Plaintext bytes.
    pub plain: u64,
    /// Chunks.
    pub chunks: u64,
}

/// Encrypts the file `input` into `output` with `key`, a chunk at a time (memory stays at one
/// chunk). The result is written beside `output` and renamed over it once complete, so no
/// half-written file is ever left at `output`; the plaintext is never written anywhere.
pub fn encrypt_file(input: &Path, output: &Path, key: &Key) -> Result<Encrypted> {
    let mut src = std::fs::File::open(input).map_err(|e| Error::io(input, e))?;
    let plain = src.metadata().map_err(|e| Error::io(input, e))?.len();
    if plain == 0 {
        return Err(Error::Invalid(format!("{} is empty", input.display())));
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| Error::Invalid(format!("no random numbers from the system: {e}")))?;
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&(CHUNK as u32).to_le_bytes());
    header.extend_from_slice(&plain.to_le_bytes());
    header.extend_from_slice(&salt);
    let tmp = output.with_file_name(format!(
        ".{}.partial",
        output
            .file_name()
            .map_or("encrypted".into(), |n| n.to_string_lossy())
    ));
    let mut write = || -> Result<u64> {
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut out = std::io::BufWriter::new(file);
        let io = |e| Error::io(&tmp, e);
        out.write_all(&header).map_err(io)?;
        let cipher = key.cipher();
        let chunks = plain.div_ceil(CHUNK as u64);
        let mut buf = vec![0u8; CHUNK];
        for i in 0..chunks {
            let (len, last) = chunk_len(plain, CHUNK, i);
            src.read_exact(&mut buf[..len])
                .map_err(|e| Error::io(input, e))?;
            let tag = cipher
                .encrypt_in_place_detached(
                    &nonce(&salt, i),
                    &associated(&header, last),
                    &mut buf[..len],
                )
                .map_err(|_| Error::Invalid("encryption failed".into()))?;
            out.write_all(&buf[..len]).map_err(io)?;
            out.write_all(&tag).map_err(io)?;
        }
        let file = out
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(io)?;
        Ok(chunks)
    };
    match write() {
        Ok(chunks) => {
            std::fs::rename(&tmp, output).map_err(|e| Error::io(output, e))?;
            Ok(Encrypted { plain, chunks })
        }
        Err(e) => {
            std::fs::remove_file(&tmp).ok();
            Err(e)
        }
    }
}
