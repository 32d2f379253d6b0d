//! Applying a patch: OLD checked by hash, NEW written beside its destination a piece at a time
//! (memory stays at a few MiB whatever the model's size), checked by hash, then renamed into
//! place — an interrupted run leaves OLD intact and no NEW, and simply runs again.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{MAX_HEADER, Op, decode_start, hex};
use crate::error::{Error, Result};

/// Bytes written at a time.
const PIECE: usize = 1 << 20;

/// The environment variable that kills `patch` after it has written that many bytes (a power
/// cut, for the tests of what an interrupted patch leaves).
pub const KILL_AFTER_VAR: &str = "EMBER_PATCH_KILL_AFTER";

/// OLD, read a piece at a time (not mapped: a map's pages would count in the process's memory
/// as the whole file is read, and a patch must run in little memory on a small device).
struct Old {
    file: std::fs::File,
    path: PathBuf,
    size: u64,
}

impl Old {
    fn open(path: &Path) -> Result<Old> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok(Old {
            file,
            path: path.to_path_buf(),
            size,
        })
    }

    /// SHA-256 of the whole file.
    fn sha256(&mut self) -> Result<[u8; 32]> {
        let mut hash = Sha256::new();
        let mut piece = vec![0u8; PIECE];
        let mut at = 0;
        while at < self.size {
            let n = (self.size - at).min(PIECE as u64) as usize;
            self.read(at, &mut piece[..n])?;
            hash.update(&piece[..n]);
            at += n as u64;
        }
        Ok(hash.finalize().into())
    }

    /// Fills `buf` from offset `at`.
    fn read(&mut self, at: u64, buf: &mut [u8]) -> Result<()> {
        use std::io::Seek;
        self.file
            .seek(std::io::SeekFrom::Start(at))
            .and_then(|_| self.file.read_exact(buf))
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// What [`patch`] wrote.
#[derive(Clone, Debug, Default)]
pub struct PatchReport {
    /// NEW's size.
    pub new_bytes: u64,
    /// Of them, copied from OLD unchanged.
    pub copied_bytes: u64,
    /// NEW's SHA-256, as hex.
    pub new_sha256: String,
}

/// Where a file destined for `out` is written before it is renamed there.
pub fn partial_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map_or("output".into(), |n| n.to_string_lossy());
    out.with_file_name(format!(".{name}.partial"))
}

/// NEW's bytes as they are written: hashed, counted, and cut short on request.
struct Output {
    file: BufWriter<std::fs::File>,
    path: PathBuf,
    hash: Sha256,
    written: u64,
    kill_after: Option<u64>,
}

impl Output {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(|e| Error::io(&self.path, e))?;
        self.hash.update(bytes);
        self.written += bytes.len() as u64;
        if self.kill_after.is_some_and(|n| self.written >= n) {
            let _ = self.file.flush();
            // SAFETY: sends this process SIGKILL; nothing after it runs.
            #[cfg(unix)]
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
        Ok(())
    }
}

/// Applies `patch_path` to `old`, writing `out` (which may be `old` itself: it is replaced
/// atomically).
pub fn patch(old: &Path, patch_path: &Path, out: &Path) -> Result<PatchReport> {
    let name = patch_path.display().to_string();
    let mut reader =
        BufReader::new(std::fs::File::open(patch_path).map_err(|e| Error::io(patch_path, e))?);
    let (ends, ops) = decode_start(&mut reader, &name)?;
    let mut old_file = Old::open(old)?;
    let old_sha = old_file.sha256()?;
    if old_file.size != ends.old_size || old_sha != ends.old_sha {
        return Err(Error::Invalid(format!(
            "{name} applies to a file of {} bytes with SHA-256 {}; {} has {} bytes and SHA-256 {}: it is for another file",
            ends.old_size,
            hex(&ends.old_sha),
            old.display(),
            old_file.size,
            hex(&old_sha)
        )));
    }
    let partial = partial_path(out);
    let kill_after = std::env::var(KILL_AFTER_VAR)
        .ok()
        .and_then(|v| v.parse().ok());
    let mut output = Output {
        file: BufWriter::new(std::fs::File::create(&partial).map_err(|e| Error::io(&partial, e))?),
        path: partial.clone(),
        hash: Sha256::new(),
        written: 0,
        kill_after,
    };
    let result = apply(&ops, &mut old_file, &mut reader, &mut output, &name);
    let finished = result.and_then(|copied| {
        let sha: [u8; 32] = output.hash.clone().finalize().into();
        if output.written != ends.new_size || sha != ends.new_sha {
            return Err(Error::format(format!(
                "{name}: the result's SHA-256 is {}, not NEW's {}: the patch is damaged",
                hex(&sha),
                hex(&ends.new_sha)
            )));
        }
        let file = output
            .file
            .into_inner()
            .map_err(|e| Error::io(&partial, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&partial, e))?;
        std::fs::rename(&partial, out).map_err(|e| Error::io(out, e))?;
        Ok(PatchReport {
            new_bytes: ends.new_size,
            copied_bytes: copied,
            new_sha256: hex(&sha),
        })
    });
    if finished.is_err() {
        std::fs::remove_file(&partial).ok();
    }
    finished
}

