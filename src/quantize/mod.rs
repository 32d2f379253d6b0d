//! `ember quantize`: re-encode a model (GGUF file or Hugging Face folder) into a GGUF file of
//! another type, with llama.cpp's choice of which tensors keep more bits in the mixed presets.

mod hf_metadata;

use std::path::Path;

use crate::error::{Error, Result};
use crate::format::gguf::MetaValue;
use crate::format::gguf_write::{TensorPlan, write_gguf};
use crate::format::{ModelFile, ModelSource, RopeLayout, TensorView};
use crate::imatrix::ImportanceMatrix;
use crate::quant::GgmlType;

/// What to quantize to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// Every matrix in one type (the output head follows llama.cpp's rule, see [`plan`]).
    Uniform(GgmlType),
    /// One of llama.cpp's mixtures: a base type, with more bits for the tensors its rules name
    /// (see [`mix_rule`]).
    Mix(Mix),
}

/// llama.cpp's mixed file types (`llama-quantize`'s names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// Q2_K, with Q3_K (or Q4_K) for attention values, outputs and the feed-forward down.
    Q2K,
    /// Q2_K, with Q4_K for the first layers' feed-forward down (and for the values with 4+ query
    /// heads per KV head); needs an importance matrix.
    Q2KS,
    /// Q3_K throughout.
    Q3KS,
    /// Q3_K, with Q4_K/Q5_K for attention values, outputs and the feed-forward down.
    Q3KM,
    /// Q3_K, with Q5_K for attention values, outputs and the feed-forward down.
    Q3KL,
    /// Q4_K, with Q5_K for the first layers' attention values and feed-forward down.
    Q4KS,
    /// Q4_K, with Q6_K for some layers' attention values and feed-forward down.
    Q4KM,
    /// Q5_K throughout.
    Q5KS,
    /// As Q4_K_M with Q5_K as the base.
    Q5KM,
    /// IQ4_NL, with Q5_K where llama.cpp's rules ask for more bits.
    Iq4Nl,
    /// IQ4_XS, with Q5_K where llama.cpp's rules ask for more bits.
    Iq4Xs,
    /// IQ1_S, with Q2_K for the values, the first layers' down and the token embedding, IQ2_XXS
    /// for attention outputs.
    Iq1S,
    /// IQ1_M, with Q2_K for the values, the first layers' down and the token embedding, IQ2_XXS
    /// for attention outputs.
    Iq1M,
    /// IQ2_XXS, with Q2_K for the values, the first layers' down and the token embedding.
    Iq2Xxs,
    /// IQ2_XS, with Q2_K for the values, the first layers' down and the token embedding.
    Iq2Xs,
    /// IQ2_XS, with IQ3_S for the values, attention outputs, first layers' down and the token
    /// embedding.
    Iq2S,
    /// IQ2_S, with IQ3_S for the values, attention outputs, first layers' down and the token
    /// embedding.
    Iq2M,
    /// IQ3_XXS, with IQ2_S for queries and keys and IQ3_S for attention outputs.
    Iq3Xxs,
    /// IQ3_S, with IQ3_XXS for queries, keys and the middle layers' gate and up.
    Iq3Xs,
    /// IQ3_S throughout (Q4_K values with 4+ query heads per KV head).
    Iq3S,
    /// IQ3_S, with Q4_K for attention values and outputs and the first layers' down.
    Iq3M,
    /// TQ1_0 (ternary weights), with Q4_K for the token embedding.
    Tq1_0,
    /// TQ2_0 (ternary weights), with Q4_K for the token embedding.
    Tq2_0,
}

