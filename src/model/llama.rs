//! Llama-family forward pass (Llama, SmolLM, Mistral, Qwen2): the differences are
//! [`ModelConfig`] data — biases, tied output, rope layout and theta, GQA ratio.

use super::{LanguageModel, f32_tensor};
use crate::backend::gpu::GpuBackend;
use crate::backend::{AttentionShape, Backend, Norm, Rope};
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
    o: W,
    ffn_norm: W,
    gate: W,
    up: W,
    down: W,
}

/// A model with its weights uploaded to backend `B`, and its KV cache.
pub struct Model<B: Backend> {
    config: ModelConfig,
    backend: B,
    token_embd: B::Weight,
    output_norm: B::Weight,
    output: Option<B::Weight>,
    inv_freq: B::Weight,
    layers: Vec<Layer<B::Weight>>,
    cache: B::Cache,
    ctx: usize,
}

impl<B: Backend> Model<B> {
    /// Uploads `file`'s weights to `backend` and makes a cache of `ctx` positions (0: the model's
    /// trained context length).
    pub fn new(file: &ModelFile, mut backend: B, ctx: usize) -> Result<Model<B>> {
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
                o: up(&l.o)?,
                ffn_norm: up(&l.ffn_norm)?,
                gate,
                up: up_w,
                down: up(&l.down)?,
            });
        }
        let mut up = |t: &crate::format::TensorView| backend.upload(t);
        let mut inv_freq = cfg.rope_inv_freqs();
        if let Some(factors) = &w.rope_freqs {
            inv_freq
                .iter_mut()
                .zip(factors.to_f32())
                .for_each(|(f, d)| *f /= d);
        }
        let inv_freq = up(&f32_tensor("rope_inv_freq", &inv_freq)?)?;
        let token_embd = up(&w.token_embd)?;
        let output_norm = up(&w.output_norm)?;
        let output = w.output.as_ref().map(&mut up).transpose()?;
        let cache = backend.new_cache(cfg.layers, cfg.kv_dim(), ctx)?;
        Ok(Model {
            config: cfg,
            backend,
            token_embd,
            output_norm,
            output,
            inv_freq,
            layers,
            cache,
            ctx,
        })
    }

    /// The backend running this model.
    pub fn backend(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Records the forward pass of `ids` at `pos0..` (see [`LanguageModel::forward`]) and
    /// returns the logits without reading them back: reading is the one step that differs
    /// between blocking hosts and the browser.
    fn record(&mut self, ids: &[u32], pos0: usize, all_logits: bool) -> Result<B::Act> {
        let cfg = &self.config;
        if ids.is_empty() {
            return Err(Error::Invalid("nothing to evaluate: no tokens".into()));
        }
        if pos0 + ids.len() > self.ctx {
            return Err(Error::Invalid(format!(
                "{} tokens at position {pos0} exceed the context of {} tokens",
                ids.len(),
                self.ctx
            )));
        }
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= cfg.vocab_size) {
            return Err(Error::Invalid(format!(
                "token id {bad} is outside the vocabulary of {}",
                cfg.vocab_size
            )));
        }
        let b = &mut self.backend;
        let shape = AttentionShape {
            heads: cfg.heads,
            kv_heads: cfg.kv_heads,
            head_dim: cfg.head_dim,
        };
        let mut x = b.embed(&self.token_embd, ids);
        for (i, l) in self.layers.iter().enumerate() {
            let norm = |weight| Norm {
                weight,
                eps: cfg.rms_eps,
            };
            let [mut q, mut k, v]: [B::Act; 3] = b
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
            let rope = Rope {
                inv_freq: &self.inv_freq,
                layout: cfg.rope_layout,
            };
            let a = b.rope_attention(&mut q, &mut k, &v, rope, &mut self.cache, i, pos0, shape);
            b.matmul_add(&a, &l.o, &mut x);
            let act = b.norm_glu(&x, norm(&l.ffn_norm), &l.gate, &l.up);
            b.matmul_add(&act, &l.down, &mut x);
        }
        if !all_logits && ids.len() > 1 {
            x = b.rows(&x, ids.len() - 1, 1);
        }
        let h = b.rms_norm(&x, &self.output_norm, cfg.rms_eps);
        Ok(b.matmul(&h, self.output.as_ref().unwrap_or(&self.token_embd), None))
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
        let logits = self.record(ids, pos0, all_logits)?;
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
        let logits = self.record(ids, pos0, all_logits)?;
        self.backend.read(&logits)
    }
}
