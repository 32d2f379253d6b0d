//! GGUF (versions 2 and 3) reader over a memory map.
//!
//! Layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the metadata
//! key/value pairs, the tensor infos, padding to `general.alignment`, then tensor data. Every count,
//! length and offset read from the header is checked against the bytes that remain before it is
//! used, so a corrupt header cannot cause a huge allocation, an out-of-bounds read or a hang.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::storage::Storage;
use super::tensor::TensorView;
use crate::error::{Error, Result};
use crate::quant::GgmlType;

/// The four magic bytes at the start of every GGUF file.
pub const MAGIC: &[u8; 4] = b"GGUF";
/// Alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: usize = 32;
/// GGML supports at most this many dimensions.
const MAX_DIMS: usize = 4;
/// Items reserved up front for a list whose length the file claims: counts are checked against
/// the bytes left, but an item in memory is larger than its smallest encoding, so a hostile
/// count could still reserve many times the file's size.
const PREALLOCATED: usize = 4096;

/// A metadata value. Arrays may nest.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    /// GGUF type 0.
    U8(u8),
    /// GGUF type 1.
    I8(i8),
    /// GGUF type 2.
    U16(u16),
    /// GGUF type 3.
    I16(i16),
    /// GGUF type 4.
    U32(u32),
    /// GGUF type 5.
    I32(i32),
    /// GGUF type 6.
    F32(f32),
    /// GGUF type 7.
    Bool(bool),
    /// GGUF type 8 (UTF-8; invalid sequences are replaced).
    String(String),
    /// GGUF type 9: element type id and the elements.
    Array(u32, Vec<MetaValue>),
    /// GGUF type 10.
    U64(u64),
    /// GGUF type 11.
    I64(i64),
    /// GGUF type 12.
    F64(f64),
}

impl MetaValue {
    /// GGUF's numeric id for this value's type.
    pub fn type_id(&self) -> u32 {
        match self {
            MetaValue::U8(_) => 0,
            MetaValue::I8(_) => 1,
            MetaValue::U16(_) => 2,
            MetaValue::I16(_) => 3,
            MetaValue::U32(_) => 4,
            MetaValue::I32(_) => 5,
            MetaValue::F32(_) => 6,
            MetaValue::Bool(_) => 7,
            MetaValue::String(_) => 8,
            MetaValue::Array(..) => 9,
            MetaValue::U64(_) => 10,
            MetaValue::I64(_) => 11,
            MetaValue::F64(_) => 12,
        }
    }

    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::U64(v) => Some(v),
            MetaValue::I8(v) => u64::try_from(v).ok(),
            MetaValue::I16(v) => u64::try_from(v).ok(),
            MetaValue::I32(v) => u64::try_from(v).ok(),
            MetaValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => Some(v.into()),
            MetaValue::F64(v) => Some(v),
            MetaValue::I8(v) => Some(v.into()),
            MetaValue::I16(v) => Some(v.into()),
            MetaValue::I32(v) => Some(v.into()),
            MetaValue::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// The value as a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, if the value is an array.
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(_, v) => Some(v),
            _ => None,
        }
    }

    /// A short human-readable rendering (arrays summarised by length).
    pub fn summary(&self) -> String {
        match self {
            MetaValue::String(s) if s.len() > 60 => {
                format!("{:?}… ({} bytes)", &s[..s.floor_char_boundary(60)], s.len())
            }
            MetaValue::String(s) => format!("{s:?}"),
            MetaValue::Array(_, v) => format!("[{} items]", v.len()),
            MetaValue::Bool(b) => b.to_string(),
            MetaValue::F32(v) => v.to_string(),
            MetaValue::F64(v) => v.to_string(),
            other => other
                .as_u64()
                .map(|v| v.to_string())
                .unwrap_or_else(|| format!("{other:?}")),
        }
    }
}

