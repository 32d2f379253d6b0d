//! The GPU backend: every op of the forward pass is a WGSL compute shader run through wgpu
//! (Vulkan, Metal, DX12, GL, WebGPU). Weights stay in their GGUF block encodings; a forward pass
//! records its dispatches into a command encoder and submits the rest in [`Backend::read`](super::Backend::read).
//!
//! The files: `context.rs` (adapters, devices, errors), `profile.rs` (device-limit profiles),
//! `shaders.rs` (WGSL composition and the limits each kernel needs), `repack.rs` (the weights'
//! word-aligned GPU layout), `buffers.rs` (weights, KV cache, pooled activations), `arena.rs` (per-step parameters), `record.rs` (pipelines, bind
//! groups, dispatches), `ops.rs` (each op of the forward pass as dispatches), `readback.rs`
//! (submission and read-back) and `profiler.rs` (timestamp queries).
//!
//! A long step (a decode step of a deep model) is submitted in pieces of [`SUBMIT_EVERY`]
//! dispatches as it is recorded, so the GPU starts on the first layers while the host records the
//! rest.

mod arena;
mod buffers;
pub mod context;
pub mod fault;
mod ops;
pub mod profile;
mod profiler;
mod readback;
mod record;
mod repack;
pub mod shaders;
pub mod tuning;

use std::collections::HashMap;
use std::rc::Rc;

pub use buffers::{GpuKvCache, GpuWeight};
#[cfg(not(target_arch = "wasm32"))]
pub use context::list_adapters;
pub use context::{AdapterReport, GpuChoice, GpuContext, list_adapters_async};

use crate::error::{Error, Result};
use arena::Arena;
use buffers::{ActPool, PooledBuffer, buffer_with};
use profiler::Profiler;
use shaders::Variant;

/// Activations on the GPU: `rows` x `cols` f32 in a pooled buffer.
pub struct GpuAct {
    buf: Rc<PooledBuffer>,
    /// Rows (tokens).
    pub rows: usize,
    /// Row width.
    pub cols: usize,
}

impl GpuAct {
    fn buffer(&self) -> &wgpu::Buffer {
        &self.buf.buffer
    }
}

