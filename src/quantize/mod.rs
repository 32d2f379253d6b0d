//! `ember quantize`: re-encode a model (GGUF file or Hugging Face folder) into a GGUF file of
//! another type, with llama.cpp's choice of which tensors keep more bits in the mixed presets.

mod hf_metadata;

use std::path::Path;

use crate::error::{Error, Result};
use crate::format::gguf::MetaValue;
use crate::format::gguf_write::{TensorPlan, write_gguf};
use crate::format::{ModelFile, ModelSource, RopeLayout, TensorView};
use crate::quant::{GgmlType, QK_K};

/// What to quantize to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Every matrix in one type (the output head follows llama.cpp's rule, see [`plan`]).
    Uniform(GgmlType),
    /// Q4_K, with Q6_K for the output head and some attention-value and feed-forward-down
    /// matrices.
    Q4KM,
    /// As Q4_K_M with Q5_K as the base.
    Q5KM,
}

/// Types `ember quantize` writes.
pub const WRITABLE: &str =
    "f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, q4_k_m, q5_k_m";

impl Preset {
    /// Parses one of [`WRITABLE`] (case-insensitive).
    pub fn parse(s: &str) -> Result<Preset> {
        let unknown = || {
            Error::Invalid(format!(
                "unknown quantization type {s:?} (use one of {WRITABLE})"
            ))
        };
        match s.to_ascii_lowercase().as_str() {
            "q4_k_m" => Ok(Preset::Q4KM),
            "q5_k_m" => Ok(Preset::Q5KM),
            "f32" | "q2_k" | "q3_k" | "iq4_nl" | "iq4_xs" => Err(unknown()),
            name => GgmlType::from_name(name)
                .map(Preset::Uniform)
                .ok_or_else(unknown),
        }
    }

    fn base(self) -> GgmlType {
        match self {
            Preset::Uniform(t) => t,
            Preset::Q4KM => GgmlType::Q4K,
            Preset::Q5KM => GgmlType::Q5K,
        }
    }

    /// GGUF's `general.file_type` for the preset.
    fn file_type(self) -> u32 {
        match self {
            Preset::Q4KM => 15,
            Preset::Q5KM => 17,
            Preset::Uniform(t) => match t {
                GgmlType::F32 => 0,
                GgmlType::F16 => 1,
                GgmlType::Q4_0 => 2,
                GgmlType::Q4_1 => 3,
                GgmlType::Q8_0 => 7,
                GgmlType::Q5_0 => 8,
                GgmlType::Q5_1 => 9,
                GgmlType::Q2K => 10,
                GgmlType::Q3K => 12,
                GgmlType::Q4K => 14,
                GgmlType::Q5K => 16,
                GgmlType::Q6K => 18,
                GgmlType::Iq2Xxs => 19,
                GgmlType::Iq2Xs => 20,
                GgmlType::Iq3Xxs => 23,
                GgmlType::Iq1S => 24,
                GgmlType::Iq4Nl => 25,
                GgmlType::Iq3S => 26,
                GgmlType::Iq2S => 28,
                GgmlType::Iq4Xs => 30,
                GgmlType::Iq1M => 31,
                GgmlType::Bf16 => 32,
                GgmlType::Tq1_0 => 36,
                GgmlType::Tq2_0 => 37,
            },
        }
    }
}

/// Options of [`quantize`].
#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    /// The target.
    pub preset: Preset,
    /// Type for `token_embd.weight` (default: the preset's rule).
    pub token_embd_type: Option<GgmlType>,
    /// Type for the output head (default: the preset's rule).
    pub output_type: Option<GgmlType>,
}

/// llama.cpp's layers that get more bits in the _M presets: the first and last eighth, and every
/// third one between.
fn use_more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// K-quants need rows that are whole 256-element super-blocks; llama.cpp falls back to these.
fn fallback(t: GgmlType, cols: usize) -> GgmlType {
    if cols.is_multiple_of(t.block_elems()) {
        return t;
    }
    match t {
        GgmlType::Q4K => GgmlType::Q5_0,
        GgmlType::Q5K => GgmlType::Q5_1,
        _ if cols.is_multiple_of(32) => GgmlType::Q8_0,
        _ => GgmlType::F16,
    }
}

