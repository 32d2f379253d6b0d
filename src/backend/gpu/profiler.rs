//! Per-kernel device time from timestamp queries (`--profile`).

/// Timestamp queries around every dispatch of a step, summed per kernel.
///
/// Where the adapter can write timestamps inside a compute pass, one timestamp goes between
/// consecutive dispatches, so a kernel's time runs from the end of the one before it (its
/// barrier and binding included) to its own end and the kernels tile the step. Elsewhere
/// (WebGPU) each timed dispatch gets a pass of its own, timed at its boundaries.
pub(super) struct Profiler {
    pub(super) set: wgpu::QuerySet,
    pub(super) inside_passes: bool,
    /// Queries written in the step being recorded.
    pub(super) written: u32,
    /// The step's timed dispatches: kernel, start query, end query.
    pub(super) timed: Vec<(&'static str, u32, u32)>,
    /// The query the next dispatch in the open pass starts from (the previous one's end).
    pub(super) start: Option<u32>,
    pub(super) resolve: wgpu::Buffer,
    pub(super) readback: wgpu::Buffer,
    /// Nanoseconds per kernel since profiling started.
    pub(super) totals: Vec<(&'static str, f64)>,
    /// Nanoseconds from each step's first kernel start to its last kernel end, summed.
    pub(super) span_ns: f64,
    /// Bytes each kernel must move, summed over the dispatches since profiling started.
    pub(super) bytes: Vec<(&'static str, u64)>,
}

/// Timestamp queries per step (two per dispatch at most).
pub(super) const PROFILE_QUERIES: u32 = 4096;

impl Profiler {
    pub(super) fn new(device: &wgpu::Device, inside_passes: bool) -> Profiler {
        let buffer = |label, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: 8 * PROFILE_QUERIES as u64,
                usage,
                mapped_at_creation: false,
            })
        };
        Profiler {
            set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kernel times"),
                ty: wgpu::QueryType::Timestamp,
                count: PROFILE_QUERIES,
            }),
            inside_passes,
            written: 0,
            timed: Vec::new(),
            start: None,
            resolve: buffer(
                "timestamps",
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            ),
            readback: buffer(
                "timestamps read",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
            totals: Vec::new(),
            span_ns: 0.0,
            bytes: Vec::new(),
        }
    }

    /// Takes `n` query indices if the set has room.
    pub(super) fn take(&mut self, n: u32) -> Option<u32> {
        let at = self.written;
        (at + n <= PROFILE_QUERIES).then(|| {
            self.written += n;
            at
        })
    }

    /// Timestamps at the boundaries of a pass holding one dispatch of `kernel`.
    pub(super) fn pass_writes(
        &mut self,
        kernel: &'static str,
    ) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        let at = self.take(2)?;
        self.timed.push((kernel, at, at + 1));
        Some(wgpu::ComputePassTimestampWrites {
            query_set: &self.set,
            beginning_of_pass_write_index: Some(at),
            end_of_pass_write_index: Some(at + 1),
        })
    }

    /// Before a dispatch: the first of a pass writes the timestamp it starts from.
    pub(super) fn mark_start(&mut self, pass: &mut wgpu::ComputePass) {
        if self.start.is_none() {
            self.start = self.take(1);
            if let Some(at) = self.start {
                pass.write_timestamp(&self.set, at);
            }
        }
    }

    /// After a dispatch of `kernel`: its end, which the next dispatch starts from.
    pub(super) fn mark_end(&mut self, pass: &mut wgpu::ComputePass, kernel: &'static str) {
        let (Some(start), Some(end)) = (self.start, self.take(1)) else {
            return;
        };
        pass.write_timestamp(&self.set, end);
        self.timed.push((kernel, start, end));
        self.start = Some(end);
    }

    /// Adds a finished step's timestamps (`ticks`, one u64 per query written) to the totals.
    pub(super) fn add_step(&mut self, ticks: &[u64], period: f64) {
        let first = ticks.iter().copied().min().unwrap_or(0);
        let last = ticks.iter().copied().max().unwrap_or(0);
        self.span_ns += last.saturating_sub(first) as f64 * period;
        for (kernel, start, end) in self.timed.drain(..) {
            let ns = ticks[end as usize].saturating_sub(ticks[start as usize]) as f64 * period;
            match self.totals.iter_mut().find(|(k, _)| *k == kernel) {
                Some((_, t)) => *t += ns,
                None => self.totals.push((kernel, ns)),
            }
        }
        self.written = 0;
        self.start = None;
    }
}