type PipelineKey = (&'static str, Variant);

struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// The GPU backend over one device.
pub struct GpuBackend {
    ctx: GpuContext,
    pipelines: HashMap<PipelineKey, Rc<Pipeline>>,
    bind_groups: HashMap<(PipelineKey, Vec<wgpu::Buffer>), wgpu::BindGroup>,
    pool: ActPool,
    params: Arena,
    ids: Arena,
    /// The compute pass open on `encoder`, if any (declared first: it is dropped first).
    pass: Option<wgpu::ComputePass<'static>>,
    encoder: Option<wgpu::CommandEncoder>,
    staging: Option<wgpu::Buffer>,
    dummy: wgpu::Buffer,
    max_binding: u64,
    deferred: Option<Error>,
    weight_bytes: u64,
    submits: u64,
    /// Read-backs of results so far.
    reads: u64,
    dispatches: u64,
    /// Dispatches recorded since the last submission.
    unsubmitted: u64,
    bind_groups_made: u64,
    kv_bytes: u64,
    profiler: Option<Profiler>,
    f16_kv: bool,
    subgroups: bool,
    /// Profile with timestamps inside passes.
    inside_passes: bool,
    /// Decode mat-vecs with several threads per row.
    split_rows: bool,
    /// Threads per row in those, whether they sum within subgroups, the adapter's default and
    /// the most a row may have.
    lanes: u32,
    subgroup_lanes: bool,
    default_lanes: u32,
    max_lanes: u32,
    /// Split-row mat-vecs of integer formats on 8-bit activations, and whether the adapter may
    /// use them.
    int8: bool,
    int8_ok: bool,
    /// Decode attention split over chunks of the context.
    split_attention: bool,
    /// Rows each group of lanes computes in the split-row mat-vecs, and the adapter's default.
    group_rows: u32,
    default_group_rows: u32,
    /// The prefill tile shape (weight rows, tokens), whether its tiles hold f16, and whether
    /// the adapter can (shader-f16).
    tiles: (u32, u32),
    tile_f16: bool,
    tile_f16_ok: bool,
    /// Whether the decode kernel choices came from a tuning result (shown in the name).
    tuned: bool,
}

/// Optional fast paths; each defaults to on when the adapter has the feature.
#[derive(Clone, Copy, Debug)]
pub struct GpuOptions {
    /// Keep the KV cache in f16 (needs shader-f16): half the memory and bandwidth, keys and
    /// values rounded to f16 (attention outputs then agree with f32 to about 1e-3).
    pub f16_kv: bool,
    /// Use subgroup operations for reductions (needs subgroups).
    pub subgroups: bool,
    /// Lower the storage-binding limit used to split weights (tests).
    pub max_binding: Option<u64>,
    /// Decode mat-vecs split each weight row over several threads (shaders/matvec.wgsl), as GPUs
    /// want, and software rasterizers with subgroups (4 rows to a group of 4 lanes); off, each
    /// thread computes whole rows, which suits software rasterizers without subgroups, whose
    /// "threads" are SIMD lanes of a few CPU cores.
    pub split_rows: bool,
    /// Decode attention split over chunks of the context, a KV head's query heads in one
    /// workgroup (attention_decode.wgsl: flash-decoding), as GPUs want; off, one workgroup per
    /// query head walks the whole context (attention.wgsl), which is faster on software
    /// rasterizers.
    pub split_attention: bool,
    /// With `split_rows`, the mat-vecs of integer block formats multiply 8-bit activations
    /// with `dot4I8Packed` (quant/chunk_dot_i8.wgsl). Off by default: it rounds the activations
    /// (about 1e-2 in the logits) and only pays where the GPU's arithmetic, not its memory, is
    /// the limit; `ember tune` turns it on where it measures faster. Not on GL, which has no
    /// integer dot product (naga writes it as bit-field extracts, and llvmpipe's build of that
    /// disagrees with the CPU on rows of 16 blocks or more).
    pub int8_matvec: bool,
    /// When profiling, write timestamps between the dispatches of one compute pass (needs
    /// timestamp-query-inside-passes); otherwise each timed dispatch gets a pass of its own, as
    /// WebGPU requires.
    pub timestamps_inside_passes: bool,
}

impl GpuOptions {
    /// The default: every fast path the context's device supports, the f16 KV cache included
    /// (as llama.cpp's default cache type): half the cache's memory and bandwidth for about
    /// 2e-2 in logits of ~30.
    pub fn fastest(ctx: &GpuContext) -> GpuOptions {
        let software = software(&ctx.report);
        GpuOptions {
            f16_kv: ctx.report.shader_f16,
            subgroups: ctx.report.subgroups,
            max_binding: None,
            split_rows: !software || (ctx.report.subgroups && subgroup_lanes(&ctx.report)),
            split_attention: !software,
            int8_matvec: false,
            timestamps_inside_passes: timestamps_inside_passes(ctx),
        }
    }

    /// The fast paths that keep f32 accuracy: all but the f16 KV cache.
    pub fn accurate(ctx: &GpuContext) -> GpuOptions {
        GpuOptions {
            f16_kv: false,
            ..Self::fastest(ctx)
        }
    }
}

/// Whether the adapter is a software rasterizer (lavapipe, llvmpipe, SwiftShader), whose
/// "threads" are SIMD lanes of a few CPU cores.
fn software(report: &AdapterReport) -> bool {
    report.device_type == "Cpu"
}

/// Whether a mat-vec row's lanes may sum within a subgroup: every subgroup size the adapter may
/// use holds whole rows (of up to 4 lanes) and divides the 64-thread workgroup.
fn subgroup_lanes(report: &AdapterReport) -> bool {
    let (min, max) = report.subgroup_sizes;
    min >= 4 && max <= 64 && min.is_power_of_two() && max.is_power_of_two()
}

/// Whether the device can write timestamps between the dispatches of a compute pass.
fn timestamps_inside_passes(ctx: &GpuContext) -> bool {
    ctx.device
        .features()
        .contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
}

/// The variant of kernels without options.
const PLAIN: Variant = Variant {
    dtype: None,
    tile: 1,
    f16: false,
    subgroups: false,
    norm: false,
    lanes: 0,
    int8: false,
    group_rows: 0,
    tiles: (0, 0),
    wide_heads: false,
};

/// Dispatches recorded before the work so far is submitted, mid-step: enough that submissions
/// stay few (llama.cpp's Vulkan backend submits every ~100 nodes), few enough that a 30-layer
/// decode step reaches the GPU in several pieces while the host records the rest.
pub const SUBMIT_EVERY: u64 = 64;

/// Bytes of one parameter slot: a multiple of every adapter's storage offset alignment.
const MIN_SLOT: u64 = 256;

fn bytes_of(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Workgroup counts covering `n` invocations of 64, folded into two dimensions when needed.
fn linear_groups(n: usize) -> (u32, u32) {
    let groups = n.div_ceil(64).max(1) as u32;
    let x = groups.min(65535);
    (x, groups.div_ceil(x))
}

impl GpuBackend {
    /// A backend on the best adapter `choice` allows, with every fast path it has.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(choice: GpuChoice) -> Result<GpuBackend> {
        Self::new_with_kv_f16(choice, true)
    }

    /// As [`GpuBackend::new`], with the KV cache in f16 (where the adapter has shader-f16) or
    /// f32.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_with_kv_f16(choice: GpuChoice, kv_f16: bool) -> Result<GpuBackend> {
        let ctx = GpuContext::new(choice)?;
        let options = GpuOptions {
            f16_kv: kv_f16,
            ..GpuOptions::fastest(&ctx)
        };
        Self::with_context(ctx, options)
    }

    /// A backend on an opened device with the given fast paths (those the device lacks are off).
    pub fn with_context(ctx: GpuContext, options: GpuOptions) -> Result<GpuBackend> {
        let (ctx_f16, ctx_subgroups) = (ctx.report.shader_f16, ctx.report.subgroups);
        let inside_passes = options.timestamps_inside_passes && timestamps_inside_passes(&ctx);
        let max_binding = options.max_binding;
        let slot = (ctx.limits.min_storage_buffer_offset_alignment as u64).max(MIN_SLOT);
        let limit = ctx
            .limits
            .max_storage_buffer_binding_size
            .min(ctx.limits.max_buffer_size);
        let max_binding = max_binding.map_or(limit, |m| m.min(limit));
        let subgroups = options.subgroups && ctx_subgroups;
        let subgroup_lanes = subgroups && subgroup_lanes(&ctx.report);
        let int8_ok = ctx.report.backend != "Gl";
        let lanes = if subgroup_lanes {
            ctx.report.subgroup_sizes.0.min(shaders::MATVEC_LANES)
        } else {
            shaders::MATVEC_LANES
        };
        // Within a subgroup a row has at most the smallest subgroup size; through workgroup
        // memory, up to half the workgroup.
        let max_lanes = if subgroup_lanes { lanes } else { 32 };
        // GPUs start from one row per group of lanes as wide as the subgroup. A software
        // rasterizer runs a subgroup as the SIMD lanes of one core: there groups of 4 lanes
        // computing 4 rows each, sharing their activation loads, measured fastest (lavapipe,
        // default model: 9.5 tok/s against 8.0 with whole rows per thread).
        let (default_lanes, group_rows) = if software(&ctx.report) && subgroup_lanes {
            (4, 4)
        } else {
            (lanes, 1)
        };
        // Room for 4096 dispatches per step before the arena has to grow.
        let params = Arena::new(&ctx.device, 4096 * slot, slot);
        let ids = Arena::new(&ctx.device, 16 * 1024, slot);
        let dummy = buffer_with(&ctx.device, "dummy", &[0; 4]);
        Ok(GpuBackend {
            ctx,
            pipelines: HashMap::new(),
            bind_groups: HashMap::new(),
            pool: ActPool::default(),
            params,
            ids,
            pass: None,
            encoder: None,
            staging: None,
            dummy,
            max_binding,
            deferred: None,
            weight_bytes: 0,
            submits: 0,
            reads: 0,
            dispatches: 0,
            unsubmitted: 0,
            bind_groups_made: 0,
            kv_bytes: 0,
            profiler: None,
            f16_kv: options.f16_kv && ctx_f16,
            inside_passes,
            subgroups,
            split_rows: options.split_rows,
            lanes: default_lanes,
            subgroup_lanes,
            default_lanes,
            max_lanes,
            int8: options.int8_matvec && int8_ok,
            int8_ok,
            split_attention: options.split_attention,
            group_rows,
            default_group_rows: group_rows,
            tiles: shaders::DEFAULT_TILES,
            tile_f16: false,
            tile_f16_ok: ctx_f16,
            tuned: false,
        })
    }

    /// The adapter in use.
    pub fn adapter(&self) -> &AdapterReport {
        &self.ctx.report
    }

    /// Counters: (command submissions, bind groups created, pipelines created) so far.
    pub fn stats(&self) -> (u64, u64, usize) {
        (self.submits, self.bind_groups_made, self.pipelines.len())
    }

    /// The decode kernel choices in use.
    pub fn tuning(&self) -> tuning::Tuning {
        tuning::Tuning {
            split_rows: self.split_rows,
            split_attention: self.split_attention,
            int8: self.split_rows && self.int8,
            lanes: if self.split_rows { self.lanes } else { 0 },
            group_rows: if self.split_rows { self.group_rows } else { 0 },
            tiles: self.tiles,
            tile_f16: self.tile_f16,
        }
    }

    /// The threads per row the split-row mat-vecs may use here (`ember tune` times each).
    pub fn lane_choices(&self) -> Vec<u32> {
        [4, 8, 16, 32]
            .into_iter()
            .filter(|&l| l <= self.max_lanes)
            .collect()
    }

    /// Uses the decode kernels `t` from now on. With `measured` (a result of `ember tune`) the
    /// backend's name says `[tuned: …]`, so reports show the choice was measured, not a default.
    pub fn set_tuning(&mut self, t: tuning::Tuning, measured: bool) {
        self.split_rows = t.split_rows;
        self.split_attention = t.split_attention;
        self.int8 = t.int8 && self.int8_ok;
        self.lanes = if self.lane_choices().contains(&t.lanes) {
            t.lanes
        } else {
            self.default_lanes
        };
        self.group_rows = if tuning::GROUP_ROWS.contains(&t.group_rows) {
            t.group_rows
        } else {
            self.default_group_rows
        };
        self.tiles = if shaders::TILE_CHOICES.contains(&t.tiles) {
            t.tiles
        } else {
            shaders::DEFAULT_TILES
        };
        self.tile_f16 = t.tile_f16 && self.tile_f16_ok;
        self.tuned = measured;
    }

    /// Whether the prefill tiles may hold f16 here (the adapter has shader-f16).
    pub fn tile_f16_available(&self) -> bool {
        self.tile_f16_ok
    }

    /// Whether the 8-bit mat-vecs are available here (see [`GpuOptions::int8_matvec`]).
    pub fn int8_available(&self) -> bool {
        self.int8_ok
    }

    /// Compute dispatches recorded so far.
    pub fn dispatches(&self) -> u64 {
        self.dispatches
    }

    /// Bytes of GPU memory held by weights, KV caches and pooled activations.
    pub fn gpu_bytes(&self) -> u64 {
        self.weight_bytes + self.kv_bytes + self.pool.free_bytes()
    }
}
