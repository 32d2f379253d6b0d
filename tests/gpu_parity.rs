//! Every GPU kernel against the CPU reference on fresh random inputs: odd sizes, several shapes,
//! every block format, on each available GPU API (Vulkan and GL here, through Mesa).
//! f32 paths must agree to a relative error of 1e-4 (max |gpu - cpu| / max |cpu|). Each test runs
//! on the plain path and, where the adapter has the features, on the fast paths (subgroup
//! reductions: also 1e-4; f16 KV cache: keys and values rounded to f16, bound 2e-3; mat-vecs on
//! 8-bit activations against the CPU's 8-bit path: 1e-3).

mod common;

use common::*;
use ember::backend::cpu::{CpuBackend, Precision};
use ember::backend::gpu::shaders::TILE_CHOICES;
use ember::backend::gpu::tuning::{GROUP_ROWS, Tuning};
use ember::backend::gpu::{GpuBackend, GpuChoice, GpuContext, GpuOptions};
use ember::backend::{AttentionShape, Backend, CacheLayer, Norm, Rope, Unary, ring_capacity};
use ember::format::{Activation, RopeLayout, TensorView};
use ember::quant::GgmlType;

const TOL: f32 = 1e-4;
/// Bound for attention over an f16 KV cache (f16 keeps 11 significant bits: ~5e-4 per value).
const TOL_F16_KV: f32 = 2e-3;
/// Bound for mat-vecs on 8-bit activations against the CPU's (the same rounding).
const TOL_INT8: f32 = 1e-3;
/// Bound for prefill tiles in f16: weights and activations rounded to f16 (~5e-4 each) and each
/// four-term dot product summed in f16.
const TOL_F16_TILES: f32 = 1e-2;

fn check(what: &str, gpu: &[f32], cpu: &[f32], tol: f32) {
    assert!(
        gpu.iter().all(|v| v.is_finite()),
        "{what}: non-finite GPU output"
    );
    let e = rel_err(gpu, cpu);
    assert!(e <= tol, "{what}: relative error {e:e} > {tol:e}");
}

/// The option sets to test on `choice`: the plain path, and every fast path it has.
fn option_sets(choice: GpuChoice) -> Vec<GpuOptions> {
    let best = GpuOptions::fastest(&GpuContext::new(choice).unwrap());
    let plain = GpuOptions {
        f16_kv: false,
        subgroups: false,
        max_binding: None,
        split_rows: false,
        split_attention: false,
        int8_matvec: false,
        timestamps_inside_passes: false,
    };
    // Every fast path at once, with the decode mat-vec and attention split over threads
    // (software adapters default to a workgroup per head, real GPUs to splits).
    vec![
        plain,
        GpuOptions {
            split_rows: true,
            split_attention: true,
            ..best
        },
    ]
}

type Compare<'a> = &'a mut dyn FnMut(&str, &[f32], &[f32]);

/// Runs `f` for each GPU and option set, comparing outputs with the f32 bound (or `f16_tol`
/// when the f16 KV cache is on). `f` gets the comparison and a maker of GPU backends.
fn parity_tol(what: &str, f16_tol: f32, f: impl Fn(Compare, &dyn Fn() -> GpuBackend)) {
    for choice in gpu_choices() {
        for options in option_sets(choice) {
            let tol = if options.f16_kv { f16_tol } else { TOL };
            let make =
                || GpuBackend::with_context(GpuContext::new(choice).unwrap(), options).unwrap();
            f(
                &mut |label, g, c| {
                    check(
                        &format!("{what} {label} on {choice:?} {options:?}"),
                        g,
                        c,
                        tol,
                    )
                },
                &make,
            );
        }
    }
}

fn parity(what: &str, f: impl Fn(Compare, &dyn Fn() -> GpuBackend)) {
    parity_tol(what, TOL, f)
}

/// Cols multiple of the block size (and of 32), odd row counts, token counts around the tile.
fn matmul_case<B: Backend>(
    b: &mut B,
    w: &ember::format::TensorView,
    bias: Option<&ember::format::TensorView>,
    x: &[f32],
    tokens: usize,
) -> Vec<f32> {
    let wt = b.upload(w).unwrap();
    let bt = bias.map(|t| b.upload(t).unwrap());
    let xa = b.load_act(x, tokens, w.cols());
    let y = b.matmul(&xa, &wt, bt.as_ref());
    b.read(&y).unwrap()
}

