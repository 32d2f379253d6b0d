//! GGUF (version 3) writer. The file is written to a temporary name beside the destination and
//! renamed into place only when complete, so a failed or interrupted write never leaves a
//! half-written model behind.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::gguf::{DEFAULT_ALIGNMENT, MAGIC, MetaValue};
use crate::error::{Error, Result};
use crate::quant::GgmlType;

/// A tensor to be written: its name, encoding and shape (GGML order).
#[derive(Clone, Debug)]
pub struct TensorPlan {
    /// Name in the file.
    pub name: String,
    /// Encoding.
    pub dtype: GgmlType,
    /// Dimensions, fastest-varying first.
    pub shape: Vec<usize>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &MetaValue) {
    match v {
        MetaValue::U8(x) => out.push(*x),
        MetaValue::I8(x) => out.push(*x as u8),
        MetaValue::U16(x) => out.extend(x.to_le_bytes()),
        MetaValue::I16(x) => out.extend(x.to_le_bytes()),
        MetaValue::U32(x) => out.extend(x.to_le_bytes()),
        MetaValue::I32(x) => out.extend(x.to_le_bytes()),
        MetaValue::F32(x) => out.extend(x.to_le_bytes()),
        MetaValue::Bool(x) => out.push(u8::from(*x)),
        MetaValue::String(s) => put_str(out, s),
        MetaValue::Array(elem, items) => {
            out.extend(elem.to_le_bytes());
            out.extend((items.len() as u64).to_le_bytes());
            for i in items {
                put_value(out, i);
            }
        }
        MetaValue::U64(x) => out.extend(x.to_le_bytes()),
        MetaValue::I64(x) => out.extend(x.to_le_bytes()),
        MetaValue::F64(x) => out.extend(x.to_le_bytes()),
    }
}

/// The header (magic to the end of the tensor infos, padded to `alignment`) and each tensor's
/// data offset.
fn header(
    metadata: &[(String, MetaValue)],
    tensors: &[TensorPlan],
    alignment: usize,
) -> Result<(Vec<u8>, Vec<usize>)> {
    let mut h = MAGIC.to_vec();
    h.extend(3u32.to_le_bytes());
    h.extend((tensors.len() as u64).to_le_bytes());
    h.extend((metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut h, k);
        h.extend(v.type_id().to_le_bytes());
        put_value(&mut h, v);
    }
    let mut offsets = Vec::with_capacity(tensors.len());
    let mut at = 0usize;
    for t in tensors {
        let size = t.dtype.tensor_bytes(&t.shape).map_err(|p| Error::Tensor {
            name: t.name.clone(),
            problem: p,
        })?;
        put_str(&mut h, &t.name);
        h.extend((t.shape.len() as u32).to_le_bytes());
        for &d in &t.shape {
            h.extend((d as u64).to_le_bytes());
        }
        h.extend(t.dtype.id().to_le_bytes());
        h.extend((at as u64).to_le_bytes());
        offsets.push(at);
        at = (at + size).div_ceil(alignment) * alignment;
    }
    h.resize(h.len().div_ceil(alignment) * alignment, 0);
    Ok((h, offsets))
}

/// Removes the temporary file unless the write completed.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Writes a GGUF file at `path`. `data(i)` produces tensor `i`'s encoded bytes, in order, so
/// tensors can be converted one at a time. `metadata` should not hold `general.alignment`
/// unless it equals `alignment`.
pub fn write_gguf(
    path: &Path,
    metadata: &[(String, MetaValue)],
    tensors: &[TensorPlan],
    mut data: impl FnMut(usize) -> Result<Vec<u8>>,
) -> Result<()> {
    let alignment = DEFAULT_ALIGNMENT;
    let (head, offsets) = header(metadata, tensors, alignment)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{} is not a file path", path.display())))?;
    let tmp_path = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut guard = TempFile(Some(tmp_path.clone()));
    let file = std::fs::File::create(&tmp_path).map_err(|e| Error::io(&tmp_path, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let io = |e| Error::io(&tmp_path, e);
    w.write_all(&head).map_err(io)?;
    let mut written = 0usize;
    for (i, t) in tensors.iter().enumerate() {
        let bytes = data(i)?;
        let want = t.dtype.tensor_bytes(&t.shape).map_err(|p| Error::Tensor {
            name: t.name.clone(),
            problem: p,
        })?;
        if bytes.len() != want {
            return Err(Error::Tensor {
                name: t.name.clone(),
                problem: format!("{} bytes produced, {want} expected", bytes.len()),
            });
        }
        let pad = offsets[i] - written;
        w.write_all(&vec![0u8; pad]).map_err(io)?;
        w.write_all(&bytes).map_err(io)?;
        written = offsets[i] + bytes.len();
    }
    let end = written.div_ceil(alignment) * alignment;
    w.write_all(&vec![0u8; end - written]).map_err(io)?;
    // Flushed, synced and closed (the handle ends with this statement) before the rename.
    w.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    std::fs::rename(&tmp_path, path).map_err(|e| Error::io(path, e))?;
    guard.0 = None;
    Ok(())
}