/// One entry of the tensor-info table.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    /// The tensor's name.
    pub name: String,
    /// Dimensions, fastest-varying first.
    pub shape: Vec<usize>,
    /// Encoding.
    pub dtype: GgmlType,
    /// Offset of the data, relative to the start of the data section.
    pub offset: usize,
}

/// A parsed GGUF file: metadata, tensor table and the bytes behind them.
pub struct GgufFile {
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, MetaValue)>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the data section.
    pub data_offset: usize,
    /// Data alignment in bytes.
    pub alignment: usize,
    index: HashMap<String, usize>,
    storage: Arc<Storage>,
}

/// Bounds-checked little-endian reader over the header.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(Error::format(format!(
                "truncated GGUF: {what} needs {n} bytes at offset {} but the file has {}",
                self.pos,
                self.buf.len()
            ))),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        <[u8; N]>::try_from(self.take(N, what)?)
            .map_err(|_| Error::format(format!("truncated GGUF: {what} needs {N} bytes")))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Reads a count and checks that `count * min_size` bytes could still follow.
    fn count(&mut self, min_size: usize, what: &str) -> Result<usize> {
        let n = self.u64(what)?;
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(min_size).map(|b| (n, b)))
            .filter(|&(_, bytes)| bytes <= self.remaining());
        match fits {
            Some((n, _)) => Ok(n),
            None => Err(Error::format(format!(
                "{what} is {n}, more than the {} bytes left in the file could hold",
                self.remaining()
            ))),
        }
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.count(1, what)?;
        Ok(String::from_utf8_lossy(self.take(n, what)?).into_owned())
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<MetaValue> {
        Ok(match ty {
            0 => MetaValue::U8(self.array::<1>(key)?[0]),
            1 => MetaValue::I8(self.array::<1>(key)?[0] as i8),
            2 => MetaValue::U16(u16::from_le_bytes(self.array(key)?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array(key)?)),
            4 => MetaValue::U32(self.u32(key)?),
            5 => MetaValue::I32(i32::from_le_bytes(self.array(key)?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array(key)?)),
            7 => match self.array::<1>(key)?[0] {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                b => {
                    return Err(Error::format(format!(
                        "metadata {key}: invalid bool byte {b}"
                    )));
                }
            },
            8 => MetaValue::String(self.string(key)?),
            9 => {
                if depth >= 8 {
                    return Err(Error::format(format!(
                        "metadata {key}: arrays nested too deeply"
                    )));
                }
                let elem = self.u32(key)?;
                let min = value_min_size(elem).ok_or_else(|| {
                    Error::format(format!("metadata {key}: unknown array element type {elem}"))
                })?;
                let n = self.count(min, &format!("metadata {key} array length"))?;
                let mut items = Vec::with_capacity(n.min(PREALLOCATED));
                for _ in 0..n {
                    items.push(self.value(elem, key, depth + 1)?);
                }
                MetaValue::Array(elem, items)
            }
            10 => MetaValue::U64(self.u64(key)?),
            11 => MetaValue::I64(i64::from_le_bytes(self.array(key)?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array(key)?)),
            t => {
                return Err(Error::format(format!(
                    "metadata {key}: unknown value type {t}"
                )));
            }
        })
    }
}

/// The fewest bytes a value of GGUF type `ty` occupies (to bound array lengths before allocating).
fn value_min_size(ty: u32) -> Option<usize> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => return None,
    })
}