#[test]
fn matmul_every_type_and_shape() {
    parity("matmul", |cmp, gpu| {
        let mut rng = Rng::fresh("matmul");
        let mut g = gpu();
        let mut c = CpuBackend::with_precision(1, Precision::F32).unwrap();
        for &t in GgmlType::ALL {
            let base = t.block_elems().max(32);
            for (cols, rows) in [(base, 37), (base * 3, 5), (base * 2, 129)] {
                let w = random_tensor(&mut rng, t, cols, rows);
                let bias = random_tensor(&mut rng, GgmlType::F32, rows, 1);
                // Mat-vec, the 8-token tile, and 32 x 32 tiles (partial in rows and tokens).
                for tokens in [1, 3, 9, 17, 45] {
                    let x = rng.vec(tokens * cols);
                    let with_bias = tokens % 3 == 0;
                    let bias = with_bias.then_some(&bias);
                    let label = format!(
                        "{} {cols}x{rows} tokens {tokens} bias {with_bias}",
                        t.name()
                    );
                    cmp(
                        &label,
                        &matmul_case(&mut g, &w, bias, &x, tokens),
                        &matmul_case(&mut c, &w, bias, &x, tokens),
                    );
                }
            }
        }
    });
}

/// `residual += x · wᵀ` (the residual add folded into the product) against the CPU's product
/// then add, decode and prefill, a few formats.
#[test]
fn matmul_add_into_the_residual() {
    parity("matmul_add", |cmp, gpu| {
        let mut rng = Rng::fresh("matmul_add");
        let mut g = gpu();
        let mut c = CpuBackend::with_precision(1, Precision::F32).unwrap();
        for t in [GgmlType::Q4_0, GgmlType::Q6K, GgmlType::F16] {
            let (cols, rows) = (256, 69);
            let w = random_tensor(&mut rng, t, cols, rows);
            for tokens in [1, 11] {
                let x = rng.vec(tokens * cols);
                let r = rng.vec(tokens * rows);
                cmp(
                    &format!("{} tokens {tokens}", t.name()),
                    &matmul_add_case(&mut g, &w, &x, &r, tokens),
                    &matmul_add_case(&mut c, &w, &x, &r, tokens),
                );
            }
        }
    });
}

fn matmul_add_case<B: Backend>(
    b: &mut B,
    w: &ember::format::TensorView,
    x: &[f32],
    residual: &[f32],
    tokens: usize,
) -> Vec<f32> {
    let wt = b.upload(w).unwrap();
    let xa = b.load_act(x, tokens, w.cols());
    let mut ra = b.load_act(residual, tokens, w.rows());
    b.matmul_add(&xa, &wt, &mut ra);
    b.read(&ra).unwrap()
}

/// The gated MLP's first half from weights uploaded together (one dispatch for a token) and
/// separately, decode and prefill, against the CPU's products and SiLU·mul.
#[test]
fn glu_from_grouped_weights() {
    parity("glu", |cmp, gpu| {
        let mut rng = Rng::fresh("glu");
        let mut g = gpu();
        let mut c = CpuBackend::with_precision(1, Precision::F32).unwrap();
        for t in [
            GgmlType::Q4_0,
            GgmlType::Q5_1,
            GgmlType::Q8_0,
            GgmlType::Q4K,
            GgmlType::F16,
        ] {
            let cols = t.block_elems().max(32) * 3;
            let gate = random_tensor(&mut rng, t, cols, 67);
            let up = random_tensor(&mut rng, t, cols, 67);
            let gain = random_tensor(&mut rng, GgmlType::F32, cols, 1);
            for (tokens, norm) in [(1, None), (5, None), (1, Some(&gain)), (5, Some(&gain))] {
                for act in [Activation::Silu, Activation::GeluTanh] {
                    let x = rng.vec(tokens * cols);
                    let label = format!(
                        "{} tokens {tokens} norm {} {act:?}",
                        t.name(),
                        norm.is_some()
                    );
                    cmp(
                        &label,
                        &glu_case(&mut g, &gate, &up, norm, &x, tokens, act),
                        &glu_case(&mut c, &gate, &up, norm, &x, tokens, act),
                    );
                }
            }
        }
    });
}

