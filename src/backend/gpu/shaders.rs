//! WGSL sources and their composition: each kernel family is one file in `shaders/`, and each
//! block format's decoding is a small function in `shaders/quant/` spliced into the kernels that
//! read weights (`//!include QUANT`), so N formats never become N copies of a kernel.

use crate::error::{Error, Result};
use crate::quant::GgmlType;

/// A compute kernel: its source and how its storage bindings (after the params binding 0) are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    /// Name, for labels and reports.
    pub name: &'static str,
    source: &'static str,
    /// Per binding 1.., whether the kernel writes it.
    pub writable: &'static [bool],
    /// Whether the kernel decodes weights (and so needs a block format spliced in).
    pub quantized: bool,
}

macro_rules! kernel {
    ($name:literal, $writable:expr, $quantized:expr) => {
        Kernel {
            name: $name,
            source: include_str!(concat!("../../../shaders/", $name, ".wgsl")),
            writable: $writable,
            quantized: $quantized,
        }
    };
}

/// Quantized matrix product (decode mat-vec with tile 1, prefill mat-mat with larger tiles).
pub const MATMUL: Kernel = kernel!("matmul", &[false, false, true, false], true);
/// Embedding lookup from a quantized table.
pub const EMBED: Kernel = kernel!("embed", &[false, false, true], true);
/// RMSNorm.
pub const RMS_NORM: Kernel = kernel!("rms_norm", &[false, false, true], false);
/// Rotary position embedding, in place.
pub const ROPE: Kernel = kernel!("rope", &[true, false], false);
/// Causal GQA attention over the KV cache.
pub const ATTENTION: Kernel = kernel!("attention", &[false, false, false, true], false);
/// SiLU(gate) * up.
pub const SILU_MUL: Kernel = kernel!("silu_mul", &[false, false, true], false);
/// Residual add, in place.
pub const ADD: Kernel = kernel!("add", &[true, false], false);

/// Every kernel.
pub const KERNELS: &[Kernel] = &[MATMUL, EMBED, RMS_NORM, ROPE, ATTENTION, SILU_MUL, ADD];

/// Token tiles the matmul kernel is built for: 1 (decode) and this (prefill).
pub const PREFILL_TILE: u32 = 8;

/// The files `//!include` may name.
const INCLUDES: &[(&str, &str)] = &[
    (
        "quant/bytes.wgsl",
        include_str!("../../../shaders/quant/bytes.wgsl"),
    ),
    (
        "quant/k_scale_min.wgsl",
        include_str!("../../../shaders/quant/k_scale_min.wgsl"),
    ),
    (
        "quant/f32.wgsl",
        include_str!("../../../shaders/quant/f32.wgsl"),
    ),
    (
        "quant/f16.wgsl",
        include_str!("../../../shaders/quant/f16.wgsl"),
    ),
    (
        "quant/bf16.wgsl",
        include_str!("../../../shaders/quant/bf16.wgsl"),
    ),
    (
        "quant/q4_0.wgsl",
        include_str!("../../../shaders/quant/q4_0.wgsl"),
    ),
    (
        "quant/q4_1.wgsl",
        include_str!("../../../shaders/quant/q4_1.wgsl"),
    ),
    (
        "quant/q5_0.wgsl",
        include_str!("../../../shaders/quant/q5_0.wgsl"),
    ),
    (
        "quant/q5_1.wgsl",
        include_str!("../../../shaders/quant/q5_1.wgsl"),
    ),
    (
        "quant/q8_0.wgsl",
        include_str!("../../../shaders/quant/q8_0.wgsl"),
    ),
    (
        "quant/q2_k.wgsl",
        include_str!("../../../shaders/quant/q2_k.wgsl"),
    ),
    (
        "quant/q3_k.wgsl",
        include_str!("../../../shaders/quant/q3_k.wgsl"),
    ),
    (
        "quant/q4_k.wgsl",
        include_str!("../../../shaders/quant/q4_k.wgsl"),
    ),
    (
        "quant/q5_k.wgsl",
        include_str!("../../../shaders/quant/q5_k.wgsl"),
    ),
    (
        "quant/q6_k.wgsl",
        include_str!("../../../shaders/quant/q6_k.wgsl"),
    ),
];

/// The file holding `dtype`'s `dequant_chunk`.
pub fn quant_file(dtype: GgmlType) -> String {
    format!("quant/{}.wgsl", dtype.name().to_ascii_lowercase())
}

fn splice(
    src: &str,
    dtype: Option<GgmlType>,
    out: &mut String,
    seen: &mut Vec<String>,
) -> Result<()> {
    for line in src.lines() {
        let Some(target) = line.trim().strip_prefix("//!include ") else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let path = match (target.trim(), dtype) {
            ("QUANT", Some(t)) => quant_file(t),
            ("QUANT", None) => return Err(Error::Backend("kernel needs a block format".into())),
            (p, _) => p.to_string(),
        };
        if seen.contains(&path) {
            continue;
        }
        let body = INCLUDES
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, s)| *s)
            .ok_or_else(|| {
                Error::Backend(format!(
                    "no shader file {path} (type not supported on the GPU)"
                ))
            })?;
        seen.push(path);
        splice(body, dtype, out, seen)?;
    }
    Ok(())
}

/// The WGSL module for `kernel`, with `dtype`'s decoding spliced in and the token tile set.
pub fn compose(kernel: Kernel, dtype: Option<GgmlType>, tile: u32) -> Result<String> {
    let mut out = String::new();
    splice(kernel.source, dtype, &mut out, &mut Vec::new())?;
    Ok(out.replace("{{TILE}}", &tile.to_string()))
}

/// Every module the GPU backend can build, labelled: for validation and tests.
pub fn all_variants() -> Vec<(String, String, Vec<String>)> {
    let mut v = Vec::new();
    for &k in KERNELS {
        let types: Vec<Option<GgmlType>> = if k.quantized {
            GgmlType::ALL.iter().copied().map(Some).collect()
        } else {
            vec![None]
        };
        let tiles: &[u32] = if k.name == "matmul" {
            &[1, PREFILL_TILE]
        } else {
            &[1]
        };
        for t in types {
            for &tile in tiles {
                let mut seen = Vec::new();
                let mut src = String::new();
                if splice(k.source, t, &mut src, &mut seen).is_ok() {
                    let label = format!(
                        "{} {} tile {tile}",
                        k.name,
                        t.map(|t| t.name()).unwrap_or("-")
                    );
                    seen.push(format!("{}.wgsl", k.name));
                    v.push((label, src.replace("{{TILE}}", &tile.to_string()), seen));
                }
            }
        }
    }
    v
}