impl GgufFile {
    /// Opens and parses a GGUF file through a memory map.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let storage = Storage::map(path)?;
        Self::parse(storage).map_err(|e| match e {
            Error::Format(m) => Error::Format(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses GGUF bytes already in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile> {
        Self::parse(Arc::new(Storage::Owned(bytes)))
    }

    /// Releases the resident pages of the header (metadata and tensor table, parsed already).
    pub fn release_header(&self) {
        self.storage.release(0..self.data_offset);
    }

    fn parse(storage: Arc<Storage>) -> Result<GgufFile> {
        let buf: &[u8] = &storage;
        let mut c = Cursor { buf, pos: 0 };
        let magic = c.take(4, "magic")?;
        if magic != MAGIC {
            return Err(Error::format(format!(
                "not a GGUF file (magic bytes {magic:02x?}, expected \"GGUF\")"
            )));
        }
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(Error::Unsupported(format!(
                "GGUF version {version} (2 and 3 are supported)"
            )));
        }
        // A tensor info takes at least 8 (name len) + 4 (dims) + 4 (type) + 8 (offset) bytes,
        // a key/value pair at least 8 (key len) + 4 (type) + 1 byte.
        let n_tensors = c.count(24, "tensor count")?;
        let n_kv = c.count(13, "metadata count")?;

        let mut metadata = Vec::with_capacity(n_kv.min(PREALLOCATED));
        for _ in 0..n_kv {
            let key = c.string("metadata key")?;
            let ty = c.u32(&key)?;
            let value = c.value(ty, &key, 0)?;
            metadata.push((key, value));
        }

        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, v)) => match v.as_u64() {
                Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a as usize,
                _ => {
                    return Err(Error::format(format!(
                        "general.alignment {} is not a power of two",
                        v.summary()
                    )));
                }
            },
        };

        let mut tensors = Vec::with_capacity(n_tensors.min(PREALLOCATED));
        let mut index = HashMap::with_capacity(n_tensors.min(PREALLOCATED));
        for i in 0..n_tensors {
            let name = c.string("tensor name")?;
            let n_dims = c.u32(&name)? as usize;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(Error::format(format!(
                    "tensor {name}: {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
                )));
            }
            let mut shape = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                let d = c.u64(&name)?;
                let d = usize::try_from(d)
                    .ok()
                    .filter(|&d| d > 0 && d <= buf.len().saturating_mul(8))
                    .ok_or_else(|| {
                        Error::format(format!(
                            "tensor {name}: dimension {d} is impossible for this file"
                        ))
                    })?;
                shape.push(d);
            }
            let type_id = c.u32(&name)?;
            let dtype = GgmlType::from_id(type_id).ok_or_else(|| {
                Error::Unsupported(format!(
                    "tensor {name} has tensor type id {type_id}, which Ember does not know"
                ))
            })?;
            let offset = c.u64(&name)?;
            let offset = usize::try_from(offset).map_err(|_| {
                Error::format(format!("tensor {name}: offset {offset} is too large"))
            })?;
            if offset % alignment != 0 {
                return Err(Error::format(format!(
                    "tensor {name}: offset {offset} is not aligned to {alignment}"
                )));
            }
            if index.insert(name.clone(), i).is_some() {
                return Err(Error::format(format!("tensor {name} appears twice")));
            }
            tensors.push(TensorInfo {
                name,
                shape,
                dtype,
                offset,
            });
        }

        let data_offset = c.pos.div_ceil(alignment) * alignment;
        let file = GgufFile {
            version,
            metadata,
            tensors,
            data_offset,
            alignment,
            index,
            storage: storage.clone(),
        };
        // Validate every tensor's extent now, so later access cannot fail.
        for t in &file.tensors {
            file.view(t)?;
        }
        Ok(file)
    }

    fn view(&self, t: &TensorInfo) -> Result<TensorView> {
        let abs = self
            .data_offset
            .checked_add(t.offset)
            .ok_or_else(|| Error::format(format!("tensor {}: offset overflows", t.name)))?;
        TensorView::new(
            t.name.clone(),
            t.dtype,
            t.shape.clone(),
            self.storage.clone(),
            abs,
        )
    }

    /// Looks up a metadata value.
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A view of the named tensor, if present.
    pub fn tensor(&self, name: &str) -> Option<TensorView> {
        let t = &self.tensors[*self.index.get(name)?];
        // Extents were validated at parse time.
        self.view(t).ok()
    }

    /// Total size of the underlying file in bytes.
    pub fn file_size(&self) -> usize {
        self.storage.len()
    }
}