/// Each mixture: its name, base type and GGUF `general.file_type`.
const MIXES: &[(&str, Mix, GgmlType, u32)] = &[
    ("q2_k", Mix::Q2K, GgmlType::Q2K, 10),
    ("q2_k_s", Mix::Q2KS, GgmlType::Q2K, 21),
    ("q3_k_s", Mix::Q3KS, GgmlType::Q3K, 11),
    ("q3_k_m", Mix::Q3KM, GgmlType::Q3K, 12),
    ("q3_k_l", Mix::Q3KL, GgmlType::Q3K, 13),
    ("q4_k_s", Mix::Q4KS, GgmlType::Q4K, 14),
    ("q4_k_m", Mix::Q4KM, GgmlType::Q4K, 15),
    ("q5_k_s", Mix::Q5KS, GgmlType::Q5K, 16),
    ("q5_k_m", Mix::Q5KM, GgmlType::Q5K, 17),
    ("iq2_xxs", Mix::Iq2Xxs, GgmlType::Iq2Xxs, 19),
    ("iq2_xs", Mix::Iq2Xs, GgmlType::Iq2Xs, 20),
    ("iq3_xs", Mix::Iq3Xs, GgmlType::Iq3S, 22),
    ("iq3_xxs", Mix::Iq3Xxs, GgmlType::Iq3Xxs, 23),
    ("iq1_s", Mix::Iq1S, GgmlType::Iq1S, 24),
    ("iq4_nl", Mix::Iq4Nl, GgmlType::Iq4Nl, 25),
    ("iq3_s", Mix::Iq3S, GgmlType::Iq3S, 26),
    ("iq3_m", Mix::Iq3M, GgmlType::Iq3S, 27),
    ("iq2_s", Mix::Iq2S, GgmlType::Iq2Xs, 28),
    ("iq2_m", Mix::Iq2M, GgmlType::Iq2S, 29),
    ("iq4_xs", Mix::Iq4Xs, GgmlType::Iq4Xs, 30),
    ("iq1_m", Mix::Iq1M, GgmlType::Iq1M, 31),
    ("tq1_0", Mix::Tq1_0, GgmlType::Tq1_0, 36),
    ("tq2_0", Mix::Tq2_0, GgmlType::Tq2_0, 37),
];

/// Types `ember quantize` writes.
pub const WRITABLE: &str = "f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q3_k, q4_k, q5_k, q6_k (one type \
     throughout), q2_k, q2_k_s*, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, iq1_s*, iq1_m*, \
     iq2_xxs*, iq2_xs*, iq2_s*, iq2_m*, iq3_xxs*, iq3_xs*, iq3_s, iq3_m, iq4_nl, iq4_xs, tq1_0, tq2_0 \
     (llama.cpp's mixtures; * needs --imatrix)";

impl Preset {
    /// Parses one of [`WRITABLE`] (case-insensitive).
    pub fn parse(s: &str) -> Result<Preset> {
        let name = s.to_ascii_lowercase();
        if let Some(&(_, mix, _, _)) = MIXES.iter().find(|m| m.0 == name) {
            return Ok(Preset::Mix(mix));
        }
        match GgmlType::from_name(&name) {
            // (Every lattice type's name is a mixture's, matched above; F32 is no target.)
            Some(GgmlType::F32) => {}
            Some(t) => return Ok(Preset::Uniform(t)),
            None => {}
        }
        Err(Error::Invalid(format!(
            "unknown quantization type {s:?} (use one of {WRITABLE})"
        )))
    }

