//! GPU memory: weights uploaded once (split by rows over several buffers when a tensor exceeds
//! the adapter's binding limit), a pool of activation buffers reused step after step, and a
//! growable KV cache.

use crate::backend::CacheLayer;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use wgpu::util::DeviceExt;

use super::repack::{gpu_prefix, gpu_row_bytes, gpu_rows};
use crate::format::TensorView;
use crate::quant::GgmlType;

/// Usage of every storage buffer Ember creates.
pub const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Rows `row_start .. row_start + rows` of a weight matrix, in one buffer.
pub struct WeightPart {
    /// The encoded bytes, padded to a multiple of 4.
    pub buffer: wgpu::Buffer,
    /// First row held.
    pub row_start: usize,
    /// Rows held.
    pub rows: usize,
    /// Index of its first row within `buffer` (nonzero where weights share a buffer, see
    /// `Backend::upload_group`).
    pub first: usize,
}

/// A weight on the GPU.
pub enum GpuWeight {
    /// A matrix still in its block encoding, split over one or more buffers.
    Matrix {
        /// Encoding.
        dtype: GgmlType,
        /// Row length in elements.
        cols: usize,
        /// Total rows.
        rows: usize,
        /// Encoded bytes per row, in the GPU's layout (`repack.rs`).
        row_bytes: usize,
        /// The buffers.
        parts: Vec<WeightPart>,
    },
    /// A small vector (norm weights, biases, rope frequencies), decoded to f32.
    Vector(wgpu::Buffer),
}

fn padded(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if bytes.len().is_multiple_of(4) && !bytes.is_empty() {
        return bytes.into();
    }
    let mut v = bytes.to_vec();
    v.resize(bytes.len().div_ceil(4).max(1) * 4, 0);
    v.into()
}

/// Creates a storage buffer holding `bytes`.
pub fn buffer_with(device: &wgpu::Device, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: &padded(bytes),
        usage: STORAGE,
    })
}

/// Creates the storage buffer of a weight of type `t` from its rows in the GPU's layout: the
/// type's prefix (`repack.rs`) first, written in place without a joined copy.
pub fn weight_buffer(
    device: &wgpu::Device,
    label: &str,
    t: GgmlType,
    rows: &[u8],
) -> Result<wgpu::Buffer, String> {
    let prefix = gpu_prefix(t);
    if prefix.is_empty() {
        return Ok(buffer_with(device, label, rows));
    }
    let size = prefix.len() + rows.len();
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: size.div_ceil(4) as u64 * 4,
        usage: STORAGE,
        mapped_at_creation: true,
    });
    {
        let mut view = buffer
            .slice(..)
            .get_mapped_range_mut()
            .map_err(|e| format!("cannot write {label}: {e}"))?;
        view.slice(..prefix.len()).copy_from_slice(prefix);
        view.slice(prefix.len()..size).copy_from_slice(rows);
    }
    buffer.unmap();
    Ok(buffer)
}

/// Splits a matrix, in the GPU's layout (see `repack.rs`), into buffers of at most `max_bytes`
/// each, at row boundaries.
pub fn upload_matrix(
    device: &wgpu::Device,
    t: &TensorView,
    max_bytes: u64,
) -> Result<Vec<WeightPart>, String> {
    let rb = gpu_row_bytes(t.dtype, t.row_bytes());
    let room = (max_bytes as usize).saturating_sub(gpu_prefix(t.dtype).len());
    let rows_per_part = (room / rb.max(1)).min(t.rows());
    if rows_per_part == 0 {
        return Err(format!(
            "one row of {} ({rb} bytes) exceeds the adapter's buffer binding limit of {max_bytes} bytes",
            t.name
        ));
    }
    let bytes = gpu_rows(t.dtype, t.bytes(), t.row_bytes());
    (0..t.rows())
        .step_by(rows_per_part)
        .map(|r0| {
            let r1 = (r0 + rows_per_part).min(t.rows());
            Ok(WeightPart {
                buffer: weight_buffer(device, &t.name, t.dtype, &bytes[r0 * rb..r1 * rb])?,
                row_start: r0,
                rows: r1 - r0,
                first: 0,
            })
        })
        .collect()
}

type FreeLists = Rc<RefCell<HashMap<u64, Vec<wgpu::Buffer>>>>;

/// Activation buffers by size; a buffer returns to its list when its last user drops it.
#[derive(Default, Clone)]
pub struct ActPool {
    free: FreeLists,
}

/// A pooled buffer. Reuse is safe once dropped: later dispatches are recorded after every use of
/// it, and wgpu orders dispatches that touch the same buffer.
pub struct PooledBuffer {
    /// The buffer.
    pub buffer: wgpu::Buffer,
    free: FreeLists,
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        self.free
            .borrow_mut()
            .entry(self.buffer.size())
            .or_default()
            .push(self.buffer.clone());
    }
}

impl ActPool {
    /// A buffer of `floats` f32 values (contents undefined).
    pub fn take(&self, device: &wgpu::Device, floats: usize) -> Rc<PooledBuffer> {
        let size = (floats.max(1) * 4) as u64;
        let reused = self.free.borrow_mut().get_mut(&size).and_then(Vec::pop);
        let buffer = reused.unwrap_or_else(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("activation"),
                size,
                usage: STORAGE,
                mapped_at_creation: false,
            })
        });
        Rc::new(PooledBuffer {
            buffer,
            free: self.free.clone(),
        })
    }

    /// Bytes held by the pool's free buffers.
    pub fn free_bytes(&self) -> u64 {
        self.free
            .borrow()
            .iter()
            .map(|(size, v)| size * v.len() as u64)
            .sum()
    }
}

/// Keys and values of every layer on the GPU, grown (by copying) as positions fill. A layer with
/// a sliding window holds at most its [`CacheLayer::capacity`]: when a pass needs more, the
/// positions its window still needs are copied to the front (`start` is the first one held).
pub struct GpuKvCache {
    /// Per-layer key buffers.
    pub keys: Vec<wgpu::Buffer>,
    /// Per-layer value buffers.
    pub values: Vec<wgpu::Buffer>,
    /// Positions each layer's buffers hold now.
    pub allocated: Vec<usize>,
    /// Floats per position.
    pub kv_dim: usize,
    /// What each layer holds at most, and its window.
    pub layers: Vec<CacheLayer>,
    /// The first position each layer holds.
    pub start: Vec<usize>,
}