/// The type each tensor gets. Vectors stay F32; the output head (or the tied embedding) gets
/// Q6_K (Q8_0 when its rows are not whole super-blocks) unless the preset is Q8_0 or a float
/// type; `_M` presets give Q6_K to the attention-value and feed-forward-down matrices of
/// [`use_more_bits`] layers.
pub fn plan(
    name: &str,
    shape: &[usize],
    layers: usize,
    tied: bool,
    o: &QuantizeOptions,
) -> GgmlType {
    if shape.len() < 2 || shape[1..].iter().product::<usize>() == 1 {
        return GgmlType::F32;
    }
    let base = o.preset.base();
    let is_output = name == "output.weight" || (tied && name == "token_embd.weight");
    let t = match (is_output, o.output_type, o.token_embd_type) {
        (true, Some(t), _) => t,
        (_, _, Some(t)) if name == "token_embd.weight" => t,
        _ if base.is_float() => base,
        (true, _, _) if !shape[0].is_multiple_of(QK_K) => GgmlType::Q8_0,
        (true, _, _) if base == GgmlType::Q8_0 => base,
        (true, _, _) => GgmlType::Q6K,
        _ => {
            let layer = name
                .strip_prefix("blk.")
                .and_then(|r| r.split('.').next())
                .and_then(|l| l.parse::<usize>().ok());
            let mixed = matches!(o.preset, Preset::Q4KM | Preset::Q5KM);
            // llama.cpp treats a fused q/k/v as it treats v.
            let sensitive = name.ends_with("attn_v.weight")
                || name.ends_with("attn_qkv.weight")
                || name.ends_with("ffn_down.weight");
            match layer {
                Some(i) if mixed && sensitive && use_more_bits(i, layers) => GgmlType::Q6K,
                _ => base,
            }
        }
    };
    fallback(t, shape[0])
}