/// The gated MLP half of `x`, or of RMSNorm(x) with gain `norm` (folded in on the GPU).
fn glu_case<B: Backend>(
    b: &mut B,
    gate: &ember::format::TensorView,
    up: &ember::format::TensorView,
    norm: Option<&ember::format::TensorView>,
    x: &[f32],
    tokens: usize,
    act: Activation,
) -> Vec<f32> {
    let w = b.upload_group(&[gate, up]).unwrap();
    let xa = b.load_act(x, tokens, gate.cols());
    let y = match norm {
        Some(n) => {
            let gain = b.upload(n).unwrap();
            b.norm_glu(
                &xa,
                Norm {
                    weight: &gain,
                    eps: 1e-5,
                },
                &w[0],
                &w[1],
                act,
            )
        }
        None => b.glu(&xa, &w[0], &w[1], act),
    };
    b.read(&y).unwrap()
}

/// Products with weights uploaded together (q, k, v: one dispatch for a token), with and
/// without biases, decode and prefill, against the CPU.
#[test]
fn grouped_products_into_three_outputs() {
    parity("qkv", |cmp, gpu| {
        let mut rng = Rng::fresh("qkv");
        let mut g = gpu();
        let mut c = CpuBackend::with_precision(1, Precision::F32).unwrap();
        for t in [GgmlType::Q4_1, GgmlType::Q6K, GgmlType::Q8_0] {
            let cols = t.block_elems().max(32) * 2;
            let ws = [37, 13, 13].map(|rows| random_tensor(&mut rng, t, cols, rows));
            let bias = random_tensor(&mut rng, GgmlType::F32, 13, 1);
            let gain = random_tensor(&mut rng, GgmlType::F32, cols, 1);
            for (tokens, with_bias, normed) in [
                (1, false, false),
                (1, true, false),
                (4, false, false),
                (1, false, true),
                (1, true, true),
                (4, false, true),
            ] {
                let x = rng.vec(tokens * cols);
                let bias = with_bias.then_some(&bias);
                let norm = normed.then_some(&gain);
                let label = format!(
                    "{} tokens {tokens} bias {with_bias} norm {normed}",
                    t.name()
                );
                cmp(
                    &label,
                    &grouped_case(&mut g, &ws, bias, norm, &x, tokens),
                    &grouped_case(&mut c, &ws, bias, norm, &x, tokens),
                );
            }
        }
    });
}

/// The three products of `ws` (uploaded together; `bias` on the last) with `x`, or with
/// RMSNorm(x) with gain `norm`, concatenated.
fn grouped_case<B: Backend>(
    b: &mut B,
    ws: &[ember::format::TensorView; 3],
    bias: Option<&ember::format::TensorView>,
    norm: Option<&ember::format::TensorView>,
    x: &[f32],
    tokens: usize,
) -> Vec<f32> {
    let w = b.upload_group(&[&ws[0], &ws[1], &ws[2]]).unwrap();
    let bias = bias.map(|t| b.upload(t).unwrap());
    let xa = b.load_act(x, tokens, ws[0].cols());
    let products = [(&w[0], None), (&w[1], None), (&w[2], bias.as_ref())];
    let outs = match norm {
        Some(n) => {
            let gain = b.upload(n).unwrap();
            b.norm_matmuls(
                &xa,
                Norm {
                    weight: &gain,
                    eps: 1e-5,
                },
                &products,
            )
        }
        None => b.matmuls(&xa, &products),
    };
    outs.iter().flat_map(|o| b.read(o).unwrap()).collect()
}

/// More rows than 65535 workgroups of the mat-vec cover: the groups fold into two dimensions.
#[test]
fn matvec_over_many_rows() {
    parity("matvec rows", |cmp, gpu| {
        let mut rng = Rng::fresh("matvec rows");
        let (cols, rows) = (64, 65535 * 4 + 37);
        let w = random_tensor(&mut rng, GgmlType::Q4_0, cols, rows);
        let x = rng.vec(cols);
        cmp(
            "Q4_0 64 x 262177",
            &matmul_case(&mut gpu(), &w, None, &x, 1),
            &matmul_case(
                &mut CpuBackend::with_precision(2, Precision::F32).unwrap(),
                &w,
                None,
                &x,
                1,
            ),
        );
    });
}

fn embed_case<B: Backend>(b: &mut B, table: &ember::format::TensorView, ids: &[u32]) -> Vec<f32> {
    let t = b.upload(table).unwrap();
    let e = b.embed(&t, ids);
    b.read(&e).unwrap()
}

