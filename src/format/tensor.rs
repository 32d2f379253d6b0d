//! A view of one tensor's bytes inside a model file, still in its on-disk encoding.

use std::sync::Arc;

use super::storage::Storage;
use crate::error::{Error, Result};
use crate::quant::GgmlType;

/// One tensor, borrowed in place from its file. `shape` is in GGML order: `shape[0]` is the
/// contiguous row length, the product of the others is the number of rows.
#[derive(Clone)]
pub struct TensorView {
    /// The tensor's name in its file.
    pub name: String,
    /// Element encoding (a float type or a quantized block format).
    pub dtype: GgmlType,
    /// Dimensions, fastest-varying first.
    pub shape: Vec<usize>,
    storage: Arc<Storage>,
    offset: usize,
    len: usize,
}

impl std::fmt::Debug for TensorView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?} {}", self.name, self.shape, self.dtype.name())
    }
}

impl TensorView {
    /// Builds a view after checking that `shape` fits `dtype`'s blocks and that the bytes lie
    /// inside `storage`.
    pub fn new(
        name: String,
        dtype: GgmlType,
        shape: Vec<usize>,
        storage: Arc<Storage>,
        offset: usize,
    ) -> Result<TensorView> {
        let len = dtype
            .tensor_bytes(&shape)
            .map_err(|problem| Error::Tensor {
                name: name.clone(),
                problem,
            })?;
        let end = offset.checked_add(len).filter(|&e| e <= storage.len());
        if end.is_none() {
            return Err(Error::format(format!(
                "tensor {name} ({len} bytes at offset {offset}) extends past the end of the file ({} bytes)",
                storage.len()
            )));
        }
        Ok(TensorView {
            name,
            dtype,
            shape,
            storage,
            offset,
            len,
        })
    }

    /// An f32 tensor holding `values` in memory of its own (derived weights: Gemma's norms,
    /// rope frequencies).
    pub fn owned_f32(name: &str, shape: Vec<usize>, values: &[f32]) -> Result<TensorView> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        TensorView::new(
            name.into(),
            GgmlType::F32,
            shape,
            Arc::new(Storage::Owned(bytes)),
            0,
        )
    }

    /// Rows `start..start + count` of a matrix, sharing its bytes (one part of a fused tensor:
    /// Phi-3's q/k/v or gate/up), named `name`.
    pub fn row_slice(&self, name: &str, start: usize, count: usize) -> Result<TensorView> {
        if start + count > self.rows() {
            return Err(Error::Tensor {
                name: self.name.clone(),
                problem: format!("rows {start}..{} of {}", start + count, self.rows()),
            });
        }
        let mut shape = vec![self.cols(), count];
        if self.shape.len() == 1 {
            shape.truncate(1);
        }
        let row_bytes = self.row_bytes();
        TensorView::new(
            name.into(),
            self.dtype,
            shape,
            self.storage.clone(),
            self.offset + start * row_bytes,
        )
    }

    /// The raw encoded bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.storage[self.offset..self.offset + self.len]
    }

    /// An error if the file these bytes are mapped from has changed since it was mapped (see
    /// [`Storage::check_unchanged`]).
    pub fn check_unchanged(&self) -> Result<()> {
        self.storage.check_unchanged()
    }

    /// Whether `self` and `other` are bytes of the same file.
    pub fn same_storage(&self, other: &TensorView) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// Releases the resident pages of `range` of this tensor's bytes (see [`Storage::release`]);
    /// reading them again pages them back in.
    pub fn release_pages(&self, range: std::ops::Range<usize>) {
        let end = range.end.min(self.len);
        self.storage
            .release(self.offset + range.start.min(end)..self.offset + end);
    }

    /// Length of one row (`shape[0]`).
    pub fn cols(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Number of rows (product of `shape[1..]`).
    pub fn rows(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Number of elements.
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// Encoded bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.len / self.rows().max(1)
    }

    /// Decodes the whole tensor to f32 (for small tensors: norms, biases, tests).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.elements()];
        // Small tensors are copied out of the file (see [`Storage::copy_to`]); large ones are
        // read through the map, which a copy would double.
        if self.len <= 1 << 20 {
            let mut bytes = vec![0; self.len];
            self.copy_bytes(0, &mut bytes);
            self.dtype.dequantize(&bytes, &mut out);
        } else {
            self.dtype.dequantize(self.bytes(), &mut out);
        }
        out
    }

    /// Copies this tensor's encoded bytes from `start` into `out`, without mapping their pages
    /// into the process where it can (see [`Storage::copy_to`]).
    pub fn copy_bytes(&self, start: usize, out: &mut [u8]) {
        self.storage.copy_to(self.offset + start, out);
    }

    /// Checks the tensor is a matrix of `rows` x `cols` (or a vector when `rows == 1`).
    pub fn expect_shape(&self, cols: usize, rows: usize) -> Result<()> {
        if self.cols() == cols && self.rows() == rows {
            Ok(())
        } else {
            Err(Error::Tensor {
                name: self.name.clone(),
                problem: format!(
                    "shape {:?}, expected [{cols}, {rows}] (row length, rows)",
                    self.shape
                ),
            })
        }
    }
}
