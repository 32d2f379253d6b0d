//! The forward pass of every architecture (`src/arch/`): a pre-norm decoder whose differences
//! are [`ModelConfig`] data — biases, q/k head norms, post-norms, the MLP's activation, the
//! embedding scale, attention scale and soft caps, sliding windows per layer with their own RoPE,
//! tied output, rope layout and theta, GQA ratio.

use super::{LanguageModel, SeqChunk, f32_tensor};
use crate::backend::gpu::GpuBackend;
use crate::backend::{AttentionShape, Backend, Norm, Rope, SeqRows, Unary};
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
    layers: Vec<Layer<B::Weight>>,
    caches: Vec<B::Cache>,
    ctx: usize,
}

impl<B: Backend> Model<B> {
    /// Uploads `file`'s weights to `backend` and makes a cache of `ctx` positions (0: the model's
    /// trained context length).
    pub fn new(file: &ModelFile, backend: B, ctx: usize) -> Result<Model<B>> {
        Self::with_slots(file, backend, ctx, 1)
    }

    /// As [`Model::new`], with `slots` caches of `ctx` positions each: sequences that
    /// [`LanguageModel::forward_batch`] evaluates together.
    pub fn with_slots(
        file: &ModelFile,
        mut backend: B,
        ctx: usize,
        slots: usize,
    ) -> Result<Model<B>> {
        if slots == 0 {
            return Err(Error::Invalid(
                "a model needs at least one sequence slot".into(),
            ));
        }
        let cfg = file.config.clone();
        let ctx = if ctx == 0 { cfg.context_length } else { ctx };
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
        let caches = (0..slots)
            .map(|_| backend.new_cache(cfg.layers, cfg.kv_dim(), ctx))
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
        let logits = self.record(&Self::single(ids, pos0), all_logits)?;
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
        let logits = self.record(&Self::single(ids, pos0), all_logits)?;
        self.backend.read(&logits)
    }

    fn slots(&self) -> usize {
        self.caches.len()
    }

    fn forward_batch(&mut self, chunks: &[SeqChunk<'_>]) -> Result<Vec<Vec<f32>>> {
        let logits = self.record(chunks, false)?;
        let all = self.backend.read(&logits)?;
        let vocab = self.config.vocab_size;
        Ok(all.chunks(vocab).map(<[f32]>::to_vec).collect())
    }
}