/// Runs `ops`, reading their payloads from `patch` in order; returns the bytes copied from OLD.
fn apply(
    ops: &[Op],
    old: &mut Old,
    patch: &mut impl Read,
    out: &mut Output,
    name: &str,
) -> Result<u64> {
    let damaged = |what: String| Error::format(format!("{name}: {what}"));
    let size = old.size;
    let in_old = |from: u64, len: u64| {
        from.checked_add(len)
            .is_some_and(|end| end <= size)
            .then_some(())
            .ok_or_else(|| damaged(format!("reads past the end of OLD ({from} + {len})")))
    };
    let mut copied = 0;
    let zeros = vec![0u8; PIECE];
    let mut piece = vec![0u8; PIECE];
    let mut base = vec![0u8; PIECE];
    for (i, op) in ops.iter().enumerate() {
        let mut payload = patch.take(op.stored());
        match *op {
            Op::Header { len, dict, .. } => {
                in_old(0, dict)?;
                if len > MAX_HEADER || dict > MAX_HEADER {
                    return Err(damaged(format!(
                        "operation {i} claims an implausible header"
                    )));
                }
                let mut dictionary = vec![0u8; dict as usize];
                old.read(0, &mut dictionary)?;
                let mut stored = Vec::new();
                payload
                    .read_to_end(&mut stored)
                    .map_err(|_| damaged("truncated".into()))?;
                let header = zstd::bulk::Decompressor::with_dictionary(&dictionary)
                    .and_then(|mut d| d.decompress(&stored, len as usize))
                    .map_err(|_| damaged(format!("operation {i} (the header) is damaged")))?;
                if header.len() as u64 != len {
                    return Err(damaged(format!("operation {i} (the header) is damaged")));
                }
                out.write(&header)?;
            }
            Op::Copy { from, len } => {
                in_old(from, len)?;
                let mut done = 0;
                while done < len {
                    let n = (len - done).min(PIECE as u64) as usize;
                    old.read(from + done, &mut piece[..n])?;
                    out.write(&piece[..n])?;
                    done += n as u64;
                }
                copied += len;
            }
            Op::Zero { len } => {
                let mut left = len;
                while left > 0 {
                    let n = left.min(PIECE as u64) as usize;
                    out.write(&zeros[..n])?;
                    left -= n as u64;
                }
            }
            Op::Data { len, .. } | Op::Xor { len, .. } => {
                let xor_from = match *op {
                    Op::Xor { from, len, .. } => {
                        in_old(from, len)?;
                        Some(from)
                    }
                    _ => None,
                };
                let mut decoder = zstd::stream::read::Decoder::new(&mut payload)
                    .map_err(|e| damaged(format!("operation {i}: {e}")))?;
                let mut done = 0;
                while done < len {
                    let n = (len - done).min(PIECE as u64) as usize;
                    decoder.read_exact(&mut piece[..n]).map_err(|_| {
                        damaged(format!("operation {i}'s stored bytes are damaged"))
                    })?;
                    if let Some(from) = xor_from {
                        old.read(from + done, &mut base[..n])?;
                        for (p, b) in piece[..n].iter_mut().zip(&base[..n]) {
                            *p ^= b;
                        }
                    }
                    out.write(&piece[..n])?;
                    done += n as u64;
                }
            }
        }
        // Whatever of the payload the decoder left (a frame's end) is skipped: the next
        // operation's payload starts right after.
        std::io::copy(&mut payload, &mut std::io::sink())
            .map_err(|_| damaged("truncated".into()))?;
        if payload.limit() > 0 {
            return Err(damaged(format!("truncated in operation {i}")));
        }
    }
    Ok(copied)
}