    fn mix(self) -> Option<&'static (&'static str, Mix, GgmlType, u32)> {
        match self {
            Preset::Mix(m) => MIXES.iter().find(|x| x.1 == m),
            Preset::Uniform(_) => None,
        }
    }

    #[allow(clippy::expect_used, reason = "MIXES lists every Mix")]
    fn base(self) -> GgmlType {
        match self {
            Preset::Uniform(t) => t,
            Preset::Mix(_) => self.mix().expect("every mixture is listed").2,
        }
    }

    /// GGUF's `general.file_type` for the preset.
    fn file_type(self) -> u32 {
        if let Some(m) = self.mix() {
            return m.3;
        }
        match self.base() {
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
    /// Types for tensors by name: the first pattern contained in a tensor's name gives its type
    /// (llama-quantize's `--tensor-type`), before every other rule.
    pub tensor_types: Vec<(String, GgmlType)>,
    /// An importance matrix: the quantizers weigh each weight's error by its column's
    /// importance (llama.cpp's `--imatrix`).
    pub imatrix: Option<ImportanceMatrix>,
}

/// The model facts the type rules depend on.
#[derive(Clone, Copy, Debug)]
pub struct ModelShape {
    /// Transformer layers.
    pub layers: usize,
    /// Query heads per KV head.
    pub gqa: usize,
    /// Whether the output head is the token embedding.
    pub tied: bool,
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
        GgmlType::Iq4Xs
        | GgmlType::Iq3S
        | GgmlType::Iq3Xxs
        | GgmlType::Iq2S
        | GgmlType::Iq2Xs
        | GgmlType::Iq2Xxs
        | GgmlType::Iq1S
        | GgmlType::Iq1M => GgmlType::Iq4Nl,
        GgmlType::Q2K | GgmlType::Q3K | GgmlType::Tq1_0 | GgmlType::Tq2_0 => GgmlType::Q4_0,
        GgmlType::Q4K => GgmlType::Q5_0,
        GgmlType::Q5K => GgmlType::Q5_1,
        _ if cols.is_multiple_of(32) => GgmlType::Q8_0,
        _ => GgmlType::F16,
    }
}

/// The type each tensor gets. Vectors stay F32; the output head (or the tied embedding) gets
/// Q6_K (Q8_0 when its rows are not whole super-blocks) unless the preset is Q8_0 or a float
/// type; mixtures follow [`mix_rule`]; rows a type cannot hold fall back as llama.cpp's do.
pub fn plan(name: &str, shape: &[usize], m: ModelShape, o: &QuantizeOptions) -> GgmlType {
    if shape.len() < 2 || shape[1..].iter().product::<usize>() == 1 {
        return GgmlType::F32;
    }
    if let Some((_, t)) = o
        .tensor_types
        .iter()
        .find(|(p, _)| name.contains(p.as_str()))
    {
        return fallback(*t, shape[0]);
    }
    let base = o.preset.base();
    let is_output = name == "output.weight" || (m.tied && name == "token_embd.weight");
    let t = match (is_output, o.output_type, o.token_embd_type) {
        (true, Some(t), _) => t,
        (_, _, Some(t)) if name == "token_embd.weight" => t,
        _ if base.is_float() => base,
        (false, _, _) if name == "token_embd.weight" => match o.preset {
            Preset::Mix(Mix::Tq1_0 | Mix::Tq2_0) => GgmlType::Q4K,
            Preset::Mix(Mix::Iq1S | Mix::Iq1M | Mix::Iq2Xxs | Mix::Iq2Xs) => GgmlType::Q2K,
            Preset::Mix(Mix::Iq2S | Mix::Iq2M | Mix::Iq3Xxs) => GgmlType::Iq3S,
            _ => base,
        },
        (true, _, _) if !shape[0].is_multiple_of(base.block_elems()) => GgmlType::Q8_0,
        (true, _, _) if base == GgmlType::Q8_0 => base,
        (true, _, _)
            if matches!(
                o.preset,
                Preset::Mix(
                    Mix::Iq1S
                        | Mix::Iq1M
                        | Mix::Iq2Xxs
                        | Mix::Iq2Xs
                        | Mix::Iq2S
                        | Mix::Iq2M
                        | Mix::Iq3Xxs
                )
            ) =>
        {
            GgmlType::Q5K
        }
        (true, _, _) => GgmlType::Q6K,
        _ => {
            let layer = name
                .strip_prefix("blk.")
                .and_then(|r| r.split('.').next())
                .and_then(|l| l.parse::<usize>().ok());
            match (o.preset, layer) {
                (Preset::Mix(mix), Some(i)) => {
                    mix_rule(mix, name, i, m, o.imatrix.is_some()).unwrap_or(base)
                }
                _ => base,
            }
        }
    };
    fallback(t, shape[0])
}

