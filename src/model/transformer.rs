//! The forward pass of every architecture (`src/arch/`): a pre-norm decoder whose differences
//! are [`ModelConfig`] data — biases, q/k head norms, post-norms, the MLP's activation, the
//! embedding scale, attention scale and soft caps, sliding windows per layer with their own RoPE,
//! tied output, rope layout and theta, GQA ratio.

use super::{LanguageModel, SeqChunk, f32_tensor};
use crate::backend::gpu::GpuBackend;
use crate::backend::{
    AttentionShape, Backend, CacheBudget, CacheLayer, Norm, Rope, SeqRows, Unary, ring_capacity,
};
use crate::error::{Error, Result};
use crate::format::{ModelConfig, ModelFile};

struct Layer<W> {
    attn_norm: W,
    q: W,
    k: W,
    v: W,
    q_bias: Option<W>,
    k_bias: Option<W>,
    v_bias: Option<W>,
    q_norm: Option<W>,
    k_norm: Option<W>,
    o: W,
    post_attn_norm: Option<W>,
    ffn_norm: W,
    post_ffn_norm: Option<W>,
    gate: W,
    up: W,
    down: W,
}

/// A model with its weights uploaded to backend `B`, and a KV cache per sequence slot.
pub struct Model<B: Backend> {
    config: ModelConfig,
    backend: B,
    token_embd: B::Weight,
    output_norm: B::Weight,
    output: Option<B::Weight>,
    inv_freq: B::Weight,
    /// RoPE frequencies of the sliding-window layers, when they have their own.
    inv_freq_local: Option<B::Weight>,
    /// Multiplies q·k: the model's scale with Phi-3's attention factor.
    attn_scale: f32,
    /// Whether some layer's cache is window-sized (passes then take at most [`RING_CHUNK`] rows).
    ring: bool,
    layers: Vec<Layer<B::Weight>>,
    caches: Vec<B::Cache>,
    ctx: usize,
}

/// Rows a pass takes at once when some layer's cache is window-sized (longer chunks are split):
/// such a cache holds the window before a pass's first row and the pass's rows.
pub const RING_CHUNK: usize = 512;

impl<B: Backend> Model<B> {
    /// Uploads `file`'s weights to `backend` and makes a cache of `ctx` positions (0: the model's
    /// trained context length).
    pub fn new(file: &ModelFile, backend: B, ctx: usize) -> Result<Model<B>> {
        Self::with_slots(file, backend, ctx, 1)
    }

    /// As [`Model::new`], with `slots` caches of `ctx` positions each: sequences that
    /// [`LanguageModel::forward_batch`] evaluates together.
    pub fn with_slots(file: &ModelFile, backend: B, ctx: usize, slots: usize) -> Result<Model<B>> {
        Self::with_caches(file, backend, ctx, slots, true)
    }

