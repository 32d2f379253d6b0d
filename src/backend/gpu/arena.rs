//! The per-step upload arena: dispatch parameters and token ids, slot by slot.

use super::{GpuContext, buffers};

/// A growable buffer of per-dispatch data (parameters, token ids), filled slot by slot while a
/// step is recorded and uploaded with one `queue.write_buffer` before the step is submitted.
pub(super) struct Arena {
    pub(super) buffer: wgpu::Buffer,
    pub(super) used: u64,
    pub(super) slot: u64,
    /// Bytes not yet written to `buffer`, starting at `pending_at`.
    pub(super) pending: Vec<u8>,
    pub(super) pending_at: u64,
}

impl Arena {
    pub(super) fn new(device: &wgpu::Device, size: u64, slot: u64) -> Arena {
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("arena"),
            size,
            usage: buffers::STORAGE,
            mapped_at_creation: false,
        });
        Arena {
            buffer,
            used: 0,
            slot,
            pending: Vec::new(),
            pending_at: 0,
        }
    }

    /// Places `bytes` in fresh slots; returns the offset and whether the buffer was replaced.
    pub(super) fn push(&mut self, ctx: &GpuContext, bytes: &[u8]) -> (u64, bool) {
        let need = (bytes.len() as u64).div_ceil(self.slot).max(1) * self.slot;
        let mut replaced = false;
        if self.used + need > self.buffer.size() {
            // Earlier slots stay valid: the old buffer gets its data now and lives on in the
            // bind groups that use it.
            self.flush(ctx);
            let size = (self.buffer.size() * 2).max(need * 2);
            *self = Arena::new(&ctx.device, size, self.slot);
            replaced = true;
        }
        let at = self.used;
        if self.pending.is_empty() {
            self.pending_at = at;
        }
        self.pending.extend_from_slice(bytes);
        self.pending
            .resize((at + need - self.pending_at) as usize, 0);
        self.used += need;
        (at, replaced)
    }

    /// Queues the pending bytes for upload (applied before the next submission).
    pub(super) fn flush(&mut self, ctx: &GpuContext) {
        if !self.pending.is_empty() {
            ctx.queue
                .write_buffer(&self.buffer, self.pending_at, &self.pending);
            self.pending.clear();
        }
    }

    /// Uploads what is pending and starts a new step.
    pub(super) fn finish_step(&mut self, ctx: &GpuContext) {
        self.flush(ctx);
        self.used = 0;
    }
}