/// llama.cpp's converter permutes the q/k rows of `llama` models so RoPE pairs adjacent
/// dimensions; Hugging Face weights pair the two halves of each head. Converts rows of each head
/// from the latter layout to the former.
fn permute_rows(values: &[f32], cols: usize, heads: usize) -> Vec<f32> {
    let rows = values.len() / cols;
    let hd = rows / heads;
    let mut out = vec![0.0f32; values.len()];
    for h in 0..heads {
        for i in 0..hd / 2 {
            for j in 0..2 {
                let (dst, src) = (h * hd + 2 * i + j, h * hd + j * (hd / 2) + i);
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&values[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

/// One tensor of the output file: the rows of `parts`, one after another.
struct Output<'a> {
    name: String,
    shape: Vec<usize>,
    parts: Vec<&'a TensorView>,
}

/// The output tensors: each tensor as it is, except the parts of an architecture's fused
/// tensors (`fused`: fused role and its parts), which become one tensor where the first part
/// stood.
fn fuse<'a>(tensors: Vec<&'a TensorView>, fused: &[(&str, &[&str])]) -> Vec<Output<'a>> {
    let role = |name: &str| -> Option<(String, String)> {
        let rest = name.strip_prefix("blk.")?.strip_suffix(".weight")?;
        let (layer, role) = rest.split_once('.')?;
        Some((layer.to_string(), role.to_string()))
    };
    let mut outputs: Vec<Output<'a>> = Vec::new();
    for t in tensors {
        let group = role(&t.name).and_then(|(layer, r)| {
            fused
                .iter()
                .find(|(_, parts)| parts.contains(&r.as_str()))
                .map(|(f, _)| format!("blk.{layer}.{f}.weight"))
        });
        match group {
            Some(name) => match outputs.iter_mut().find(|o| o.name == name) {
                Some(o) => {
                    o.shape[1] += t.rows();
                    o.parts.push(t);
                }
                None => outputs.push(Output {
                    name,
                    shape: vec![t.cols(), t.rows()],
                    parts: vec![t],
                }),
            },
            None => outputs.push(Output {
                name: t.name.clone(),
                shape: t.shape.clone(),
                parts: vec![t],
            }),
        }
    }
    outputs
}

/// What [`quantize`] did.
#[derive(Clone, Debug)]
pub struct QuantizeReport {
    /// Tensors written, with their new types.
    pub tensors: Vec<(String, GgmlType)>,
    /// Bytes of tensor data read.
    pub bytes_in: usize,
    /// Bytes of tensor data written.
    pub bytes_out: usize,
}

/// Writes `input` re-encoded per `opts` to the GGUF file `out`. `progress(done, total)` is called
/// after each tensor.
pub fn quantize(
    input: &ModelFile,
    out: &Path,
    opts: &QuantizeOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<QuantizeReport> {
    let cfg = &input.config;
    let w = &input.weights;
    let mut tensors: Vec<&TensorView> = vec![&w.token_embd];
    for l in &w.layers {
        tensors.extend([&l.attn_norm, &l.q, &l.k, &l.v]);
        tensors.extend(l.q_bias.iter().chain(&l.k_bias).chain(&l.v_bias));
        tensors.extend(l.q_norm.iter().chain(&l.k_norm));
        tensors.extend([&l.o]);
        tensors.extend(l.post_attn_norm.iter());
        tensors.extend([&l.ffn_norm, &l.gate, &l.up, &l.down]);
        tensors.extend(l.post_ffn_norm.iter());
    }
    tensors.push(&w.output_norm);
    tensors.extend(w.output.iter().chain(&w.rope_freqs));
    // Phi-3's longrope factors and a folder's Llama 3 rescaling, which the config holds, as
    // the tensors llama.cpp reads.
    let mut factors: Vec<TensorView> = match &cfg.longrope {
        Some(lr) => vec![
            TensorView::owned_f32("rope_factors_long.weight", vec![lr.long.len()], &lr.long)?,
            TensorView::owned_f32("rope_factors_short.weight", vec![lr.short.len()], &lr.short)?,
        ],
        None => vec![],
    };
    if let (None, Some(f)) = (&w.rope_freqs, cfg.llama3_rope_factors()) {
        factors.push(TensorView::owned_f32(
            "rope_freqs.weight",
            vec![f.len()],
            &f,
        )?);
    }
    tensors.extend(&factors);
    let outputs = fuse(tensors, cfg.arch.def().fused());
    let tied = w.output.is_none();
    let plans: Vec<TensorPlan> = outputs
        .iter()
        .map(|o| TensorPlan {
            name: o.name.clone(),
            dtype: plan(&o.name, &o.shape, cfg.layers, tied, opts),
            shape: o.shape.clone(),
        })
        .collect();
    // Hugging Face llama weights need llama.cpp's q/k row order (see `permute_rows`).
    let permute = matches!(input.source, ModelSource::HuggingFace(_))
        && cfg.arch.def().permutes_qk()
        && cfg.rope_layout == RopeLayout::Halves;
    let mut metadata = match &input.source {
        ModelSource::Gguf(g) => g
            .metadata
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "general.alignment" | "general.file_type" | "general.quantization_version"
                )
            })
            .cloned()
            .collect(),
        ModelSource::HuggingFace(config) => hf_metadata::metadata(input, config)?,
    };
    metadata.push((
        "general.file_type".into(),
        MetaValue::U32(opts.preset.file_type()),
    ));
    metadata.push(("general.quantization_version".into(), MetaValue::U32(2)));
    let total = outputs.len();
    write_gguf(out, &metadata, &plans, |i| {
        let (src, plan) = (&outputs[i], &plans[i]);
        let mut values: Vec<f32> = src.parts.iter().flat_map(|p| p.to_f32()).collect();
        let cols = if src.shape.len() == 1 {
            1
        } else {
            src.shape[0]
        };
        if permute && (src.name.ends_with("attn_q.weight") || src.name.ends_with("attn_q.bias")) {
            values = permute_rows(&values, cols, cfg.heads);
        } else if permute
            && (src.name.ends_with("attn_k.weight") || src.name.ends_with("attn_k.bias"))
        {
            values = permute_rows(&values, cols, cfg.kv_heads);
        }
        let bytes = plan.dtype.quantize(&values).map_err(|p| Error::Tensor {
            name: src.name.clone(),
            problem: p,
        })?;
        progress(i + 1, total);
        Ok(bytes)
    })?;
    Ok(QuantizeReport {
        tensors: plans.iter().map(|p| (p.name.clone(), p.dtype)).collect(),
        bytes_in: outputs
            .iter()
            .flat_map(|o| &o.parts)
            .map(|t| t.bytes().len())
            .sum(),
        bytes_out: plans
            .iter()
            .map(|p| p.dtype.tensor_bytes(&p.shape).unwrap_or(0))
            .sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(p: Preset) -> QuantizeOptions {
        QuantizeOptions {
            preset: p,
            token_embd_type: None,
            output_type: None,
        }
    }

    #[test]
    fn mixed_presets_follow_llama_cpp() {
        // The tiny K-quant reference model: 2 layers; llama-quantize Q4_K_M gave Q6_K to layer 1's
        // attn_v and ffn_down only.
        let o = opts(Preset::Q4KM);
        assert_eq!(
            plan("blk.0.attn_v.weight", &[256, 128], 2, true, &o),
            GgmlType::Q4K
        );
        assert_eq!(
            plan("blk.1.attn_v.weight", &[256, 128], 2, true, &o),
            GgmlType::Q6K
        );
        assert_eq!(
            plan("blk.1.ffn_down.weight", &[768, 256], 2, true, &o),
            GgmlType::Q6K
        );
        assert_eq!(
            plan("blk.1.attn_q.weight", &[256, 256], 2, true, &o),
            GgmlType::Q4K
        );
        assert_eq!(
            plan("blk.1.attn_norm.weight", &[256], 2, true, &o),
            GgmlType::F32
        );
        // Rows that are not whole super-blocks fall back; the tied head of width 576 gets Q8_0.
        assert_eq!(
            plan("blk.0.attn_q.weight", &[576, 576], 30, true, &o),
            GgmlType::Q5_0
        );
        assert_eq!(
            plan("token_embd.weight", &[576, 49152], 30, true, &o),
            GgmlType::Q8_0
        );
        assert_eq!(
            plan("output.weight", &[512, 1000], 30, false, &o),
            GgmlType::Q6K
        );
        let o = opts(Preset::Uniform(GgmlType::F16));
        assert_eq!(
            plan("output.weight", &[512, 1000], 30, false, &o),
            GgmlType::F16
        );
        let o = QuantizeOptions {
            token_embd_type: Some(GgmlType::Q4_0),
            ..opts(Preset::Uniform(GgmlType::Q8_0))
        };
        assert_eq!(
            plan("token_embd.weight", &[512, 1000], 30, false, &o),
            GgmlType::Q4_0
        );
        assert!((0..32).filter(|&i| use_more_bits(i, 32)).count() > 8);
    }

    #[test]
    fn permutation_pairs_halves_into_neighbours() {
        // One head of 4 rows (dims 0..4) of width 1: halves (0, 2) and (1, 3) become pairs.
        assert_eq!(
            permute_rows(&[0.0, 1.0, 2.0, 3.0], 1, 1),
            vec![0.0, 2.0, 1.0, 3.0]
        );
    }

    #[test]
    fn presets_parse() {
        assert_eq!(Preset::parse("Q4_K_M").unwrap(), Preset::Q4KM);
        assert_eq!(
            Preset::parse("q8_0").unwrap(),
            Preset::Uniform(GgmlType::Q8_0)
        );
        assert!(Preset::parse("q3_k").is_err());
        assert!(Preset::parse("q9").is_err());
    }
}
