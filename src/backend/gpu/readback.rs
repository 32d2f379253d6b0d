//! Submitting a step and reading results back: blocking natively, awaited in the browser.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::{GpuAct, GpuBackend};
use crate::error::{Error, Result};

/// The outcome of a buffer mapping (once known) and the task waiting for it.
type MapState = (
    Option<std::result::Result<(), wgpu::BufferAsyncError>>,
    Option<Waker>,
);

/// Completion of a buffer mapping, as a future (driven by `device.poll` natively, by the
/// browser's event loop on the web).
struct MapFuture(Arc<Mutex<MapState>>);

impl Future for MapFuture {
    type Output = std::result::Result<(), wgpu::BufferAsyncError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match state.0.take() {
            Some(r) => Poll::Ready(r),
            None => {
                state.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl GpuBackend {
    /// Submits what is recorded so far, mid-step: the parameters and ids its dispatches use are
    /// queued for upload first (queue writes land before the submissions after them).
    pub(super) fn submit_recorded(&mut self) {
        self.end_pass();
        self.unsubmitted = 0;
        let Some(encoder) = self.encoder.take() else {
            return;
        };
        self.params.flush(&self.ctx);
        self.ids.flush(&self.ctx);
        self.ctx.queue.submit([encoder.finish()]);
        self.submits += 1;
    }

    /// Submits the rest of the recorded step and reads `x` back.
    pub async fn read_async(&mut self, x: &GpuAct) -> Result<Vec<f32>> {
        self.end_pass();
        let encoder = self.encoder.take();
        self.params.finish_step(&self.ctx);
        self.ids.finish_step(&self.ctx);
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        let mut encoder =
            encoder.unwrap_or_else(|| self.ctx.device.create_command_encoder(&Default::default()));
        let size = (x.rows * x.cols * 4) as u64;
        let staging = match &self.staging {
            Some(s) if s.size() >= size => s.clone(),
            _ => {
                let s = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("staging"),
                    size: size.max(4),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                self.staging.insert(s).clone()
            }
        };
        encoder.copy_buffer_to_buffer(x.buffer(), 0, &staging, 0, size);
        let written = self.profiler.as_ref().map_or(0, |p| p.written);
        if let Some(p) = self.profiler.as_ref().filter(|_| written > 0) {
            encoder.resolve_query_set(&p.set, 0..written, &p.resolve, 0);
            encoder.copy_buffer_to_buffer(&p.resolve, 0, &p.readback, 0, 8 * written as u64);
        }
        self.reads += 1;
        self.inject_read_fault(self.reads);
        self.ctx.queue.submit([encoder.finish()]);
        self.submits += 1;
        self.unsubmitted = 0;
        let bytes = self.map_read(&staging, size).await?;
        if let Some(readback) = self
            .profiler
            .as_ref()
            .filter(|_| written > 0)
            .map(|p| p.readback.clone())
        {
            let ticks = self.map_read(&readback, 8 * written as u64).await?;
            let period = self.ctx.queue.get_timestamp_period() as f64;
            if let Some(p) = self.profiler.as_mut() {
                p.add_step(bytemuck::cast_slice(&ticks), period);
            }
        }
        Ok(bytemuck::cast_slice::<u8, f32>(&bytes).to_vec())
    }

    /// Maps the first `size` bytes of `buffer` (after the work submitted so far) and copies them out.
    async fn map_read(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        let slice = buffer.slice(..size);
        let state: Arc<Mutex<MapState>> = Arc::new(Mutex::new((None, None)));
        let shared = state.clone();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
            s.0 = Some(r);
            if let Some(w) = s.1.take() {
                w.wake();
            }
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.ctx
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(std::time::Duration::from_secs(300)),
            })
            .map_err(|e| Error::Backend(format!("waiting for the GPU: {e}")))?;
        let mapped = MapFuture(state).await;
        self.ctx.errors.check()?;
        mapped.map_err(|e| Error::Backend(format!("reading results back: {e}")))?;
        let data = slice
            .get_mapped_range()
            .map_err(|e| Error::Backend(format!("reading results back: {e}")))?;
        let out = data.to_vec();
        drop(data);
        buffer.unmap();
        Ok(out)
    }
}
