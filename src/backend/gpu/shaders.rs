//! WGSL sources and their composition: each kernel family is one file in `shaders/`, and each
//! block format's decoding is a small function in `shaders/quant/` spliced into the kernels that
//! read weights (`//!include QUANT`), so N formats never become N copies of a kernel. Optional
//! fast paths are variants of the same files: `//!include REDUCE` picks a workgroup reduction
//! (subgroup operations or workgroup memory), `//!include NORM` whether a one-token mat-vec folds
//! in the RMSNorm before it, and `{{KV}}` the KV-cache element type (f16 or f32).

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
}

macro_rules! kernel {
    ($name:literal, $writable:expr) => {
        Kernel {
            name: $name,
            source: include_str!(concat!("../../../shaders/", $name, ".wgsl")),
            writable: $writable,
        }
    };
}

/// Quantized matrix product over tiles of tokens (prefill).
pub const MATMUL: Kernel = kernel!("matmul", &[false, false, true, false]);
/// Quantized matrix product in 32 x 32 workgroup tiles (prefill of more than [`PREFILL_TILE`]
/// tokens).
pub const MATMUL_TILED: Kernel = kernel!("matmul_tiled", &[false, false, true, false]);
/// Quantized matrix-vector product for one token (decode): several threads per weight row.
pub const MATVEC: Kernel = kernel!("matvec", &[false, false, true, false]);
/// act(gate · x) * (up · x) for one token, gate and up from one buffer.
pub const MATVEC_GLU: Kernel = kernel!("matvec_glu", &[false, false, true, false]);
/// One token times consecutive row ranges of one buffer (q, k, v), into three outputs.
pub const MATVEC_MULTI: Kernel = kernel!("matvec_multi", &[false, false, true, true, true, false]);
/// Embedding lookup from a quantized table.
pub const EMBED: Kernel = kernel!("embed", &[false, false, true]);
/// RMSNorm.
pub const RMS_NORM: Kernel = kernel!("rms_norm", &[false, false, true]);
/// Rotary position embedding, in place.
pub const ROPE: Kernel = kernel!("rope", &[true, false]);
/// Causal GQA attention over the KV cache.
pub const ATTENTION: Kernel = kernel!("attention", &[false, false, false, true]);
/// Causal attention of a prompt's rows, 64 query rows of a head per workgroup sharing each
/// block of keys and values.
pub const ATTENTION_PREFILL: Kernel = kernel!("attention_prefill", &[false, false, false, true]);
/// Attention of one query row split over chunks of the context, a KV head's query heads together.
pub const ATTENTION_DECODE: Kernel =
    kernel!("attention_decode", &[false, false, false, true, true, true]);
/// Combines the chunks of [`ATTENTION_DECODE`].
pub const ATTENTION_MERGE: Kernel = kernel!("attention_merge", &[false, false, true]);
/// Positions per workgroup of [`ATTENTION_DECODE`] (`CHUNK` in the shader).
pub const ATTENTION_CHUNK: usize = 128;
/// RoPE of the new queries and keys with the keys and values stored into the cache.
pub const ROPE_STORE: Kernel = kernel!("rope_store", &[true, false, false, false, true, true]);
/// Writes keys/values into the cache, converting to its element type.
pub const KV_STORE: Kernel = kernel!("kv_store", &[false, true]);
/// act(gate) * up.
pub const ACT_MUL: Kernel = kernel!("act_mul", &[false, false, true]);
/// Scale or soft cap, in place.
pub const UNARY: Kernel = kernel!("unary", &[true]);
/// Residual add, in place.
pub const ADD: Kernel = kernel!("add", &[true, false]);

/// Every kernel.
pub const KERNELS: &[Kernel] = &[
    MATMUL,
    MATMUL_TILED,
    MATVEC,
    MATVEC_GLU,
    MATVEC_MULTI,
    EMBED,
    RMS_NORM,
    ROPE,
    ROPE_STORE,
    ATTENTION,
    ATTENTION_PREFILL,
    ATTENTION_DECODE,
    ATTENTION_MERGE,
    KV_STORE,
    ACT_MUL,
    UNARY,
    ADD,
];