#[test]
fn embed_every_type() {
    parity("embed", |cmp, gpu| {
        let mut rng = Rng::fresh("embed");
        let mut g = gpu();
        let mut c = CpuBackend::with_precision(1, Precision::F32).unwrap();
        for &t in GgmlType::ALL {
            let cols = t.block_elems().max(32) * 2;
            let table = random_tensor(&mut rng, t, cols, 53);
            let ids = [52, 0, 7, 7, 31];
            cmp(
                t.name(),
                &embed_case(&mut g, &table, &ids),
                &embed_case(&mut c, &table, &ids),
            );
        }
    });
}

#[test]
fn weights_split_over_bindings_match() {
    for choice in gpu_choices() {
        let mut rng = Rng::fresh("split");
        // A binding limit of a few rows forces every matrix into several buffers.
        let ctx = GpuContext::new(choice).unwrap();
        let options = GpuOptions {
            max_binding: Some(3 * 144 + 100),
            ..GpuOptions::fastest(&ctx)
        };
        let mut g = GpuBackend::with_context(ctx, options).unwrap();
        let cmp = |label: &str, a: &[f32], b: &[f32]| {
            check(&format!("split {label} on {choice:?}"), a, b, TOL)
        };
        let mut c = CpuBackend::with_precision(1, Precision::F32).unwrap();
        for &t in &[GgmlType::Q4K, GgmlType::Q8_0, GgmlType::F32] {
            let cols = if t == GgmlType::F32 { 32 } else { 256 };
            let w = random_tensor(&mut rng, t, cols, 23);
            for tokens in [1, 5] {
                let x = rng.vec(tokens * cols);
                cmp(
                    &format!("matmul {}", t.name()),
                    &matmul_case(&mut g, &w, None, &x, tokens),
                    &matmul_case(&mut c, &w, None, &x, tokens),
                );
            }
            let ids = [22, 0, 11, 5];
            cmp(
                &format!("embed {}", t.name()),
                &embed_case(&mut g, &w, &ids),
                &embed_case(&mut c, &w, &ids),
            );
        }
    }
}