    /// As [`Model::with_slots`]; `window_sized` false keeps the whole context in the caches of
    /// sliding-window layers too (llama.cpp's `--swa-full`: more memory, and a sequence can then
    /// continue from any earlier position).
    pub fn with_caches(
        file: &ModelFile,
        mut backend: B,
        ctx: usize,
        slots: usize,
        window_sized: bool,
    ) -> Result<Model<B>> {
        if slots == 0 {
            return Err(Error::Invalid(
                "a model needs at least one sequence slot".into(),
            ));
        }
        let cfg = file.config.clone();
        let ctx = fit_context(&cfg, ctx, slots, window_sized, backend.cache_budget()?)?;
        let w = &file.weights;
        let mut layers = Vec::with_capacity(cfg.layers);
        for l in &w.layers {
            let [gate, up_w]: [B::Weight; 2] = backend
                .upload_group(&[&l.gate, &l.up])?
                .try_into()
                .map_err(|_| Error::Backend("upload_group returned the wrong count".into()))?;
            let [q, k, v]: [B::Weight; 3] =
                backend
                    .upload_group(&[&l.q, &l.k, &l.v])?
                    .try_into()
                    .map_err(|_| Error::Backend("upload_group returned the wrong count".into()))?;
            let mut up = |t: &crate::format::TensorView| backend.upload(t);
            layers.push(Layer {
                attn_norm: up(&l.attn_norm)?,
                q,
                k,
                v,
                q_bias: l.q_bias.as_ref().map(&mut up).transpose()?,
                k_bias: l.k_bias.as_ref().map(&mut up).transpose()?,
                v_bias: l.v_bias.as_ref().map(&mut up).transpose()?,
                q_norm: l.q_norm.as_ref().map(&mut up).transpose()?,
                k_norm: l.k_norm.as_ref().map(&mut up).transpose()?,
                o: up(&l.o)?,
                post_attn_norm: l.post_attn_norm.as_ref().map(&mut up).transpose()?,
                ffn_norm: up(&l.ffn_norm)?,
                post_ffn_norm: l.post_ffn_norm.as_ref().map(&mut up).transpose()?,
                gate,
                up: up_w,
                down: up(&l.down)?,
            });
        }
        let mut up = |t: &crate::format::TensorView| backend.upload(t);
        let mut inv_freq = cfg.rope_inv_freqs();
        // Per-frequency divisors: Llama 3's in the file, Phi-3's for this context's length.
        let divisors = match (&w.rope_freqs, &cfg.longrope) {
            (Some(t), _) => Some(t.to_f32()),
            (None, Some(lr)) => Some(lr.factors(ctx).to_vec()),
            (None, None) => None,
        };
        if let Some(divisors) = divisors {
            inv_freq.iter_mut().zip(divisors).for_each(|(f, d)| *f /= d);
        }
        // Phi-3's attention factor multiplies the rotated q and k: the scores by its square.
        let attn_scale = cfg.attn_scale
            * cfg
                .longrope
                .as_ref()
                .map_or(1.0, |lr| lr.attn_factor.powi(2));
        let inv_freq = up(&f32_tensor("rope_inv_freq", &inv_freq)?)?;
        let inv_freq_local = cfg
            .rope_inv_freqs_local()
            .map(|f| up(&f32_tensor("rope_inv_freq_local", &f)?))
            .transpose()?;
        let token_embd = up(&w.token_embd)?;
        let output_norm = up(&w.output_norm)?;
        let output = w.output.as_ref().map(&mut up).transpose()?;
        let cache_layers = cache_layers(&cfg, ctx, window_sized);
        let ring = cache_layers.iter().any(|l| l.capacity < ctx);
        let caches = (0..slots)
            .map(|_| backend.new_cache(cfg.kv_dim(), &cache_layers))
            .collect::<Result<Vec<_>>>()?;
        Ok(Model {
            config: cfg,
            backend,
            token_embd,
            output_norm,
            output,
            inv_freq,
            inv_freq_local,
            attn_scale,
            layers,
            caches,
            ring,
            ctx,
        })
    }