/// Tokens per invocation of the matmul kernel for prefill (decode without split rows uses 1).
pub const PREFILL_TILE: u32 = 8;

/// Threads per weight row of the one-token mat-vecs where the lanes sum through workgroup
/// memory; with subgroup sums, the adapter's smallest subgroup size up to this.
pub const MATVEC_LANES: u32 = 16;

/// The prefill tile shape (weight rows, tokens) where `ember tune` has not chosen one.
pub const DEFAULT_TILES: (u32, u32) = (32, 32);

/// The prefill tile shapes `ember tune` chooses between; all fit WebGPU's default limits (16 KiB
/// of workgroup memory in f32, 256 invocations).
pub const TILE_CHOICES: [(u32, u32); 4] = [(32, 32), (64, 32), (32, 64), (64, 64)];

/// Longest row the 8-bit mat-vecs take (`MAX_K` in quant/chunk_dot_i8.wgsl).
pub const INT8_MAX_K: usize = 4096;

/// Which build of a kernel: block format, token tile, and the optional fast paths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Variant {
    /// Block format spliced in (kernels that read weights).
    pub dtype: Option<GgmlType>,
    /// Tokens per invocation (matmul).
    pub tile: u32,
    /// f16 elements (needs shader-f16): the KV cache of the attention kernels, the tiles of
    /// matmul_tiled.
    pub f16: bool,
    /// Subgroup reductions (needs subgroups).
    pub subgroups: bool,
    /// The RMSNorm of the activations folded into a one-token mat-vec (norm/rms.wgsl).
    pub norm: bool,
    /// Threads per weight row of the one-token mat-vecs (matvec_lanes.wgsl); 0 means
    /// [`MATVEC_LANES`].
    pub lanes: u32,
    /// The one-token mat-vecs on 8-bit activations (quant/chunk_dot_i8.wgsl).
    pub int8: bool,
    /// Rows each group of lanes of the one-token mat-vecs computes (matvec_lanes.wgsl); 0
    /// means 1.
    pub group_rows: u32,
    /// Weight rows x tokens of a matmul_tiled workgroup's tile (32 or 64 each); (0, 0) means
    /// [`DEFAULT_TILES`].
    pub tiles: (u32, u32),
    /// The attention kernels built for heads of up to 256 values (Gemma's) instead of 128:
    /// twice the registers per thread, half the threads or positions per workgroup so that
    /// workgroup memory stays the same.
    pub wide_heads: bool,
}

impl Variant {
    /// A weight-reading kernel for block format `t`, one token per invocation.
    pub fn weights(t: GgmlType) -> Variant {
        Variant {
            dtype: Some(t),
            tile: 1,
            ..Variant::default()
        }
    }

    /// A KV-cache kernel over f16 (`f16`) or f32 elements.
    pub fn kv(f16: bool) -> Variant {
        Variant {
            f16,
            tile: 1,
            ..Variant::default()
        }
    }
}

