//! Making a patch: NEW's header against OLD's, then each of NEW's tensors (in file order) copied,
//! XORed or stored, whichever is smallest.

use std::io::Write;
use std::path::Path;

use super::{Ends, LEVEL, Op, encode_start, map, sha256};
use crate::error::{Error, Result};
use crate::format::gguf::GgufFile;

/// What [`diff`] made.
#[derive(Clone, Debug, Default)]
pub struct DiffReport {
    /// The patch's size in bytes.
    pub patch_bytes: u64,
    /// NEW's tensors that are copied from OLD unchanged.
    pub copied: usize,
    /// Tensors stored as their XOR against OLD's.
    pub xored: usize,
    /// Tensors stored whole.
    pub stored: usize,
}

/// `bytes` zstd-compressed.
fn compress(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), LEVEL)
        .map_err(|e| Error::Invalid(format!("zstd: {e}")))?;
    // Stored sizes let `patch` allocate exactly the window a frame needs.
    encoder
        .set_pledged_src_size(Some(bytes.len() as u64))
        .map_err(|e| Error::Invalid(format!("zstd: {e}")))?;
    encoder
        .write_all(bytes)
        .map_err(|e| Error::Invalid(format!("zstd: {e}")))?;
    encoder
        .finish()
        .map_err(|e| Error::Invalid(format!("zstd: {e}")))
}

/// Writes the patch turning `old` into `new` to `out` (written beside it and renamed into
/// place). Both must be GGUF files.
pub fn diff(old: &Path, new: &Path, out: &Path) -> Result<DiffReport> {
    let (old_bytes, new_bytes) = (map(old)?, map(new)?);
    let old_gguf = GgufFile::open(old)?;
    let new_gguf = GgufFile::open(new)?;
    let mut report = DiffReport::default();
    let mut ops = Vec::new();
    let mut payloads: Vec<Vec<u8>> = Vec::new();

    for (gguf, bytes, path) in [(&old_gguf, &old_bytes, old), (&new_gguf, &new_bytes, new)] {
        if gguf.data_offset > bytes.len() || gguf.data_offset as u64 > super::MAX_HEADER {
            return Err(Error::format(format!(
                "{}: the header ends past the file or is implausibly large",
                path.display()
            )));
        }
    }
    // The header, against OLD's as a dictionary.
    let (old_head, new_head) = (
        &old_bytes[..old_gguf.data_offset],
        &new_bytes[..new_gguf.data_offset],
    );
    let stored = zstd::bulk::Compressor::with_dictionary(LEVEL, old_head)
        .and_then(|mut c| c.compress(new_head))
        .map_err(|e| Error::Invalid(format!("zstd: {e}")))?;
    ops.push(Op::Header {
        len: new_head.len() as u64,
        dict: old_head.len() as u64,
        stored: stored.len() as u64,
    });
    payloads.push(stored);

    // The tensors in file order, and the gaps between them.
    let mut order: Vec<_> = new_gguf.tensors.iter().collect();
    order.sort_by_key(|t| t.offset);
    let mut at = new_gguf.data_offset;
    let gap = |from: usize, to: usize, ops: &mut Vec<Op>, payloads: &mut Vec<Vec<u8>>| {
        if to <= from {
            return Ok(());
        }
        let bytes = &new_bytes[from..to];
        if bytes.iter().all(|&b| b == 0) {
            ops.push(Op::Zero {
                len: bytes.len() as u64,
            });
        } else {
            let stored = compress(bytes)?;
            ops.push(Op::Data {
                len: bytes.len() as u64,
                stored: stored.len() as u64,
            });
            payloads.push(stored);
        }
        Ok::<(), Error>(())
    };
    for info in order {
        let Some(view) = new_gguf.tensor(&info.name) else {
            continue;
        };
        let start = new_gguf.data_offset + info.offset;
        let bytes = view.bytes();
        gap(at, start, &mut ops, &mut payloads)?;
        at = start + bytes.len();
        let old = old_gguf
            .tensors
            .iter()
            .find(|o| o.name == info.name)
            .and_then(|o| Some((old_gguf.data_offset + o.offset, old_gguf.tensor(&o.name)?)))
            .filter(|(_, v)| v.bytes().len() == bytes.len());
        match old {
            Some((from, v)) if v.bytes() == bytes => {
                ops.push(Op::Copy {
                    from: from as u64,
                    len: bytes.len() as u64,
                });
                report.copied += 1;
            }
            Some((from, v)) => {
                let xor: Vec<u8> = v.bytes().iter().zip(bytes).map(|(a, b)| a ^ b).collect();
                let (xored, whole) = (compress(&xor)?, compress(bytes)?);
                if xored.len() < whole.len() {
                    ops.push(Op::Xor {
                        from: from as u64,
                        len: bytes.len() as u64,
                        stored: xored.len() as u64,
                    });
                    payloads.push(xored);
                    report.xored += 1;
                } else {
                    ops.push(Op::Data {
                        len: bytes.len() as u64,
                        stored: whole.len() as u64,
                    });
                    payloads.push(whole);
                    report.stored += 1;
                }
            }
            None => {
                let stored = compress(bytes)?;
                ops.push(Op::Data {
                    len: bytes.len() as u64,
                    stored: stored.len() as u64,
                });
                payloads.push(stored);
                report.stored += 1;
            }
        }
    }
    gap(at, new_bytes.len(), &mut ops, &mut payloads)?;

    // Overlapping tensors would make operations that do not rebuild NEW: refused here rather
    // than by every device that downloads the patch.
    if ops.iter().map(Op::len).sum::<u64>() != new_bytes.len() as u64 {
        return Err(Error::format(format!(
            "{}: its tensors overlap or leave the file; it cannot be described as a patch",
            new.display()
        )));
    }
    let ends = Ends {
        old_size: old_bytes.len() as u64,
        old_sha: sha256(&old_bytes),
        new_size: new_bytes.len() as u64,
        new_sha: sha256(&new_bytes),
    };
    let start = encode_start(&ends, &ops)?;
    let tmp = super::patch::partial_path(out);
    let write = || -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        f.write_all(&start)?;
        for p in &payloads {
            f.write_all(p)?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()
    };
    write()
        .and_then(|_| std::fs::rename(&tmp, out))
        .map_err(|e| {
            std::fs::remove_file(&tmp).ok();
            Error::io(out, e)
        })?;
    report.patch_bytes = (start.len() + payloads.iter().map(Vec::len).sum::<usize>()) as u64;
    Ok(report)
}
