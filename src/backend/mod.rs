//! The interface the forward pass is written against. A backend *records* work; only
//! [`Backend::read`] waits for results, so a GPU backend can turn a whole step into one submission.

pub mod cpu;
pub mod gpu;

use crate::error::Result;
use crate::format::{Activation, RopeLayout, TensorView};

/// Shape of the attention computation for one layer.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (`heads` is a multiple).
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Sliding window: a row at position `p` attends to positions `p + 1 - window ..= p`
    /// only (0: every earlier position).
    pub window: usize,
    /// Multiplies q·k (usually 1/√head_dim).
    pub scale: f32,
    /// Soft cap of the scaled scores, `s ← c·tanh(s/c)` (0: none).
    pub softcap: f32,
}

impl AttentionShape {
    /// Plain causal attention: no window, scale 1/√head_dim, no soft cap.
    pub fn plain(heads: usize, kv_heads: usize, head_dim: usize) -> AttentionShape {
        AttentionShape {
            heads,
            kv_heads,
            head_dim,
            window: 0,
            scale: 1.0 / (head_dim as f32).sqrt(),
            softcap: 0.0,
        }
    }

    /// A scaled score with the soft cap applied.
    pub fn cap(&self, s: f32) -> f32 {
        soft_cap(s, self.softcap)
    }

    /// The first position a row at `pos` attends to.
    pub fn first(&self, pos: usize) -> usize {
        if self.window == 0 {
            0
        } else {
            (pos + 1).saturating_sub(self.window)
        }
    }
}

/// `c·tanh(s/c)`, or `s` when `c` is 0.
pub fn soft_cap(s: f32, c: f32) -> f32 {
    if c > 0.0 { c * (s / c).tanh() } else { s }
}

/// An elementwise operation applied in place ([`Backend::unary`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// `x ← s·x`.
    Scale(f32),
    /// `x ← c·tanh(x/c)`.
    SoftCap(f32),
}

impl Unary {
    /// The operation on one value.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Unary::Scale(s) => s * x,
            Unary::SoftCap(c) => soft_cap(x, c),
        }
    }
}

/// What the KV cache of one layer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLayer {
    /// Positions it holds at most: the context, or for a layer with a sliding window its window
    /// and the longest chunk of rows a pass takes ([`ring_capacity`]).
    pub capacity: usize,
    /// The layer's sliding window (0: none). Positions older than the window are dropped when
    /// the cache needs their room.
    pub window: usize,
}

/// What a backend can give a KV cache ([`Backend::cache_budget`]).
#[derive(Clone, Copy, Debug)]
pub struct CacheBudget {
    /// Bytes available.
    pub available: u64,
    /// Bytes per cached value (a key or value element).
    pub value_bytes: u64,
}

/// Positions a cache of a layer with `window` needs when passes take at most `chunk` rows: the
/// window before the first row plus the rows.
pub fn ring_capacity(window: usize, chunk: usize) -> usize {
    window + chunk.max(window) - 1
}

/// The first position a layer's cache must hold for rows `pos0..pos0 + rows`, its first held
/// position being `start` now: `start` while they fit, else the first position the window still
/// needs (what is before it is dropped). A pass from position 0 starts afresh.
pub fn cache_start(layer: CacheLayer, start: usize, pos0: usize, rows: usize) -> usize {
    if pos0 == 0 {
        return 0;
    }
    if pos0 + rows - start <= layer.capacity {
        return start;
    }
    let needed = (pos0 + 1).saturating_sub(layer.window);
    debug_assert!(
        needed >= start && pos0 + rows - needed <= layer.capacity,
        "the model keeps passes within what a window-sized cache holds"
    );
    needed
}

/// Adds `bytes` to `name`'s entry of per-op totals.
pub fn add_traffic(totals: &mut Vec<(&'static str, u64)>, name: &'static str, bytes: u64) {
    match totals.iter_mut().find(|(n, _)| *n == name) {
        Some((_, b)) => *b += bytes,
        None => totals.push((name, bytes)),
    }
}

/// Bytes the causal attention of `rows` query rows at `pos0..` reads from a cache of `kv_dim`
/// values per position (`elem` bytes each), keys and values, each position once per row.
pub fn attention_cache_bytes(rows: usize, pos0: usize, kv_dim: usize, elem: usize) -> u64 {
    let positions: usize = (0..rows).map(|r| pos0 + r + 1).sum();
    (2 * positions * kv_dim * elem) as u64
}

/// One sequence's rows in a batch of several ([`Backend::rope_attention_seqs`]).
#[derive(Clone, Copy, Debug)]
pub struct SeqRows {
    /// Its first row in the stacked activations.
    pub start: usize,
    /// How many rows.
    pub rows: usize,
    /// Position of the first in its cache.
    pub pos0: usize,
}

/// The rotary embedding of a model: its frequencies (a vector weight) and pair layout.
pub struct Rope<'a, W> {
    /// One inverse frequency per rotated pair of a head.
    pub inv_freq: &'a W,
    /// Which elements form the pairs.
    pub layout: RopeLayout,
    /// Pairs rotated in each head: `head_dim / 2`, or fewer where only the first dimensions of
    /// a head rotate (Phi-3's partial rotary; with [`RopeLayout::Halves`] pair `i` is then
    /// `(i, i + pairs)`).
    pub pairs: usize,
}