/// The files `//!include` may name.
const INCLUDES: &[(&str, &str)] = &[
    (
        "activation.wgsl",
        include_str!("../../../shaders/activation.wgsl"),
    ),
    (
        "soft_cap.wgsl",
        include_str!("../../../shaders/soft_cap.wgsl"),
    ),
    (
        "matmul_io.wgsl",
        include_str!("../../../shaders/matmul_io.wgsl"),
    ),
    (
        "attention_io.wgsl",
        include_str!("../../../shaders/attention_io.wgsl"),
    ),
    (
        "matvec_lanes.wgsl",
        include_str!("../../../shaders/matvec_lanes.wgsl"),
    ),
    (
        "quant/two_byte.wgsl",
        include_str!("../../../shaders/quant/two_byte.wgsl"),
    ),
    (
        "quant/bytes.wgsl",
        include_str!("../../../shaders/quant/bytes.wgsl"),
    ),
    (
        "quant/k_scale_min.wgsl",
        include_str!("../../../shaders/quant/k_scale_min.wgsl"),
    ),
    (
        "quant/packed.wgsl",
        include_str!("../../../shaders/quant/packed.wgsl"),
    ),
    (
        "quant/affine.wgsl",
        include_str!("../../../shaders/quant/affine.wgsl"),
    ),
    (
        "quant/chunk_dot_i8.wgsl",
        include_str!("../../../shaders/quant/chunk_dot_i8.wgsl"),
    ),
    (
        "quant/chunk_dot.wgsl",
        include_str!("../../../shaders/quant/chunk_dot.wgsl"),
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
        "quant/iq4_levels.wgsl",
        include_str!("../../../shaders/quant/iq4_levels.wgsl"),
    ),
    (
        "quant/iq4_nl.wgsl",
        include_str!("../../../shaders/quant/iq4_nl.wgsl"),
    ),
    (
        "quant/iq4_xs.wgsl",
        include_str!("../../../shaders/quant/iq4_xs.wgsl"),
    ),
    (
        "quant/lattice.wgsl",
        include_str!("../../../shaders/quant/lattice.wgsl"),
    ),
    (
        "quant/iq2_xxs.wgsl",
        include_str!("../../../shaders/quant/iq2_xxs.wgsl"),
    ),
    (
        "quant/iq2_xs.wgsl",
        include_str!("../../../shaders/quant/iq2_xs.wgsl"),
    ),
    (
        "quant/iq2_s.wgsl",
        include_str!("../../../shaders/quant/iq2_s.wgsl"),
    ),
    (
        "quant/iq3_xxs.wgsl",
        include_str!("../../../shaders/quant/iq3_xxs.wgsl"),
    ),
    (
        "quant/iq3_s.wgsl",
        include_str!("../../../shaders/quant/iq3_s.wgsl"),
    ),
    (
        "quant/iq1_s.wgsl",
        include_str!("../../../shaders/quant/iq1_s.wgsl"),
    ),
    (
        "quant/iq1_m.wgsl",
        include_str!("../../../shaders/quant/iq1_m.wgsl"),
    ),
    (
        "quant/tq1_0.wgsl",
        include_str!("../../../shaders/quant/tq1_0.wgsl"),
    ),
    (
        "quant/tq2_0.wgsl",
        include_str!("../../../shaders/quant/tq2_0.wgsl"),
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
    (
        "lanes/shared.wgsl",
        include_str!("../../../shaders/lanes/shared.wgsl"),
    ),
    (
        "lanes/subgroup.wgsl",
        include_str!("../../../shaders/lanes/subgroup.wgsl"),
    ),
    (
        "norm/none.wgsl",
        include_str!("../../../shaders/norm/none.wgsl"),
    ),
    (
        "norm/rms.wgsl",
        include_str!("../../../shaders/norm/rms.wgsl"),
    ),
    (
        "reduce/shared.wgsl",
        include_str!("../../../shaders/reduce/shared.wgsl"),
    ),
    (
        "reduce/subgroup.wgsl",
        include_str!("../../../shaders/reduce/subgroup.wgsl"),
    ),
];

fn include_path(target: &str, v: Variant) -> Result<String> {
    Ok(match target {
        "QUANT" => {
            let t = v
                .dtype
                .ok_or_else(|| Error::Backend("kernel needs a block format".into()))?;
            format!("quant/{}.wgsl", t.name().to_ascii_lowercase())
        }
        "REDUCE" if v.subgroups => "reduce/subgroup.wgsl".into(),
        "REDUCE" => "reduce/shared.wgsl".into(),
        "LANES" if v.subgroups => "lanes/subgroup.wgsl".into(),
        "LANES" => "lanes/shared.wgsl".into(),
        "DOT" if v.int8 => "quant/chunk_dot_i8.wgsl".into(),
        "DOT" => "quant/chunk_dot.wgsl".into(),
        "NORM" if v.norm => "norm/rms.wgsl".into(),
        "NORM" => "norm/none.wgsl".into(),
        p => p.to_string(),
    })
}

fn splice(src: &str, v: Variant, out: &mut String, seen: &mut Vec<String>) -> Result<()> {
    for line in src.lines() {
        let Some(target) = line.trim().strip_prefix("//!include ") else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let path = include_path(target.trim(), v)?;
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
        splice(body, v, out, seen)?;
    }
    Ok(())
}

/// The WGSL module for `kernel` in variant `v`, and the files it was made from.
pub fn compose_with_files(kernel: Kernel, v: Variant) -> Result<(String, Vec<String>)> {
    let mut body = String::new();
    let mut files = vec![format!("{}.wgsl", kernel.name)];
    splice(kernel.source, v, &mut body, &mut files)?;
    let kv = if v.f16 { "f16" } else { "f32" };
    // naga 30 refuses `enable subgroups;` (it accepts subgroup operations without it).
    let header = if v.f16 && (body.contains("{{KV}}") || body.contains("{{TILE_TYPE}}")) {
        "enable f16;\n"
    } else {
        ""
    };
    let lanes = if v.lanes == 0 { MATVEC_LANES } else { v.lanes };
    let tiles = if v.tiles.0 == 0 {
        DEFAULT_TILES
    } else {
        v.tiles
    };
    let body = body
        .replace("{{TILE}}", &v.tile.max(1).to_string())
        .replace("{{LANES}}", &lanes.to_string())
        .replace("{{GROUP_ROWS}}", &v.group_rows.max(1).to_string())
        .replace("{{TILE_ROWS}}", &tiles.0.to_string())
        .replace("{{TILE_TOKENS}}", &tiles.1.to_string())
        .replace("{{TILE_THREADS}}", &(tiles.0 * tiles.1 / 16).to_string())
        .replace("{{TILE_TYPE}}", kv)
        .replace("{{MAX_D4}}", if v.wide_heads { "64" } else { "32" })
        .replace("{{KV}}", kv);

    Ok((format!("{header}{body}"), files))
}

/// The WGSL module for `kernel` in variant `v`.
pub fn compose(kernel: Kernel, v: Variant) -> Result<String> {
    compose_with_files(kernel, v).map(|(s, _)| s)
}

/// The variants of `kernel` the backend may build.
pub fn variants(kernel: Kernel) -> Vec<Variant> {
    let base = Variant {
        tile: 1,
        ..Variant::default()
    };
    match kernel.name {
        "matmul" => GgmlType::ALL
            .iter()
            .flat_map(|&t| {
                [1, PREFILL_TILE].map(|tile| Variant {
                    dtype: Some(t),
                    tile,
                    ..base
                })
            })
            .collect(),
        // Lanes summed through workgroup memory (4 to 32), or in subgroups (4 to 16), each group
        // of lanes computing 1 row, or 2 or 4 at the common lane counts.
        "matvec" | "matvec_glu" | "matvec_multi" => GgmlType::ALL
            .iter()
            .flat_map(|&t| {
                let norms: &[bool] = if kernel.name == "matvec" {
                    &[false]
                } else {
                    &[false, true]
                };
                // 8-bit activations for the integer formats.
                let int8: &[bool] = if t.is_float() {
                    &[false]
                } else {
                    &[false, true]
                };
                norms.iter().flat_map(move |&norm| {
                    int8.iter().flat_map(move |&int8| {
                        [
                            (false, 4, 1),
                            (false, 16, 1),
                            (false, 32, 1),
                            (true, 4, 1),
                            (true, 8, 1),
                            (true, 16, 1),
                            (false, 16, 2),
                            (false, 8, 4),
                            (true, 8, 2),
                            (true, 16, 4),
                        ]
                        .map(|(subgroups, lanes, group_rows)| Variant {
                            dtype: Some(t),
                            norm,
                            subgroups,
                            lanes,
                            int8,
                            group_rows,
                            ..base
                        })
                    })
                })
            })
            .collect(),
        // Every tile shape in f32; in f16 the default and largest.
        "matmul_tiled" => GgmlType::ALL
            .iter()
            .flat_map(|&t| {
                TILE_CHOICES
                    .iter()
                    .map(move |&tiles| (tiles, false))
                    .chain([(DEFAULT_TILES, true), ((64, 64), true)])
                    .map(move |(tiles, f16)| Variant {
                        dtype: Some(t),
                        tiles,
                        f16,
                        ..base
                    })
            })
            .collect(),
        "embed" => GgmlType::ALL
            .iter()
            .map(|&t| Variant {
                dtype: Some(t),
                ..base
            })
            .collect(),
        "rms_norm" => vec![
            base,
            Variant {
                subgroups: true,
                ..base
            },
        ],
        "attention" | "attention_prefill" | "attention_decode" => [false, true]
            .into_iter()
            .flat_map(|f16| {
                [false, true].map(|wide_heads| Variant {
                    f16,
                    wide_heads,
                    ..base
                })
            })
            .collect(),
        "kv_store" | "rope_store" => vec![base, Variant { f16: true, ..base }],
        _ => vec![base],
    }
}

/// Every module the GPU backend can build: (label, source, files used), for validation.
pub fn all_variants() -> Vec<(String, String, Vec<String>)> {
    KERNELS
        .iter()
        .flat_map(|&k| variants(k).into_iter().map(move |v| (k, v)))
        .filter_map(|(k, v)| {
            compose_with_files(k, v)
                .ok()
                .map(|(src, files)| (format!("{} {v:?}", k.name), src, files))
        })
        .collect()
}

/// What a composed kernel asks of the device beyond its bindings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelNeeds {
    /// Workgroup memory, bytes (each variable rounded up to 16, as WebGPU counts it).
    pub workgroup_bytes: u32,
    /// Invocations per workgroup.
    pub invocations: u32,
}