    /// The backend running this model.
    pub fn backend(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Checks `chunks` against the model: tokens in the vocabulary and within each slot's
    /// context, every slot known and used once.
    fn check(&self, chunks: &[SeqChunk<'_>]) -> Result<()> {
        if chunks.is_empty() || chunks.iter().any(|c| c.ids.is_empty()) {
            return Err(Error::Invalid("nothing to evaluate: no tokens".into()));
        }
        for (i, c) in chunks.iter().enumerate() {
            if c.slot >= self.caches.len() {
                return Err(Error::Invalid(format!(
                    "sequence slot {} does not exist (the model has {})",
                    c.slot,
                    self.caches.len()
                )));
            }
            if chunks[..i].iter().any(|o| o.slot == c.slot) {
                return Err(Error::Invalid(format!(
                    "sequence slot {} appears twice in one batch",
                    c.slot
                )));
            }
            if self.resumable(c.slot, c.pos0) != c.pos0 {
                return Err(Error::Invalid(format!(
                    "slot {} cannot continue at position {}: its window-sized cache has dropped positions the window needs (start again from 0)",
                    c.slot, c.pos0
                )));
            }
            if c.pos0 + c.ids.len() > self.ctx {
                return Err(Error::Invalid(format!(
                    "{} tokens at position {} exceed the context of {} tokens",
                    c.ids.len(),
                    c.pos0,
                    self.ctx
                )));
            }
            let vocab = self.config.vocab_size;
            if let Some(&bad) = c.ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(Error::Invalid(format!(
                    "token id {bad} is outside the vocabulary of {vocab}"
                )));
            }
        }
        Ok(())
    }

    /// Records the forward pass of `chunks` (see [`LanguageModel::forward_batch`]) and returns
    /// the logits without reading them back: reading is the one step that differs between
    /// blocking hosts and the browser. The rows of every chunk go through each weight product
    /// together (one read of the weights for all); RoPE and attention run per chunk, on its own
    /// slot's cache and positions. With `all_logits` (one chunk only) every row's logits,
    /// otherwise each chunk's last row's.
    fn record(&mut self, chunks: &[SeqChunk<'_>], all_logits: bool) -> Result<B::Act> {
        self.check(chunks)?;
        let cfg = &self.config;
        let b = &mut self.backend;
        let ids: Vec<u32> = chunks.iter().flat_map(|c| c.ids.iter().copied()).collect();
        // First row of each chunk in the batch.
        let starts: Vec<usize> = chunks
            .iter()
            .scan(0, |row, c| {
                let s = *row;
                *row += c.ids.len();
                Some(s)
            })
            .collect();
        let seqs: Vec<SeqRows> = chunks
            .iter()
            .zip(&starts)
            .map(|(c, &start)| SeqRows {
                start,
                rows: c.ids.len(),
                pos0: c.pos0,
            })
            .collect();
        let mut x = b.embed(&self.token_embd, &ids);
        if cfg.embed_scale != 1.0 {
            b.unary(&mut x, Unary::Scale(cfg.embed_scale));
        }
        for (i, l) in self.layers.iter().enumerate() {
            let shape = AttentionShape {
                heads: cfg.heads,
                kv_heads: cfg.kv_heads,
                head_dim: cfg.head_dim,
                window: cfg.layer_window(i),
                scale: self.attn_scale,
                softcap: cfg.attn_softcap,
            };
            let norm = |weight| Norm {
                weight,
                eps: cfg.rms_eps,
            };
            let [q, k, v]: [B::Act; 3] = b
                .norm_matmuls(
                    &x,
                    norm(&l.attn_norm),
                    &[
                        (&l.q, l.q_bias.as_ref()),
                        (&l.k, l.k_bias.as_ref()),
                        (&l.v, l.v_bias.as_ref()),
                    ],
                )
                .try_into()
                .map_err(|_| Error::Backend("matmuls returned the wrong count".into()))?;
            // Qwen3: each head of q and k normalised before RoPE.
            let mut q = match &l.q_norm {
                Some(w) => b.rms_norm_heads(&q, cfg.heads, w, cfg.rms_eps),
                None => q,
            };
            let mut k = match &l.k_norm {
                Some(w) => b.rms_norm_heads(&k, cfg.kv_heads, w, cfg.rms_eps),
                None => k,
            };
            let inv_freq = match &self.inv_freq_local {
                Some(local) if shape.window > 0 => local,
                _ => &self.inv_freq,
            };
            let rope = Rope {
                inv_freq,
                layout: cfg.rope_layout,
                pairs: cfg.rope_dims / 2,
            };
            let a = if let [c] = chunks {
                let cache = &mut self.caches[c.slot];
                b.rope_attention(&mut q, &mut k, &v, rope, cache, i, c.pos0, shape)
            } else {
                // Each chunk's cache, in chunk order (the slots are distinct: checked above).
                let mut free: Vec<Option<&mut B::Cache>> =
                    self.caches.iter_mut().map(Some).collect();
                #[allow(clippy::expect_used, reason = "check() rejects a slot used twice")]
                let mut caches: Vec<&mut B::Cache> = chunks
                    .iter()
                    .map(|c| free[c.slot].take().expect("distinct slots"))
                    .collect();
                b.rope_attention_seqs(&q, &k, &v, rope, &mut caches, &seqs, i, shape)
            };
            residual_add(b, &mut x, &a, &l.o, l.post_attn_norm.as_ref(), cfg.rms_eps);
            let act = b.norm_glu(&x, norm(&l.ffn_norm), &l.gate, &l.up, cfg.activation);
            residual_add(
                b,
                &mut x,
                &act,
                &l.down,
                l.post_ffn_norm.as_ref(),
                cfg.rms_eps,
            );
        }
        if !all_logits {
            x = match chunks {
                [c] if c.ids.len() == 1 => x,
                [c] => b.rows(&x, c.ids.len() - 1, 1),
                _ => {
                    let last: Vec<B::Act> = chunks
                        .iter()
                        .zip(&starts)
                        .map(|(c, &s)| b.rows(&x, s + c.ids.len() - 1, 1))
                        .collect();
                    b.concat_rows(&last.iter().collect::<Vec<_>>())
                }
            };
        } else if chunks.len() > 1 {
            return Err(Error::Invalid(
                "every row's logits are only given for a single sequence".into(),
            ));
        }
        let h = b.rms_norm(&x, &self.output_norm, cfg.rms_eps);
        let mut logits = b.matmul(&h, self.output.as_ref().unwrap_or(&self.token_embd), None);
        if cfg.final_softcap > 0.0 {
            b.unary(&mut logits, Unary::SoftCap(cfg.final_softcap));
        }
        Ok(logits)
    }

    /// [`Model::record`], with chunks longer than a window-sized cache takes split into pieces
    /// of [`RING_CHUNK`] rows, recorded one round after another (round `r`: piece `r` of every
    /// chunk that has one); the logits as `record` returns them.
    fn record_pieces(&mut self, chunks: &[SeqChunk<'_>], all_logits: bool) -> Result<B::Act> {
        if !self.ring || chunks.iter().all(|c| c.ids.len() <= RING_CHUNK) {
            return self.record(chunks, all_logits);
        }
        self.check(chunks)?;
        let rounds = chunks
            .iter()
            .map(|c| c.ids.len().div_ceil(RING_CHUNK))
            .max()
            .unwrap_or(0);
        let mut parts: Vec<B::Act> = Vec::new();
        let mut last: Vec<Option<B::Act>> = (0..chunks.len()).map(|_| None).collect();
        for r in 0..rounds {
            let (owners, pieces): (Vec<usize>, Vec<SeqChunk<'_>>) = chunks
                .iter()
                .enumerate()
                .filter(|(_, c)| c.ids.len() > r * RING_CHUNK)
                .map(|(i, c)| {
                    let at = r * RING_CHUNK;
                    let ids = &c.ids[at..c.ids.len().min(at + RING_CHUNK)];
                    (
                        i,
                        SeqChunk {
                            slot: c.slot,
                            ids,
                            pos0: c.pos0 + at,
                        },
                    )
                })
                .unzip();
            let out = self.record(&pieces, all_logits)?;
            if all_logits {
                parts.push(out);
                continue;
            }
            for (k, &i) in owners.iter().enumerate() {
                if chunks[i].ids.len() <= (r + 1) * RING_CHUNK {
                    last[i] = Some(match owners.len() {
                        1 => self.backend.rows(&out, 0, 1),
                        _ => self.backend.rows(&out, k, 1),
                    });
                }
            }
        }
        #[allow(
            clippy::expect_used,
            reason = "check() rejects empty chunks, so every chunk has a last piece"
        )]
        let outs: Vec<B::Act> = if all_logits {
            parts
        } else {
            last.into_iter()
                .map(|a| a.expect("every chunk has a last piece"))
                .collect()
        };
        Ok(match <[B::Act; 1]>::try_from(outs) {
            Ok([one]) => one,
            Err(outs) => self.backend.concat_rows(&outs.iter().collect::<Vec<_>>()),
        })
    }

    /// One chunk of `ids` at `pos0..` in slot 0 (what the single-sequence paths use).
    fn single(ids: &[u32], pos0: usize) -> [SeqChunk<'_>; 1] {
        [SeqChunk { slot: 0, ids, pos0 }]
    }
}

/// `x += h · wᵀ`, or with a post-norm (Gemma) `x += RMSNorm(h · wᵀ) * post`.
fn residual_add<B: Backend>(
    b: &mut B,
    x: &mut B::Act,
    h: &B::Act,
    w: &B::Weight,
    post: Option<&B::Weight>,
    eps: f32,
) {
    match post {
        Some(post) => {
            let out = b.matmul(h, w, None);
            let out = b.rms_norm(&out, post, eps);
            b.add(x, &out);
        }
        None => b.matmul_add(h, w, x),
    }
}

impl Model<GpuBackend> {
    /// [`LanguageModel::forward`] without blocking on the GPU: what a browser page awaits.
    pub async fn forward_async(
        &mut self,
        ids: &[u32],
        pos0: usize,
        all_logits: bool,
    ) -> Result<Vec<f32>> {
        let logits = self.record_pieces(&Self::single(ids, pos0), all_logits)?;
        self.backend.read_async(&logits).await
    }
}

impl<B: Backend> LanguageModel for Model<B> {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn context_len(&self) -> usize {
        self.ctx
    }

    fn backend_name(&self) -> String {
        self.backend.name()
    }

    fn device_bytes(&self) -> u64 {
        self.backend.device_bytes()
    }

    fn set_profiling(&mut self, on: bool) {
        self.backend.set_profiling(on);
    }

    fn take_profile(&mut self) -> crate::backend::OpTimes {
        self.backend.take_profile()
    }

    fn forward(&mut self, ids: &[u32], pos0: usize, all_logits: bool) -> Result<Vec<f32>> {
        let logits = self.record_pieces(&Self::single(ids, pos0), all_logits)?;
        self.backend.read(&logits)
    }

    fn resumable(&self, slot: usize, pos: usize) -> usize {
        let Some(cache) = self.caches.get(slot) else {
            return 0;
        };
        // Positions pos - window + 1 .. pos must still be held by every windowed layer.
        let intact = (0..self.config.layers).all(|l| {
            let start = self.backend.cache_start(cache, l);
            start == 0 || (pos + 1).saturating_sub(self.config.layer_window(l)) >= start
        });
        if intact { pos } else { 0 }
    }

    fn slots(&self) -> usize {
        self.caches.len()
    }

    fn forward_batch(&mut self, chunks: &[SeqChunk<'_>]) -> Result<Vec<Vec<f32>>> {
        let logits = self.record_pieces(chunks, false)?;
        let all = self.backend.read(&logits)?;
        let vocab = self.config.vocab_size;
        Ok(all.chunks(vocab).map(<[f32]>::to_vec).collect())
    }
}

/// The shape of every layer's KV cache for a context of `ctx`: layers with a sliding window keep
/// a window-sized cache (what the window needs before a pass's first row, and the pass's rows),
/// the others the whole context.
fn cache_layers(cfg: &ModelConfig, ctx: usize, window_sized: bool) -> Vec<CacheLayer> {
    (0..cfg.layers)
        .map(|i| {
            let window = cfg.layer_window(i);
            let capacity = match window {
                w if w > 0 && window_sized => ring_capacity(w, RING_CHUNK).min(ctx),
                _ => ctx,
            };
            CacheLayer { capacity, window }
        })
        .collect()
}

/// The context to build: `ctx`, or the model's own when 0. A context whose KV caches (`slots` of
/// them) cannot fit in `budget` is refused, saying how much it needs and how much there is —
/// unless it is the model's own default, which is halved until it fits (down to 256 tokens).
fn fit_context(
    cfg: &ModelConfig,
    ctx: usize,
    slots: usize,
    window_sized: bool,
    budget: Option<CacheBudget>,
) -> Result<usize> {
    let requested = if ctx == 0 { cfg.context_length } else { ctx };
    let Some(budget) = budget else {
        return Ok(requested);
    };
    let needs = |ctx: usize| -> u128 {
        let positions: u128 = cache_layers(cfg, ctx, window_sized)
            .iter()
            .map(|l| l.capacity as u128)
            .sum();
        positions * cfg.kv_dim() as u128 * 2 * u128::from(budget.value_bytes) * slots as u128
    };
    // The model's own context is only a default: it shrinks until its cache takes at most half
    // of what is available, leaving the rest for everything else on the device.
    let room = match ctx {
        0 => budget.available / 2,
        _ => budget.available,
    };
    let mut fitted = requested;
    while ctx == 0 && fitted > 256 && needs(fitted) > u128::from(room) {
        fitted /= 2;
    }
    if needs(fitted) <= u128::from(budget.available) {
        return Ok(fitted);
    }
    const GIB: f64 = (1u64 << 30) as f64;
    let size = |bytes: u128| match bytes as f64 {
        b if b >= GIB => format!("{:.1} GiB", b / GIB),
        b => format!("{:.1} MiB", b / (1024.0 * 1024.0)),
    };
    Err(Error::Invalid(format!(
        "a context of {requested} tokens needs {} of KV cache ({slots} sequence(s), {} layers, {} values per position); {} of memory is available: use a smaller --ctx-size",
        size(needs(requested)),
        cfg.layers,
        2 * cfg.kv_dim(),
        size(u128::from(budget.available))
    )))
}
