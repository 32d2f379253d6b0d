//! Model deltas: `ember diff OLD NEW -o PATCH` and `ember patch OLD PATCH -o NEW`. A fine-tune
//! or a re-quantization changes some tensors of a GGUF; a device that has OLD should download
//! what changed, not the whole file again.
//!
//! A patch rebuilds NEW from a list of operations over byte ranges, in NEW's order:
//!
//! - `Copy` a range of OLD (an unchanged tensor: a few bytes in the patch, whatever its size);
//! - `Zero` bytes (alignment padding);
//! - `Data`: bytes stored in the patch, zstd-compressed (a re-quantized or new tensor);
//! - `Xor`: a range of OLD combined with stored bytes, zstd-compressed (a tensor that changed a
//!   little: the XOR is mostly zeros, which compresses far better than the tensor itself);
//! - `Header`: NEW's header, compressed with OLD's header as the zstd dictionary (metadata and
//!   tensor names mostly repeat).
//!
//! Layout (little-endian): `"EMBERDLT"`, version u32, OLD's size u64 and SHA-256, NEW's size u64
//! and SHA-256, the compressed operation table's length u64 and bytes, then the payloads of the
//! operations that have one, in order. `patch` checks OLD's hash before it starts and NEW's
//! before it renames the result into place.

mod diff;
mod patch;

pub use diff::{DiffReport, diff};
pub use patch::{PatchReport, patch};

use std::io::Read;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The first bytes of a patch.
pub const MAGIC: &[u8; 8] = b"EMBERDLT";
const VERSION: u32 = 1;
/// zstd level of stored bytes: slow to make (once, on a build machine), fast to apply.
const LEVEL: i32 = 19;

/// One step of rebuilding NEW.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `len` bytes of NEW's header, stored (compressed against OLD's header, `dict` bytes).
    Header {
        /// Bytes produced.
        len: u64,
        /// The first `dict` bytes of OLD are the dictionary.
        dict: u64,
        /// Stored bytes.
        stored: u64,
    },
    /// `len` bytes of OLD from `from`.
    Copy {
        /// Offset in OLD.
        from: u64,
        /// Bytes.
        len: u64,
    },
    /// `len` zero bytes.
    Zero {
        /// Bytes.
        len: u64,
    },
    /// `len` bytes stored.
    Data {
        /// Bytes produced.
        len: u64,
        /// Stored (compressed) bytes.
        stored: u64,
    },
    /// `len` bytes of OLD from `from`, XORed with `len` stored bytes.
    Xor {
        /// Offset in OLD.
        from: u64,
        /// Bytes produced.
        len: u64,
        /// Stored (compressed) bytes.
        stored: u64,
    },
}

impl Op {
    /// Bytes of NEW this produces.
    pub fn len(&self) -> u64 {
        match *self {
            Op::Header { len, .. }
            | Op::Copy { len, .. }
            | Op::Zero { len }
            | Op::Data { len, .. }
            | Op::Xor { len, .. } => len,
        }
    }

    /// Bytes of the patch's payload it reads.
    pub fn stored(&self) -> u64 {
        match *self {
            Op::Header { stored, .. } | Op::Data { stored, .. } | Op::Xor { stored, .. } => stored,
            Op::Copy { .. } | Op::Zero { .. } => 0,
        }
    }

    /// Whether it produces nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let (kind, a, b, c) = match *self {
            Op::Header { len, dict, stored } => (0u8, len, dict, stored),
            Op::Copy { from, len } => (1, from, len, 0),
            Op::Zero { len } => (2, len, 0, 0),
            Op::Data { len, stored } => (3, len, stored, 0),
            Op::Xor { from, len, stored } => (4, from, len, stored),
        };
        out.push(kind);
        for v in [a, b, c] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn decode(entry: &[u8]) -> Result<Op> {
        let field = |i: usize| {
            let mut v = [0u8; 8];
            v.copy_from_slice(&entry[1 + 8 * i..9 + 8 * i]);
            u64::from_le_bytes(v)
        };
        let (a, b, c) = (field(0), field(1), field(2));
        Ok(match entry[0] {
            0 => Op::Header {
                len: a,
                dict: b,
                stored: c,
            },
            1 => Op::Copy { from: a, len: b },
            2 => Op::Zero { len: a },
            3 => Op::Data { len: a, stored: b },
            4 => Op::Xor {
                from: a,
                len: b,
                stored: c,
            },
            k => return Err(Error::format(format!("patch: unknown operation {k}"))),
        })
    }
}

const ENTRY: usize = 1 + 3 * 8;