/// The workgroup memory and invocations of the `main` entry point of WGSL `src`, read from the
/// parsed module (not declared by hand, so it cannot drift from the shader).
pub fn needs(src: &str) -> Result<KernelNeeds> {
    let module = naga::front::wgsl::parse_str(src)
        .map_err(|e| Error::Backend(format!("shader does not parse: {}", e.message())))?;
    let gctx = module.to_ctx();
    let workgroup_bytes = module
        .global_variables
        .iter()
        .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
        .map(|(_, g)| module.types[g.ty].inner.size(gctx).next_multiple_of(16))
        .sum();
    let entry = module
        .entry_points
        .iter()
        .find(|e| e.name == "main")
        .ok_or_else(|| Error::Backend("shader has no `main` entry point".into()))?;
    Ok(KernelNeeds {
        workgroup_bytes,
        invocations: entry.workgroup_size.iter().product(),
    })
}

/// Refuses `kernel` (`needs` of it) where `limits` cannot run it, with the numbers.
pub fn check_needs(kernel: &str, needs: KernelNeeds, limits: &wgpu::Limits) -> Result<()> {
    if needs.workgroup_bytes > limits.max_compute_workgroup_storage_size {
        return Err(Error::Backend(format!(
            "kernel `{kernel}` needs {} bytes of workgroup memory; this device allows {}",
            needs.workgroup_bytes, limits.max_compute_workgroup_storage_size
        )));
    }
    if needs.invocations > limits.max_compute_invocations_per_workgroup {
        return Err(Error::Backend(format!(
            "kernel `{kernel}` runs {} invocations per workgroup; this device allows {}",
            needs.invocations, limits.max_compute_invocations_per_workgroup
        )));
    }
    Ok(())
}
