//! The tensors of a transformer, looked up by role, whatever file format they came from.

use super::config::ModelConfig;
use super::tensor::TensorView;
use crate::error::{Error, Result};

/// Anything that can produce tensors by their GGUF-convention name (`blk.3.attn_q.weight`).
pub trait TensorSource {
    /// The tensor with this canonical name, if the file has it, in the GGUF convention's
    /// encoding (an architecture may derive it from what the file stores).
    fn tensor(&self, canonical: &str) -> Result<Option<TensorView>>;
}

/// The weights of one transformer block, still encoded as in the file.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    /// RMSNorm before attention.
    pub attn_norm: TensorView,
    /// Query projection `[hidden] -> [heads * head_dim]`.
    pub q: TensorView,
    /// Key projection.
    pub k: TensorView,
    /// Value projection.
    pub v: TensorView,
    /// Query bias (Qwen2).
    pub q_bias: Option<TensorView>,
    /// Key bias (Qwen2).
    pub k_bias: Option<TensorView>,
    /// Value bias (Qwen2).
    pub v_bias: Option<TensorView>,
    /// RMSNorm weight over each query head, before RoPE (Qwen3).
    pub q_norm: Option<TensorView>,
    /// RMSNorm weight over each key head (Qwen3).
    pub k_norm: Option<TensorView>,
    /// Attention output projection.
    pub o: TensorView,
    /// RMSNorm of the attention output before the residual add (Gemma).
    pub post_attn_norm: Option<TensorView>,
    /// RMSNorm before the feed-forward block.
    pub ffn_norm: TensorView,
    /// RMSNorm of the feed-forward output before the residual add (Gemma).
    pub post_ffn_norm: Option<TensorView>,
    /// Gate projection (SiLU branch).
    pub gate: TensorView,
    /// Up projection.
    pub up: TensorView,
    /// Down projection.
    pub down: TensorView,
}

/// All weights of a model.
#[derive(Clone, Debug)]
pub struct ModelWeights {
    /// Token embedding `[hidden] x vocab`.
    pub token_embd: TensorView,
    /// Final RMSNorm.
    pub output_norm: TensorView,
    /// Output head; `None` when tied to the embedding.
    pub output: Option<TensorView>,
    /// Per-layer weights.
    pub layers: Vec<LayerWeights>,
    /// Llama 3 rope frequency factors, when the file stores them.
    pub rope_freqs: Option<TensorView>,
}

fn require(src: &dyn TensorSource, name: &str) -> Result<TensorView> {
    src.tensor(name)?.ok_or_else(|| Error::Tensor {
        name: name.to_string(),
        problem: "missing from the model file".into(),
    })
}

impl ModelWeights {
    /// Collects and shape-checks every tensor `cfg` calls for.
    pub fn load(src: &dyn TensorSource, cfg: &ModelConfig) -> Result<ModelWeights> {
        let src = &Unfused { src, cfg };
        let (h, q_dim, kv_dim) = (cfg.hidden, cfg.q_dim(), cfg.kv_dim());
        let matrix = |name: &str, cols: usize, rows: usize| -> Result<TensorView> {
            let t = require(src, name)?;
            t.expect_shape(cols, rows)?;
            Ok(t)
        };
        let bias = |name: &str, len: usize| -> Result<Option<TensorView>> {
            if !cfg.qkv_bias {
                return Ok(None);
            }
            matrix(name, len, 1).map(Some)
        };
        let head_norm = |name: &str| -> Result<Option<TensorView>> {
            if !cfg.qk_norm {
                return Ok(None);
            }
            matrix(name, cfg.head_dim, 1).map(Some)
        };
        let post_norm = |name: &str| -> Result<Option<TensorView>> {
            if !cfg.post_norms {
                return Ok(None);
            }
            matrix(name, h, 1).map(Some)
        };
        // Grown as the layers are found: the header's layer count is a claim, not a size to
        // allocate up front (a fuzzed file claiming 2^24 layers asked for 21 GB).
        let mut layers = Vec::new();
        for i in 0..cfg.layers {
            let n = |s: &str| format!("blk.{i}.{s}");
            layers.push(LayerWeights {
                attn_norm: matrix(&n("attn_norm.weight"), h, 1)?,
                q: matrix(&n("attn_q.weight"), h, q_dim)?,
                k: matrix(&n("attn_k.weight"), h, kv_dim)?,
                v: matrix(&n("attn_v.weight"), h, kv_dim)?,
                q_bias: bias(&n("attn_q.bias"), q_dim)?,
                k_bias: bias(&n("attn_k.bias"), kv_dim)?,
                v_bias: bias(&n("attn_v.bias"), kv_dim)?,
                q_norm: head_norm(&n("attn_q_norm.weight"))?,
                k_norm: head_norm(&n("attn_k_norm.weight"))?,
                o: matrix(&n("attn_output.weight"), q_dim, h)?,
                post_attn_norm: post_norm(&n("post_attention_norm.weight"))?,
                ffn_norm: matrix(&n("ffn_norm.weight"), h, 1)?,
                post_ffn_norm: post_norm(&n("post_ffw_norm.weight"))?,
                gate: matrix(&n("ffn_gate.weight"), h, cfg.ffn)?,
                up: matrix(&n("ffn_up.weight"), h, cfg.ffn)?,
                down: matrix(&n("ffn_down.weight"), cfg.ffn, h)?,
            });
        }
        let output = if cfg.tied_output {
            None
        } else {
            Some(matrix("output.weight", h, cfg.vocab_size)?)
        };
        let rope_freqs = src.tensor("rope_freqs.weight")?;
        if let Some(f) = &rope_freqs {
            f.expect_shape(cfg.rope_dims / 2, 1)?;
        }
        let weights = ModelWeights {
            token_embd: matrix("token_embd.weight", h, cfg.vocab_size)?,
            output_norm: matrix("output_norm.weight", h, 1)?,
            output,
            layers,
            rope_freqs,
        };
        // Vectors (norms, biases) are small enough to check here; matrices are checked only
        // when the model's output shows a fault (`first_non_finite`): reading every weight at
        // load would cost what the memory map saves.
        for t in weights.all().into_iter().filter(|t| t.rows() == 1) {
            if let Some(fault) = non_finite(t) {
                return Err(fault);
            }
        }
        Ok(weights)
    }