/// What a patch says about the files it joins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ends {
    /// OLD's size.
    pub old_size: u64,
    /// OLD's SHA-256.
    pub old_sha: [u8; 32],
    /// NEW's size.
    pub new_size: u64,
    /// NEW's SHA-256.
    pub new_sha: [u8; 32],
}

/// The largest operation table accepted, compressed or not: a GGUF's tensors make a few
/// thousand operations, so this is only a guard against a hostile length.
const MAX_TABLE: u64 = 64 << 20;

/// The largest header (and header dictionary) a patch may hold: GGUF headers are kilobytes to
/// a few megabytes (vocabularies).
pub(crate) const MAX_HEADER: u64 = 256 << 20;

/// The fixed part of a patch's start: magic, version, the two ends, the table's length.
const FIXED: usize = 8 + 4 + 8 + 32 + 8 + 32 + 8;

fn encode_start(ends: &Ends, ops: &[Op]) -> Result<Vec<u8>> {
    let mut table = Vec::with_capacity(ops.len() * ENTRY);
    for op in ops {
        op.encode(&mut table);
    }
    let table = zstd::bulk::compress(&table, LEVEL)
        .map_err(|e| Error::Invalid(format!("compressing the patch's table: {e}")))?;
    let mut out = Vec::with_capacity(FIXED + table.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&ends.old_size.to_le_bytes());
    out.extend_from_slice(&ends.old_sha);
    out.extend_from_slice(&ends.new_size.to_le_bytes());
    out.extend_from_slice(&ends.new_sha);
    out.extend_from_slice(&(table.len() as u64).to_le_bytes());
    out.extend_from_slice(&table);
    Ok(out)
}

/// Reads a patch's start: the ends it joins and its operations (the payloads follow).
fn decode_start(r: &mut impl Read, name: &str) -> Result<(Ends, Vec<Op>)> {
    let bad = |what: &str| Error::format(format!("{name}: {what}"));
    let mut fixed = [0u8; FIXED];
    r.read_exact(&mut fixed)
        .map_err(|_| bad("too short to be a patch"))?;
    if &fixed[..8] != MAGIC {
        return Err(bad("not an Ember patch (made by `ember diff`)"));
    }
    let u64_at = |at: usize| {
        let mut v = [0u8; 8];
        v.copy_from_slice(&fixed[at..at + 8]);
        u64::from_le_bytes(v)
    };
    let version = u32::from_le_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
    if version != VERSION {
        return Err(Error::Unsupported(format!(
            "{name}: patch version {version} (1 is supported)"
        )));
    }
    let sha_at = |at: usize| {
        let mut s = [0u8; 32];
        s.copy_from_slice(&fixed[at..at + 32]);
        s
    };
    let ends = Ends {
        old_size: u64_at(12),
        old_sha: sha_at(20),
        new_size: u64_at(52),
        new_sha: sha_at(60),
    };
    let table_len = u64_at(92);
    if table_len > MAX_TABLE {
        return Err(bad("its operation table is implausibly large"));
    }
    let mut table = vec![0u8; table_len as usize];
    r.read_exact(&mut table)
        .map_err(|_| bad("truncated in its operation table"))?;
    // Decoded as a stream into what it really holds (a bulk decode would reserve its whole
    // bound up front), up to the bound.
    let mut decoded = Vec::new();
    zstd::stream::read::Decoder::new(&table[..])
        .and_then(|d| d.take(MAX_TABLE + 1).read_to_end(&mut decoded))
        .map_err(|_| bad("its operation table is damaged"))?;
    if decoded.len() as u64 > MAX_TABLE || !decoded.len().is_multiple_of(ENTRY) {
        return Err(bad("its operation table is damaged"));
    }
    let ops = decoded
        .chunks(ENTRY)
        .map(Op::decode)
        .collect::<Result<Vec<_>>>()?;
    let produced = ops
        .iter()
        .try_fold(0u64, |sum, op| sum.checked_add(op.len()));
    if produced != Some(ends.new_size) {
        return Err(bad("its operations do not add up to the size of NEW"));
    }
    Ok((ends, ops))
}

/// SHA-256 of `bytes`.
fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A hash as hex.
pub fn hex(sha: &[u8; 32]) -> String {
    sha.iter().map(|b| format!("{b:02x}")).collect()
}

/// `path` mapped read-only (an empty file gives an empty map).
fn map(path: &std::path::Path) -> Result<memmap2::Mmap> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: read-only; both sides of a patch are checked by hash, so a file changed while
    // mapped fails the check instead of giving a silently wrong result.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))
}