fn small_ops<B: Backend>(b: &mut B, rng_seed: u64) -> Vec<(String, Vec<f32>)> {
    let mut rng = Rng(rng_seed);
    let mut out = Vec::new();
    for (rows, cols) in [(1, 96), (7, 576), (3, 160)] {
        let x = b.load_act(&rng.vec(rows * cols), rows, cols);
        let w = b
            .upload(&random_tensor(&mut rng, GgmlType::F32, cols, 1))
            .unwrap();
        let n = b.rms_norm(&x, &w, 1e-5);
        out.push((format!("rms_norm {rows}x{cols}"), b.read(&n).unwrap()));
        let y = b.load_act(&rng.vec(rows * cols), rows, cols);
        for act in [Activation::Silu, Activation::GeluTanh] {
            let s = b.act_mul(&x, &y, act);
            out.push((
                format!("act_mul {act:?} {rows}x{cols}"),
                b.read(&s).unwrap(),
            ));
        }
        for op in [Unary::Scale(1.7), Unary::SoftCap(0.8)] {
            let mut u = b.load_act(&rng.vec(rows * cols), rows, cols);
            b.unary(&mut u, op);
            out.push((format!("unary {op:?} {rows}x{cols}"), b.read(&u).unwrap()));
        }
        let mut z = b.load_act(&rng.vec(rows * cols), rows, cols);
        b.add(&mut z, &y);
        out.push((format!("add {rows}x{cols}"), b.read(&z).unwrap()));
        let r = b.rows(&z, rows / 2, rows - rows / 2);
        out.push((format!("rows {rows}x{cols}"), b.read(&r).unwrap()));
        let c = b.concat_rows(&[&z, &x, &r]);
        out.push((format!("concat_rows {rows}x{cols}"), b.read(&c).unwrap()));
    }
    // Per-head norms (Qwen3's q/k norms): heads of 16, 32 and 128.
    for (rows, heads, head_dim) in [(1, 6, 16), (5, 3, 32), (2, 2, 128)] {
        let x = b.load_act(&rng.vec(rows * heads * head_dim), rows, heads * head_dim);
        let w = b
            .upload(&random_tensor(&mut rng, GgmlType::F32, head_dim, 1))
            .unwrap();
        let n = b.rms_norm_heads(&x, heads, &w, 1e-6);
        out.push((
            format!("rms_norm_heads {rows}x{heads}x{head_dim}"),
            b.read(&n).unwrap(),
        ));
    }
    // Every pair rotated, and the first 3/8 of them only (partial rotary).
    for (heads, head_dim, rows, pos0, pairs) in [
        (3, 64, 4, 5, 32),
        (5, 16, 1, 1000, 8),
        (2, 128, 9, 0, 64),
        (3, 64, 4, 5, 12),
        (2, 128, 9, 0, 24),
    ] {
        let inv: Vec<f32> = (0..pairs)
            .map(|i| 1.0 / 10000f32.powf(i as f32 / pairs as f32))
            .collect();
        let storage = std::sync::Arc::new(ember::format::storage::Storage::Owned(
            inv.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
        let freqs =
            ember::format::TensorView::new("f".into(), GgmlType::F32, vec![inv.len()], storage, 0)
                .unwrap();
        let freqs = b.upload(&freqs).unwrap();
        for layout in [RopeLayout::Interleaved, RopeLayout::Halves] {
            let mut x = b.load_act(&rng.vec(rows * heads * head_dim), rows, heads * head_dim);
            let rope = Rope {
                inv_freq: &freqs,
                layout,
                pairs,
            };
            b.rope(&mut x, heads, pos0, rope);
            out.push((
                format!("rope {heads}x{head_dim}/{pairs} rows {rows} pos {pos0} {layout:?}"),
                b.read(&x).unwrap(),
            ));
        }
    }
    out
}

#[test]
fn small_ops_match_the_cpu() {
    parity("ops", |cmp, gpu| {
        let seed = Rng::fresh("ops").0;
        let gpu_out = small_ops(&mut gpu(), seed);
        let cpu_out = small_ops(
            &mut CpuBackend::with_precision(1, Precision::F32).unwrap(),
            seed,
        );
        for ((label, g), (_, c)) in gpu_out.iter().zip(&cpu_out) {
            cmp(label, g, c);
        }
    });
}

/// Prefill, then steps that grow the cache past its first allocation, then single-token decode.
/// Attention steps of several row counts over a growing cache; with `rope`, queries and keys
/// are rotated first through [`Backend::rope_attention`] (frequencies from `freqs`). With a
/// window, the cache is window-sized (it drops old positions as the steps go) unless `whole`.
fn attention_run<B: Backend>(
    b: &mut B,
    seed: u64,
    s: AttentionShape,
    rope: Option<(RopeLayout, &ember::format::TensorView)>,
    whole: bool,
) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    let kv_dim = s.kv_heads * s.head_dim;
    let capacity = match s.window {
        w if w > 0 && !whole => ring_capacity(w, 290),
        _ => 700,
    };
    let layer = CacheLayer {
        capacity,
        window: s.window,
    };
    let mut cache = b.new_cache(kv_dim, &[layer, layer]).unwrap();
    let inv_freq = rope.map(|(layout, f)| (layout, b.upload(f).unwrap()));
    let mut outs = Vec::new();
    let mut pos = 0;
    // Single rows (decode) at positions 0, 1, 305, 306 and 597: one to five chunks of the context.
    for rows in [1, 1, 200, 3, 100, 1, 1, 290, 1] {
        for layer in 0..2 {
            let mut q = b.load_act(
                &rng.vec(rows * s.heads * s.head_dim),
                rows,
                s.heads * s.head_dim,
            );
            let mut k = b.load_act(&rng.vec(rows * kv_dim), rows, kv_dim);
            let v = b.load_act(&rng.vec(rows * kv_dim), rows, kv_dim);
            let o = match &inv_freq {
                Some((layout, f)) => {
                    let rope = Rope {
                        inv_freq: f,
                        layout: *layout,
                        pairs: rope.map_or(0, |(_, t)| t.cols()),
                    };
                    b.rope_attention(&mut q, &mut k, &v, rope, &mut cache, layer, pos, s)
                }
                None => b.attention(&q, &k, &v, &mut cache, layer, pos, s),
            };
            outs.push(b.read(&o).unwrap());
        }
        pos += rows;
    }
    outs
}

#[test]
fn attention_gqa_over_a_growing_cache() {
    parity_tol("attention", TOL_F16_KV, |cmp, gpu| {
        for s in [
            AttentionShape::plain(6, 2, 32),
            AttentionShape::plain(3, 3, 64),
            // A GQA group of ten: more query heads than one decode workgroup serves.
            AttentionShape::plain(20, 2, 128),
            // Sliding windows: shorter than a prompt, and spanning decode chunks.
            AttentionShape {
                window: 5,
                ..AttentionShape::plain(6, 2, 32)
            },
            AttentionShape {
                window: 150,
                ..AttentionShape::plain(20, 2, 128)
            },
            // A scale of the model's own and soft-capped scores (Gemma 2), with a window.
            AttentionShape {
                window: 7,
                scale: 0.6,
                softcap: 1.5,
                ..AttentionShape::plain(6, 2, 32)
            },
            AttentionShape {
                scale: 0.3,
                softcap: 2.0,
                ..AttentionShape::plain(20, 2, 128)
            },
            // Gemma's heads of 256 (the wide-head builds), and one of 160.
            AttentionShape {
                window: 150,
                softcap: 3.0,
                ..AttentionShape::plain(8, 4, 256)
            },
            AttentionShape::plain(5, 1, 160),
        ] {
            let seed = Rng::fresh("attention").0;
            let g = attention_run(&mut gpu(), seed, s, None, false);
            let c = attention_run(
                &mut CpuBackend::with_precision(1, Precision::F32).unwrap(),
                seed,
                s,
                None,
                false,
            );
            for (i, (a, b)) in g.iter().zip(&c).enumerate() {
                cmp(&format!("{s:?} step {i}"), a, b);
            }
        }
    });
}

/// A window-sized cache (dropping positions as the steps pass its capacity) gives what a cache
/// of the whole context gives, on the CPU (exactly) and on the GPU (rope and store fused, or
/// apart).
#[test]
fn window_sized_caches_match_whole_ones() {
    let s = AttentionShape {
        window: 37,
        softcap: 2.5,
        ..AttentionShape::plain(6, 2, 32)
    };
    let mut rng = Rng::fresh("window_cache");
    let freqs = random_tensor(&mut rng, GgmlType::F32, s.head_dim / 2, 1);
    let seed = rng.0;
    let cpu = || CpuBackend::with_precision(1, Precision::F32).unwrap();
    for rope in [None, Some((RopeLayout::Halves, &freqs))] {
        let whole = attention_run(&mut cpu(), seed, s, rope, true);
        assert_eq!(attention_run(&mut cpu(), seed, s, rope, false), whole);
    }
    parity_tol("window_cache", TOL_F16_KV, |cmp, gpu| {
        for rope in [None, Some((RopeLayout::Halves, &freqs))] {
            let g = attention_run(&mut gpu(), seed, s, rope, false);
            let c = attention_run(&mut cpu(), seed, s, rope, true);
            for (i, (a, b)) in g.iter().zip(&c).enumerate() {
                cmp(&format!("rope {} step {i}", rope.is_some()), a, b);
            }
        }
    });
}

/// RoPE of queries and keys with the cache store fused into one dispatch (both pair layouts,
/// grouped heads, f16 cache where the adapter has it) against the CPU's rope then attention.
#[test]
fn rope_attention_fused_store() {
    parity_tol("rope_attention", TOL_F16_KV, |cmp, gpu| {
        let s = AttentionShape::plain(6, 2, 32);
        let mut rng = Rng::fresh("rope_attention");
        // Every pair of a head rotated, and 12 of its 16 (partial rotary).
        let full = random_tensor(&mut rng, GgmlType::F32, s.head_dim / 2, 1);
        let partial = random_tensor(&mut rng, GgmlType::F32, 12, 1);
        for (layout, freqs) in [
            (RopeLayout::Interleaved, &full),
            (RopeLayout::Halves, &full),
            (RopeLayout::Interleaved, &partial),
            (RopeLayout::Halves, &partial),
        ] {
            let seed = rng.0;
            let g = attention_run(&mut gpu(), seed, s, Some((layout, freqs)), false);
            let c = attention_run(
                &mut CpuBackend::with_precision(1, Precision::F32).unwrap(),
                seed,
                s,
                Some((layout, freqs)),
                false,
            );
            for (i, (a, b)) in g.iter().zip(&c).enumerate() {
                cmp(&format!("{layout:?} {} pairs step {i}", freqs.cols()), a, b);
            }
        }
    });
}

/// The one-token mat-vecs on 8-bit activations (`dot4I8Packed`) for every integer format —
/// plain, grouped with the norm folded in, and gate/up — against the CPU's products on 8-bit
/// activations: the same rounding of the same 32-value blocks, so they agree to 1e-3 (the
/// rounding's own effect on accuracy is the CPU i8 path's, measured on real text in
/// tests/accuracy.rs; on random rows whose sums cancel it is no guide).
#[test]
fn int8_matvecs_every_integer_format() {
    for choice in gpu_choices() {
        let ctx = GpuContext::new(choice).unwrap();
        let options = GpuOptions {
            split_rows: true,
            int8_matvec: true,
            ..GpuOptions::fastest(&ctx)
        };
        let mut g = GpuBackend::with_context(ctx, options).unwrap();
        // GL has no integer dot product: the option is refused there.
        assert_eq!(g.tuning().int8, g.int8_available(), "{choice:?}");
        if !g.int8_available() {
            assert_eq!(choice, GpuChoice::Gl);
            continue;
        }
        let mut c = CpuBackend::with_precision(1, Precision::I8).unwrap();
        let mut rng = Rng::fresh("int8");
        // Both sides round the same activations to 8 bits, but compute them (the norm, the
        // block's scale) in a different float order: a value on a rounding boundary may go
        // either way. Two such flips per output (`flips`: what they can move it by) are allowed
        // besides the 1e-3.
        let check = |label: &str, gpu: &[f32], cpu: &[f32], flips: f32| {
            let diff = gpu
                .iter()
                .zip(cpu)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            if diff > flips {
                check(&format!("int8 {label} on {choice:?}"), gpu, cpu, TOL_INT8);
            }
        };
        // Rows of three blocks, and of 18 and 48 (the default model's widths).
        let widths = |t: GgmlType| [t.block_elems().max(32) * 3, 576, 1536];
        for (t, cols) in GgmlType::ALL
            .iter()
            .filter(|t| !t.is_float())
            .flat_map(|&t| widths(t).map(|c| (t, c)))
            .filter(|(t, c)| c % t.block_elems() == 0)
        {
            let w = random_tensor(&mut rng, t, cols, 37);
            let x = rng.vec(cols);
            check(
                &format!("{} {cols} matvec", t.name()),
                &matmul_case(&mut g, &w, None, &x, 1),
                &matmul_case(&mut c, &w, None, &x, 1),
                2.0 * rounding_step(&x, None) * max_abs(&[&w]),
            );
            let gain = random_tensor(&mut rng, GgmlType::F32, cols, 1);
            let ws = [37, 13, 13].map(|rows| random_tensor(&mut rng, t, cols, rows));
            let qkv = grouped_case(&mut c, &ws, None, Some(&gain), &x, 1);
            check(
                &format!("{} q/k/v with the norm", t.name()),
                &grouped_case(&mut g, &ws, None, Some(&gain), &x, 1),
                &qkv,
                2.0 * rounding_step(&x, Some(&gain)) * max_abs(&ws.iter().collect::<Vec<_>>()),
            );
            // Gate/up below are k and v here. Through SiLU(gate)·up a flip in the products
            // moves the output by up to 1.1·|up| (SiLU's slope is below 1.1) plus |SiLU(gate)|.
            let (gate, up) = qkv[ws[0].rows()..].split_at(ws[1].rows());
            let silu = gate.iter().map(|g| (g / (1.0 + (-g).exp())).abs());
            let reach =
                1.1 * up.iter().fold(0.0f32, |m, v| m.max(v.abs())) + silu.fold(0.0, f32::max);
            check(
                &format!("{} gate/up with the norm", t.name()),
                &glu_case(&mut g, &ws[1], &ws[2], Some(&gain), &x, 1, Activation::Silu),
                &glu_case(&mut c, &ws[1], &ws[2], Some(&gain), &x, 1, Activation::Silu),
                2.0 * rounding_step(&x, Some(&gain)) * max_abs(&[&ws[1], &ws[2]]) * reach,
            );
        }
    }
}

/// The 8-bit rounding step of activations `x` (after an RMS norm by `gain`, when given): the
/// largest magnitude over 127.
fn rounding_step(x: &[f32], gain: Option<&TensorView>) -> f32 {
    let scaled: Vec<f32> = match gain {
        Some(g) => {
            let rms = (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
            x.iter().zip(g.to_f32()).map(|(v, g)| v * g / rms).collect()
        }
        None => x.to_vec(),
    };
    scaled.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0
}

/// The largest weight magnitude of `ws`.
fn max_abs(ws: &[&TensorView]) -> f32 {
    ws.iter()
        .flat_map(|w| w.to_f32())
        .fold(0.0f32, |m, v| m.max(v.abs()))
}

/// The split-row mat-vecs with every lane count the adapter allows and every number of rows per
/// group of lanes (what `ember tune` chooses between): plain, grouped q/k/v with the norm folded
/// in, and gate/up, against the CPU. Row counts that are no multiple of the group's rows.
#[test]
fn matvecs_at_every_lane_count_and_group() {
    for choice in gpu_choices() {
        let ctx = GpuContext::new(choice).unwrap();
        let options = GpuOptions {
            split_rows: true,
            ..GpuOptions::fastest(&ctx)
        };
        let mut g = GpuBackend::with_context(ctx, options).unwrap();
        let mut c = CpuBackend::with_precision(1, Precision::F32).unwrap();
        let mut rng = Rng::fresh("lanes");
        let lanes = g.lane_choices();
        assert!(lanes.len() >= 2, "{choice:?}: {lanes:?}");
        let shapes = lanes
            .iter()
            .flat_map(|&l| GROUP_ROWS.map(|group| (l, group)));
        // Each group size with every format at one lane count; the rest with one format each,
        // in turn (each variant is a pipeline the software drivers compile cold in CI).
        let formats = [GgmlType::Q4_1, GgmlType::Q6K, GgmlType::Q8_0];
        for (i, (l, group)) in shapes.enumerate() {
            let tuning = Tuning {
                lanes: l,
                group_rows: group,
                ..g.tuning()
            };
            g.set_tuning(tuning, false);
            assert_eq!((g.tuning().lanes, g.tuning().group_rows), (l, group));
            let types = if l == lanes[0] {
                &formats[..]
            } else {
                std::slice::from_ref(&formats[i % formats.len()])
            };
            for &t in types {
                let cols = t.block_elems().max(32) * 3;
                let label = format!("{} x{l} by {group} on {choice:?}", t.name());
                let w = random_tensor(&mut rng, t, cols, 37);
                let x = rng.vec(cols);
                check(
                    &format!("matvec {label}"),
                    &matmul_case(&mut g, &w, None, &x, 1),
                    &matmul_case(&mut c, &w, None, &x, 1),
                    TOL,
                );
                let gain = random_tensor(&mut rng, GgmlType::F32, cols, 1);
                let ws = [37, 13, 13].map(|rows| random_tensor(&mut rng, t, cols, rows));
                check(
                    &format!("q/k/v {label}"),
                    &grouped_case(&mut g, &ws, None, Some(&gain), &x, 1),
                    &grouped_case(&mut c, &ws, None, Some(&gain), &x, 1),
                    TOL,
                );
                check(
                    &format!("gate/up {label}"),
                    &glu_case(&mut g, &ws[1], &ws[2], Some(&gain), &x, 1, Activation::Silu),
                    &glu_case(&mut c, &ws[1], &ws[2], Some(&gain), &x, 1, Activation::Silu),
                    TOL,
                );
            }
        }
    }
}

/// The prefill product in every tile shape `ember tune` chooses between, in f32 and (where the
/// adapter has shader-f16) f16, against the CPU: token and row counts that fill no tile evenly.
/// Each choice with one block format, in turn (the default tiles meet every format in
/// `matmul_every_type_and_shape`).
#[test]
fn prefill_tiles_every_shape() {
    for choice in gpu_choices() {
        let mut g = GpuBackend::new(choice).unwrap();
        let mut c = CpuBackend::with_precision(1, Precision::F32).unwrap();
        let mut rng = Rng::fresh("tiles");
        let types: &[bool] = if g.tile_f16_available() {
            &[false, true]
        } else {
            &[false]
        };
        let formats = [
            GgmlType::Q4_0,
            GgmlType::Q4K,
            GgmlType::Q8_0,
            GgmlType::F16,
            GgmlType::Q6K,
        ];
        let choices = TILE_CHOICES
            .iter()
            .flat_map(|&t| types.iter().map(move |&f| (t, f)));
        for (i, (tiles, f16)) in choices.enumerate() {
            g.set_tuning(
                Tuning {
                    tiles,
                    tile_f16: f16,
                    ..g.tuning()
                },
                false,
            );
            assert_eq!((g.tuning().tiles, g.tuning().tile_f16), (tiles, f16));
            let tol = if f16 { TOL_F16_TILES } else { TOL };
            let t = formats[i % formats.len()];
            let cols = t.block_elems().max(32) * 3;
            let w = random_tensor(&mut rng, t, cols, 77);
            for tokens in [9, 45, 70] {
                let x = rng.vec(cols * tokens);
                check(
                    &format!("{} {tiles:?} f16 {f16} x {tokens} on {choice:?}", t.name()),
                    &matmul_case(&mut g, &w, None, &x, tokens),
                    &matmul_case(&mut c, &w, None, &x, tokens),
                    tol,
                );
            }
        }
    }
}