    /// The first NaN or infinity in the weights, naming the tensor and where in it: what a
    /// [`Error::NonFinite`] in the output is traced back to. Decodes every row (seconds for a
    /// large model), so it runs only after a fault.
    pub fn first_non_finite(&self) -> Option<Error> {
        self.all().into_iter().find_map(non_finite)
    }

    /// Every tensor, in a stable order.
    pub fn all(&self) -> Vec<&TensorView> {
        let mut v = vec![&self.token_embd, &self.output_norm];
        v.extend(self.output.iter());
        v.extend(self.rope_freqs.iter());
        for l in &self.layers {
            v.extend([
                &l.attn_norm,
                &l.q,
                &l.k,
                &l.v,
                &l.o,
                &l.ffn_norm,
                &l.gate,
                &l.up,
                &l.down,
            ]);
            v.extend(l.q_bias.iter().chain(&l.k_bias).chain(&l.v_bias));
            v.extend(l.q_norm.iter().chain(&l.k_norm));
            v.extend(l.post_attn_norm.iter().chain(&l.post_ffn_norm));
        }
        v
    }
}

/// A source that also finds the parts of fused tensors (Phi-3's `attn_qkv` and `ffn_up`): a
/// part's rows sliced out of the fused matrix when the file holds one.
struct Unfused<'a> {
    src: &'a dyn TensorSource,
    cfg: &'a ModelConfig,
}

impl Unfused<'_> {
    /// Rows of each role of a fused group.
    fn rows(&self, role: &str) -> usize {
        let c = self.cfg;
        match role {
            "attn_q" => c.q_dim(),
            "attn_k" | "attn_v" => c.kv_dim(),
            _ => c.ffn,
        }
    }
}

impl TensorSource for Unfused<'_> {
    fn tensor(&self, canonical: &str) -> Result<Option<TensorView>> {
        let parts = canonical
            .strip_prefix("blk.")
            .and_then(|r| r.split_once('.'))
            .and_then(|(layer, rest)| Some((layer, rest.strip_suffix(".weight")?)));
        if let Some((layer, role)) = parts {
            for &(fused, members) in self.cfg.arch.def().fused() {
                let Some(i) = members.iter().position(|m| *m == role) else {
                    continue;
                };
                let total: usize = members.iter().map(|m| self.rows(m)).sum();
                let Some(t) = self.src.tensor(&format!("blk.{layer}.{fused}.weight"))? else {
                    continue;
                };
                if t.rows() != total {
                    continue; // not fused after all (a file with the parts apart)
                }
                let start: usize = members[..i].iter().map(|m| self.rows(m)).sum();
                return t.row_slice(canonical, start, self.rows(role)).map(Some);
            }
        }
        self.src.tensor(canonical)
    }
}

/// A NaN or infinity in `t`, as an error naming it, its row and column.
fn non_finite(t: &TensorView) -> Option<Error> {
    (0..t.rows()).find_map(|r| {
        let row = t.row_slice(&t.name, r, 1).ok()?.to_f32();
        let c = row.iter().position(|v| !v.is_finite())?;
        Some(Error::Tensor {
            name: t.name.clone(),
            problem: format!(
                "holds {} at row {r}, column {c} (a corrupt or badly quantized file)",
                row[c]
            ),
        })
    })
}