impl<W> Clone for Rope<'_, W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W> Copy for Rope<'_, W> {}

/// An RMSNorm to apply before a product: its weight (a vector) and epsilon.
pub struct Norm<'a, W> {
    /// The per-column gain.
    pub weight: &'a W,
    /// Added to the mean square before the square root.
    pub eps: f32,
}

/// Per-op times collected while profiling.
#[derive(Clone, Debug, Default)]
pub struct OpTimes {
    /// Time per kind of op.
    pub ops: Vec<(String, std::time::Duration)>,
    /// Bytes each kind of op must move (read and written, from the shapes and formats: weights,
    /// activations, KV cache), summed over the same period: with the times, its bandwidth.
    pub bytes: Vec<(String, u64)>,
    /// Device time from each step's first op start to its last op end, summed over steps
    /// (GPUs with timestamp queries; the host's recording and read-back are outside it).
    pub device_span: Option<std::time::Duration>,
}

/// The handful of operations a transformer forward pass needs.
pub trait Backend {
    /// A weight tensor after upload, still in its file encoding.
    type Weight;
    /// Activations: `rows` tokens of `cols` f32 values.
    type Act;
    /// The key/value cache of every layer.
    type Cache;

    /// Short name for reports (`cpu`, `vulkan: llvmpipe …`).
    fn name(&self) -> String;
    /// Makes a weight available to the backend (once, at load).
    fn upload(&mut self, t: &TensorView) -> Result<Self::Weight>;
    /// Uploads weights used together (gate and up), by default one by one. GPU backends put
    /// them in one buffer when they share a format and width, so [`Backend::glu`] reads both in
    /// one dispatch.
    fn upload_group(&mut self, ts: &[&TensorView]) -> Result<Vec<Self::Weight>> {
        ts.iter().map(|t| self.upload(t)).collect()
    }
    /// Memory a KV cache may take here and the bytes of one cached value, when the backend
    /// knows them (the CPU: the system's available memory, f32 values): a context whose cache
    /// cannot fit is refused up front instead of failing when the conversation grows into it.
    fn cache_budget(&self) -> Result<Option<CacheBudget>> {
        Ok(None)
    }
    /// An empty KV cache of `kv_dim` values per position, for layers shaped as `layers` says.
    fn new_cache(&mut self, kv_dim: usize, layers: &[CacheLayer]) -> Result<Self::Cache>;
    /// The first position layer `layer` of `cache` still holds (0 unless its window has moved
    /// on).
    fn cache_start(&self, cache: &Self::Cache, layer: usize) -> usize;
    /// Activations from host values (`rows` x `cols`, row-major).
    fn load_act(&mut self, data: &[f32], rows: usize, cols: usize) -> Self::Act;
    /// Rows `ids` of the embedding table.
    fn embed(&mut self, table: &Self::Weight, ids: &[u32]) -> Self::Act;
    /// RMSNorm of every row, times `w`.
    fn rms_norm(&mut self, x: &Self::Act, w: &Self::Weight, eps: f32) -> Self::Act;
    /// RMSNorm of each of the `heads` equal parts of every row (one head each), times `w` (one
    /// head wide): Qwen3's and Gemma 3's q/k norms.
    fn rms_norm_heads(
        &mut self,
        x: &Self::Act,
        heads: usize,
        w: &Self::Weight,
        eps: f32,
    ) -> Self::Act;
    /// `x · wᵀ (+ bias)`: `w` has one row per output feature.
    fn matmul(&mut self, x: &Self::Act, w: &Self::Weight, bias: Option<&Self::Weight>)
    -> Self::Act;
    /// `residual += x · wᵀ`: a product whose only use is a residual add (attention output,
    /// MLP down). GPU backends write it into `residual` in the product's epilogue (one dispatch
    /// instead of two).
    fn matmul_add(&mut self, x: &Self::Act, w: &Self::Weight, residual: &mut Self::Act) {
        let y = self.matmul(x, w, None);
        self.add(residual, &y);
    }
    /// [`Backend::matmul`] of the same `x` with several weights (q, k and v; gate and up), each
    /// with its optional bias. Backends that can share work between them (the CPU quantizes `x`
    /// once and runs one parallel job) override it.
    fn matmuls(
        &mut self,
        x: &Self::Act,
        ws: &[(&Self::Weight, Option<&Self::Weight>)],
    ) -> Vec<Self::Act> {
        ws.iter()
            .map(|&(w, bias)| self.matmul(x, w, bias))
            .collect()
    }
    /// [`Backend::matmuls`] of `RMSNorm(x)`. GPU backends fold the norm into the products'
    /// dispatch for one token (each workgroup scales its sums by the row's 1/rms).
    fn norm_matmuls(
        &mut self,
        x: &Self::Act,
        norm: Norm<'_, Self::Weight>,
        ws: &[(&Self::Weight, Option<&Self::Weight>)],
    ) -> Vec<Self::Act> {
        let h = self.rms_norm(x, norm.weight, norm.eps);
        self.matmuls(&h, ws)
    }
    /// Rotates every head of every row in place; row `r` is at position `pos0 + r`.
    fn rope(&mut self, x: &mut Self::Act, heads: usize, pos0: usize, rope: Rope<'_, Self::Weight>);
    /// Causal attention of `q` over the cache after appending `k` and `v` at `pos0..`.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &mut self,
        q: &Self::Act,
        k: &Self::Act,
        v: &Self::Act,
        cache: &mut Self::Cache,
        layer: usize,
        pos0: usize,
        shape: AttentionShape,
    ) -> Self::Act;
    /// RoPE of `q` and `k` in place, then [`Backend::attention`]. GPU backends rotate and
    /// store into the cache in one dispatch instead of four.
    #[allow(clippy::too_many_arguments)]
    fn rope_attention(
        &mut self,
        q: &mut Self::Act,
        k: &mut Self::Act,
        v: &Self::Act,
        rope: Rope<'_, Self::Weight>,
        cache: &mut Self::Cache,
        layer: usize,
        pos0: usize,
        shape: AttentionShape,
    ) -> Self::Act {
        self.rope(q, shape.heads, pos0, rope);
        self.rope(k, shape.kv_heads, pos0, rope);
        self.attention(q, k, v, cache, layer, pos0, shape)
    }
    /// [`Backend::rope_attention`] of several sequences whose rows are stacked in `q`, `k` and
    /// `v`: sequence `i` is `seqs[i]`, with cache `caches[i]`; the outputs stacked the same way.
    /// By default one call per sequence on copies of its rows; the CPU runs every sequence's
    /// heads in one parallel job.
    #[allow(clippy::too_many_arguments)]
    fn rope_attention_seqs(
        &mut self,
        q: &Self::Act,
        k: &Self::Act,
        v: &Self::Act,
        rope: Rope<'_, Self::Weight>,
        caches: &mut [&mut Self::Cache],
        seqs: &[SeqRows],
        layer: usize,
        shape: AttentionShape,
    ) -> Self::Act {
        let parts: Vec<Self::Act> = seqs
            .iter()
            .zip(caches.iter_mut())
            .map(|(s, cache)| {
                let (mut q, mut k) = (self.rows(q, s.start, s.rows), self.rows(k, s.start, s.rows));
                let v = self.rows(v, s.start, s.rows);
                self.rope_attention(&mut q, &mut k, &v, rope, cache, layer, s.pos0, shape)
            })
            .collect();
        self.concat_rows(&parts.iter().collect::<Vec<_>>())
    }
    /// The gated MLP's first half: `act(x · gateᵀ) * (x · upᵀ)`. GPU backends do it in one
    /// dispatch for weights from one [`Backend::upload_group`].
    fn glu(
        &mut self,
        x: &Self::Act,
        gate: &Self::Weight,
        up: &Self::Weight,
        act: Activation,
    ) -> Self::Act {
        // One product per weight, in order (`matmuls`' contract).
        let outs = self.matmuls(x, &[(gate, None), (up, None)]);
        self.act_mul(&outs[0], &outs[1], act)
    }
    /// [`Backend::glu`] of `RMSNorm(x)`, the norm folded in as in [`Backend::norm_matmuls`].
    fn norm_glu(
        &mut self,
        x: &Self::Act,
        norm: Norm<'_, Self::Weight>,
        gate: &Self::Weight,
        up: &Self::Weight,
        act: Activation,
    ) -> Self::Act {
        let h = self.rms_norm(x, norm.weight, norm.eps);
        self.glu(&h, gate, up, act)
    }
    /// `act(gate) * up`, elementwise.
    fn act_mul(&mut self, gate: &Self::Act, up: &Self::Act, act: Activation) -> Self::Act;
    /// `x ← op(x)`, elementwise.
    fn unary(&mut self, x: &mut Self::Act, op: Unary);
    /// `x += y`.
    fn add(&mut self, x: &mut Self::Act, y: &Self::Act);
    /// Rows `start..start + count` of `x`.
    fn rows(&mut self, x: &Self::Act, start: usize, count: usize) -> Self::Act;
    /// `parts` stacked in order into one activation (all of the same width).
    fn concat_rows(&mut self, parts: &[&Self::Act]) -> Self::Act;
    /// Bytes of device memory the backend holds (weights, caches, activations); 0 on the CPU,
    /// whose weights stay in the model file's memory map.
    fn device_bytes(&self) -> u64 {
        0
    }
    /// Starts or stops timing every op; timings accumulate until [`Backend::take_profile`].
    fn set_profiling(&mut self, on: bool) {
        let _ = on;
    }
    /// Time spent per kind of op since profiling started (resets the totals). GPU backends
    /// report device time from timestamp queries where the adapter has them.
    fn take_profile(&mut self) -> OpTimes {
        OpTimes::default()
    }
    /// Waits for the recorded work and returns `x` row-major.
    fn read(&mut self, x: &Self::Act) -> Result<Vec<f32>>;
}