/// llama-quantize's rule: a layer tensor to be quantized to one of the lowest-bit lattice types
/// (or to Q2_K in a `q2_k_s` file) needs its importances (without them those types lose too
/// much). Refused before anything is written, naming the tensor.
fn check_importance_coverage(
    outputs: &[Output],
    plans: &[TensorPlan],
    opts: &QuantizeOptions,
) -> Result<()> {
    use GgmlType::*;
    let imatrix = opts.imatrix.as_ref();
    for (src, plan) in outputs.iter().zip(plans) {
        let needs = (matches!(plan.dtype, Iq3Xxs | Iq2Xxs | Iq2Xs | Iq2S | Iq1S | Iq1M)
            || (plan.dtype == Q2K && opts.preset == Preset::Mix(Mix::Q2KS)))
            && src.name != "token_embd.weight"
            && src.name != "output.weight";
        let copied = matches!(src.parts[..], [part] if part.dtype == plan.dtype);
        if !needs || copied {
            continue;
        }
        match imatrix {
            None => {
                return Err(Error::Invalid(format!(
                    "this quantization needs an importance matrix (--imatrix; make one with \
                     `ember imatrix`): {} would be {}",
                    src.name,
                    plan.dtype.name()
                )));
            }
            Some(m) if m.importance(&src.name).is_none() => {
                return Err(Error::Invalid(format!(
                    "the importance matrix has no entry for {}, which would be {} (was it made \
                     for another model?)",
                    src.name,
                    plan.dtype.name()
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The role of a layer tensor that llama.cpp's mixtures treat apart.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Attention values (and a fused q/k/v, which llama.cpp treats as values).
    Value,
    /// The attention output projection.
    AttnOutput,
    /// The feed-forward down projection.
    FfnDown,
    /// The attention queries or keys.
    QueryKey,
    /// The feed-forward gate or up projection.
    FfnGateUp,
}

/// llama.cpp's rule for layer `i`'s tensor `name` in mixture `mix` (its
/// `llama_tensor_get_type_impl` for these mixtures and dense models), if it departs from the
/// base type.
fn mix_rule(mix: Mix, name: &str, i: usize, m: ModelShape, imatrix: bool) -> Option<GgmlType> {
    use GgmlType::{Q3K, Q4K, Q5K, Q6K};
    let role = if name.ends_with("attn_v.weight") || name.ends_with("attn_qkv.weight") {
        Role::Value
    } else if name.ends_with("attn_output.weight") {
        Role::AttnOutput
    } else if name.ends_with("ffn_down.weight") {
        Role::FfnDown
    } else if name.ends_with("attn_q.weight") || name.ends_with("attn_k.weight") {
        Role::QueryKey
    } else if name.ends_with("ffn_gate.weight") || name.ends_with("ffn_up.weight") {
        Role::FfnGateUp
    } else {
        return None;
    };
    let n = m.layers;
    let more = use_more_bits(i, n);
    let two_bit = matches!(
        mix,
        Mix::Iq1S | Mix::Iq1M | Mix::Iq2Xxs | Mix::Iq2Xs | Mix::Iq2S | Mix::Iq2M
    );
    // The 1- and 2-bit mixtures' "more bits": IQ3_S for iq2_s and iq2_m, Q2_K for the others.
    let more_than_two = if matches!(mix, Mix::Iq2S | Mix::Iq2M) {
        GgmlType::Iq3S
    } else {
        GgmlType::Q2K
    };
    match (mix, role) {
        (_, Role::Value) if two_bit => Some(if m.gqa >= 4 { Q4K } else { more_than_two }),
        (_, Role::FfnDown) if two_bit && i < n / 8 => Some(more_than_two),
        (Mix::Iq2S | Mix::Iq2M, Role::AttnOutput) => Some(GgmlType::Iq3S),
        (Mix::Iq1S | Mix::Iq1M, Role::AttnOutput) => Some(GgmlType::Iq2Xxs),
        (_, _) if two_bit => None,
        (Mix::Iq3Xxs, Role::Value) if m.gqa >= 4 => Some(Q4K),
        (Mix::Iq3Xxs, Role::Value) if !imatrix => Some(GgmlType::Iq3S),
        (Mix::Iq3Xxs, Role::QueryKey) => Some(GgmlType::Iq2S),
        (Mix::Iq3Xxs, Role::FfnDown) if !imatrix => Some(if i < n / 8 { Q4K } else { Q3K }),
        (Mix::Iq3Xxs, Role::AttnOutput) => Some(GgmlType::Iq3S),
        (Mix::Q2K, Role::Value) => Some(if m.gqa >= 4 { Q4K } else { Q3K }),
        (Mix::Q2K, Role::AttnOutput | Role::FfnDown) => Some(Q3K),
        (Mix::Q2KS, Role::Value) if m.gqa >= 4 => Some(Q4K),
        (Mix::Q2KS, Role::FfnDown) if i < n / 8 => Some(Q4K),
        (Mix::Q3KM, Role::Value) => Some(if i < 2 { Q5K } else { Q4K }),
        (Mix::Q3KM, Role::FfnDown) => Some(if i < n / 16 { Q5K } else { Q4K }),
        (Mix::Q3KM, Role::AttnOutput) => Some(Q4K),
        (Mix::Q3KL, Role::Value | Role::AttnOutput | Role::FfnDown) => Some(Q5K),
        (Mix::Q4KS, Role::Value) if i < 4 => Some(Q5K),
        (Mix::Q4KS, Role::FfnDown) if i < n / 8 => Some(Q5K),
        (Mix::Q4KM | Mix::Q5KM, Role::Value | Role::FfnDown) if more => Some(Q6K),
        (Mix::Iq4Nl | Mix::Iq4Xs, Role::Value) if m.gqa >= 4 => Some(Q5K),
        (Mix::Iq4Nl | Mix::Iq4Xs, Role::FfnDown) if i < n / 8 && !imatrix => Some(Q5K),
        (Mix::Iq3Xs | Mix::Iq3S, Role::Value) if m.gqa >= 4 => Some(Q4K),
        (Mix::Iq3Xs, Role::QueryKey) => Some(GgmlType::Iq3Xxs),
        (Mix::Iq3Xs, Role::FfnGateUp) if i >= n / 8 && i < 7 * n / 8 => Some(GgmlType::Iq3Xxs),
        (Mix::Iq3M, Role::Value | Role::AttnOutput) => Some(Q4K),
        (Mix::Iq3M, Role::FfnDown) if i < n / 8 => Some(Q4K),
        _ => None,
    }
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

/// Encodes rows of `cols` values as `t`, the rows split over the machine's cores (each row is
/// encoded on its own, so the bytes do not depend on the split).
fn quantize_rows(
    t: GgmlType,
    values: &[f32],
    cols: usize,
    importance: Option<&[f32]>,
) -> std::result::Result<Vec<u8>, String> {
    let rows = values.len() / cols.max(1);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Below a few blocks' worth per thread, threads cost more than they save.
    if threads < 2 || values.len() < 1 << 16 || rows < threads {
        return t.quantize_with(values, importance);
    }
    let chunk = rows.div_ceil(threads) * cols;
    let parts: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = values
            .chunks(chunk)
            .map(|part| scope.spawn(move || t.quantize_with(part, importance)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    parts.into_iter().try_fold(Vec::new(), |mut all, part| {
        all.extend(part?);
        Ok(all)
    })
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
    let shape = ModelShape {
        layers: cfg.layers,
        gqa: cfg.heads / cfg.kv_heads.max(1),
        tied: w.output.is_none(),
    };
    let plans: Vec<TensorPlan> = outputs
        .iter()
        .map(|o| TensorPlan {
            name: o.name.clone(),
            dtype: plan(&o.name, &o.shape, shape, opts),
            shape: o.shape.clone(),
        })
        .collect();
    check_importance_coverage(&outputs, &plans, opts)?;
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
                ) && !k.starts_with("quantize.imatrix.")
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
    // What llama-quantize records of an importance matrix (strings cut to its 127 bytes).
    if let Some(m) = &opts.imatrix {
        let cut = |s: &str| -> String {
            s.chars()
                .scan(0, |n, c| {
                    *n += c.len_utf8();
                    (*n <= 127).then_some(c)
                })
                .collect()
        };
        let mut put = |k: &str, v: MetaValue| metadata.push((format!("quantize.imatrix.{k}"), v));
        if let Some(f) = &m.source {
            put("file", MetaValue::String(cut(f)));
        }
        if let Some(d) = m.datasets.first() {
            put("dataset", MetaValue::String(cut(d)));
        }
        put("entries_count", MetaValue::I32(m.entries.len() as i32));
        if m.chunk_count > 0 {
            put("chunks_count", MetaValue::I32(m.chunk_count as i32));
        }
    }
    let total = outputs.len();
    write_gguf(out, &metadata, &plans, |i| {
        let (src, plan) = (&outputs[i], &plans[i]);
        let permuted = permute
            && [
                "attn_q.weight",
                "attn_q.bias",
                "attn_k.weight",
                "attn_k.bias",
            ]
            .iter()
            .any(|suffix| src.name.ends_with(suffix));
        // A tensor already in its type is copied, not quantized again (as llama-quantize does).
        if let [part] = src.parts[..]
            && part.dtype == plan.dtype
            && !permuted
        {
            progress(i + 1, total);
            return Ok(part.bytes().to_vec());
        }
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
        let importance = match &opts.imatrix {
            Some(m) if !plan.dtype.is_float() => m.importance(&src.name),
            _ => None,
        };
        if let Some(imp) = &importance
            && imp.len() != cols
        {
            return Err(Error::Invalid(format!(
                "the importance matrix has {} columns for {}, which has {cols}: it was made for another model",
                imp.len(),
                src.name
            )));
        }
        let bytes =
            quantize_rows(plan.dtype, &values, cols, importance.as_deref()).map_err(|p| {
                Error::Tensor {
                    name: src.name.clone(),
                    problem: p,
                }
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
            tensor_types: Vec::new(),
            imatrix: None,
        }
    }

    fn shape(layers: usize, gqa: usize, tied: bool) -> ModelShape {
        ModelShape { layers, gqa, tied }
    }

    #[test]
    fn mixed_presets_follow_llama_cpp() {
        // The tiny K-quant reference model: 2 layers; llama-quantize Q4_K_M gave Q6_K to layer 1's
        // attn_v and ffn_down only.
        let o = opts(Preset::Mix(Mix::Q4KM));
        let m = shape(2, 2, true);
        assert_eq!(
            plan("blk.0.attn_v.weight", &[256, 128], m, &o),
            GgmlType::Q4K
        );
        assert_eq!(
            plan("blk.1.attn_v.weight", &[256, 128], m, &o),
            GgmlType::Q6K
        );
        assert_eq!(
            plan("blk.1.ffn_down.weight", &[768, 256], m, &o),
            GgmlType::Q6K
        );
        assert_eq!(
            plan("blk.1.attn_q.weight", &[256, 256], m, &o),
            GgmlType::Q4K
        );
        assert_eq!(plan("blk.1.attn_norm.weight", &[256], m, &o), GgmlType::F32);
        // Rows that are not whole super-blocks fall back; the tied head of width 576 gets Q8_0.
        let m = shape(30, 3, true);
        assert_eq!(
            plan("blk.0.attn_q.weight", &[576, 576], m, &o),
            GgmlType::Q5_0
        );
        assert_eq!(
            plan("token_embd.weight", &[576, 49152], m, &o),
            GgmlType::Q8_0
        );
        let m = shape(30, 3, false);
        assert_eq!(plan("output.weight", &[512, 1000], m, &o), GgmlType::Q6K);
        let o = opts(Preset::Uniform(GgmlType::F16));
        assert_eq!(plan("output.weight", &[512, 1000], m, &o), GgmlType::F16);
        let o = QuantizeOptions {
            token_embd_type: Some(GgmlType::Q4_0),
            ..opts(Preset::Uniform(GgmlType::Q8_0))
        };
        assert_eq!(
            plan("token_embd.weight", &[512, 1000], m, &o),
            GgmlType::Q4_0
        );
        assert!((0..32).filter(|&i| use_more_bits(i, 32)).count() > 8);
        // Q3_K_M: values Q5_K in the first two layers then Q4_K, outputs Q4_K, the first
        // sixteenth's down Q5_K; Q2_K: Q3_K for all three (Q4_K values with 4+ heads per KV
        // head); IQ4_XS: Q5_K values with 4+ heads per KV head, the first eighth's down Q5_K
        // without an importance matrix only; rows of 576 fall back to Q4_0 / IQ4_NL.
        let m = shape(32, 4, false);
        let q3 = opts(Preset::Mix(Mix::Q3KM));
        let at = |o: &QuantizeOptions, n: &str| plan(n, &[512, 512], m, o);
        assert_eq!(at(&q3, "blk.1.attn_v.weight"), GgmlType::Q5K);
        assert_eq!(at(&q3, "blk.2.attn_v.weight"), GgmlType::Q4K);
        assert_eq!(at(&q3, "blk.1.ffn_down.weight"), GgmlType::Q5K);
        assert_eq!(at(&q3, "blk.2.ffn_down.weight"), GgmlType::Q4K);
        assert_eq!(at(&q3, "blk.9.attn_output.weight"), GgmlType::Q4K);
        assert_eq!(at(&q3, "blk.9.ffn_up.weight"), GgmlType::Q3K);
        let q2 = opts(Preset::Mix(Mix::Q2K));
        assert_eq!(at(&q2, "blk.9.attn_v.weight"), GgmlType::Q4K);
        assert_eq!(at(&q2, "blk.9.ffn_down.weight"), GgmlType::Q3K);
        assert_eq!(at(&q2, "blk.9.attn_k.weight"), GgmlType::Q2K);
        let xs = opts(Preset::Mix(Mix::Iq4Xs));
        assert_eq!(at(&xs, "blk.9.attn_v.weight"), GgmlType::Q5K);
        assert_eq!(at(&xs, "blk.3.ffn_down.weight"), GgmlType::Q5K);
        let with = QuantizeOptions {
            imatrix: Some(ImportanceMatrix::default()),
            ..xs.clone()
        };
        assert_eq!(at(&with, "blk.3.ffn_down.weight"), GgmlType::Iq4Xs);
        assert_eq!(
            plan("blk.3.ffn_up.weight", &[576, 8], m, &xs),
            GgmlType::Iq4Nl
        );
        assert_eq!(
            plan("blk.3.ffn_up.weight", &[576, 8], m, &q2),
            GgmlType::Q4_0
        );
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
        assert_eq!(Preset::parse("Q4_K_M").unwrap(), Preset::Mix(Mix::Q4KM));
        assert_eq!(Preset::parse("iq4_xs").unwrap(), Preset::Mix(Mix::Iq4Xs));
        assert_eq!(
            Preset::parse("q8_0").unwrap(),
            Preset::Uniform(GgmlType::Q8_0)
        );
        assert_eq!(
            Preset::parse("q3_k").unwrap(),
            Preset::Uniform(GgmlType::Q3K)
        );
        assert_eq!(Preset::parse("TQ2_0").unwrap(), Preset::Mix(Mix::Tq2_0));
        assert_eq!(Preset::parse("iq2_m").unwrap(), Preset::Mix(Mix::Iq2M));
        assert_eq!(Preset::parse("IQ1_S").unwrap(), Preset::Mix(Mix::Iq1S));
        assert_eq!(Preset::parse("q2_k_s").unwrap(), Preset::Mix(Mix::Q2KS));
        for bad in ["q9", "f32", "iq2", "iq4_ks"] {
            assert!(Preset::parse(bad).is_err(), "{bad}");
        }
    }
}
