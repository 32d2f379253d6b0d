//! Kernel micro-benchmarks: mat-vec (decode) per block format as effective GB/s against the bytes
//! it must read, the prefill matrix product per format as GFLOP/s, and attention at several
//! context lengths — on the CPU at each precision and on the default GPU adapter.
//! `cargo bench --bench kernels` (EMBER_BENCH_QUICK=1 for a short run, EMBER_BENCH_GPU=0 to
//! skip the GPU).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::{Rng, random_tensor};
use ember::backend::cpu::{CpuBackend, Precision};
use ember::backend::gpu::{GpuBackend, GpuChoice, GpuContext, GpuOptions};
use ember::backend::{AttentionShape, Backend};
use ember::quant::GgmlType;

/// Median seconds of `reps` runs of `f` after one warm-up.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// The block formats measured.
const FORMATS: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Q8_0,
    GgmlType::Q6K,
    GgmlType::Q5K,
    GgmlType::Q5_1,
    GgmlType::Q5_0,
    GgmlType::Q4K,
    GgmlType::Q4_1,
    GgmlType::Q4_0,
];

fn matvec<B: Backend>(name: &str, b: &mut B, rng: &mut Rng, rows: usize, cols: usize, reps: usize) {
    for &t in FORMATS {
        let w = random_tensor(rng, t, cols, rows);
        let bytes = w.bytes().len() + cols * 4 + rows * 4;
        let wt = b.upload(&w).expect("upload");
        let x = b.load_act(&rng.vec(cols), 1, cols);
        let secs = time(reps, || {
            let y = b.matmul(&x, &wt, None);
            b.read(&y).expect("read");
        });
        println!(
            "{name:<28} matvec {:<5} {rows}x{cols}: {:8.3} ms  {:7.2} GB/s",
            t.name(),
            secs * 1e3,
            bytes as f64 / secs / 1e9
        );
    }
}

/// The prefill product: `tokens` rows of activations against each format, as GFLOP/s (two per
/// multiply-add).
fn prefill<B: Backend>(
    name: &str,
    b: &mut B,
    rng: &mut Rng,
    rows: usize,
    cols: usize,
    reps: usize,
) {
    let tokens = 128;
    for &t in FORMATS {
        let w = random_tensor(rng, t, cols, rows);
        let wt = b.upload(&w).expect("upload");
        let x = b.load_act(&rng.vec(tokens * cols), tokens, cols);
        let secs = time(reps, || {
            let y = b.matmul(&x, &wt, None);
            b.read(&y).expect("read");
        });
        println!(
            "{name:<28} prefill {:<5} {tokens}x{cols} * {rows}x{cols}: {:8.3} ms  {:7.2} GFLOP/s",
            t.name(),
            secs * 1e3,
            2.0 * (tokens * rows * cols) as f64 / secs / 1e9
        );
    }
}

fn attention<B: Backend>(name: &str, b: &mut B, rng: &mut Rng, contexts: &[usize], reps: usize) {
    let s = AttentionShape::plain(9, 3, 64);
    let kv_dim = s.kv_heads * s.head_dim;
    for &ctx in contexts {
        let layer = ember::backend::CacheLayer {
            capacity: ctx + 1,
            window: 0,
        };
        let mut cache = b.new_cache(kv_dim, &[layer]).expect("cache");
        let k = b.load_act(&rng.vec(ctx * kv_dim), ctx, kv_dim);
        let v = b.load_act(&rng.vec(ctx * kv_dim), ctx, kv_dim);
        let q = b.load_act(
            &rng.vec(ctx * s.heads * s.head_dim),
            ctx,
            s.heads * s.head_dim,
        );
        let out = b.attention(&q, &k, &v, &mut cache, 0, 0, s);
        b.read(&out).expect("fill the cache");
        let q1 = b.load_act(&rng.vec(s.heads * s.head_dim), 1, s.heads * s.head_dim);
        let k1 = b.load_act(&rng.vec(kv_dim), 1, kv_dim);
        let v1 = b.load_act(&rng.vec(kv_dim), 1, kv_dim);
        // The keys and values of every position, once (what the split kernel reads; the
        // per-head kernel reads them once per query head, mostly from cache).
        let bytes = kv_dim * (ctx + 1) * 2 * 4;
        let secs = time(reps, || {
            let o = b.attention(&q1, &k1, &v1, &mut cache, 0, ctx, s);
            b.read(&o).expect("read");
        });
        println!(
            "{name:<28} attention ctx {ctx:>5}: {:8.3} ms  {:7.2} GB/s",
            secs * 1e3,
            bytes as f64 / secs / 1e9
        );
    }
}

fn main() {
    let quick = std::env::var("EMBER_BENCH_QUICK").is_ok();
    let (rows, cols, reps) = if quick {
        (512, 512, 3)
    } else {
        (2048, 2048, 10)
    };
    let contexts: &[usize] = if quick {
        &[128, 512]
    } else {
        &[128, 512, 2048]
    };
    let mut rng = Rng(0xbe7c4);
    for precision in [Precision::I16, Precision::I8, Precision::F32] {
        let mut cpu = CpuBackend::with_precision(0, precision).expect("cpu");
        let label = format!(
            "cpu {} {} ({} threads)",
            precision.name(),
            cpu.level().name(),
            cpu.threads()
        );
        matvec(&label, &mut cpu, &mut rng, rows, cols, reps);
        prefill(&label, &mut cpu, &mut rng, rows, cols, reps);
    }
    let mut cpu = CpuBackend::new(0).expect("cpu");
    let label = format!("cpu ({} threads)", cpu.threads());
    attention(&label, &mut cpu, &mut rng, contexts, reps);
    if std::env::var("EMBER_BENCH_GPU").is_ok_and(|v| v == "0") {
        return;
    }
    match GpuContext::new(GpuChoice::Any) {
        Ok(ctx) => {
            let label = format!("{} ({})", ctx.report.name, ctx.report.backend);
            let fastest = GpuOptions::fastest(&ctx);
            drop(ctx);
            // Both decode attention kernels: the adapter's default first.
            for split in [fastest.split_attention, !fastest.split_attention] {
                let ctx = GpuContext::new(GpuChoice::Any).expect("gpu context");
                let options = GpuOptions {
                    split_attention: split,
                    ..fastest
                };
                let mut gpu = GpuBackend::with_context(ctx, options).expect("gpu backend");
                let kernel = if split { "split" } else { "per head" };
                attention(
                    &format!("{label}, {kernel}"),
                    &mut gpu,
                    &mut rng,
                    contexts,
                    reps,
                );
            }
            // Both mat-vec layouts: the adapter's default first.
            for split_rows in [fastest.split_rows, !fastest.split_rows] {
                let ctx = GpuContext::new(GpuChoice::Any).expect("gpu context");
                let options = GpuOptions {
                    split_rows,
                    ..fastest
                };
                let mut gpu = GpuBackend::with_context(ctx, options).expect("gpu backend");
                let layout = if split_rows {
                    "split rows"
                } else {
                    "whole rows"
                };
                matvec(
                    &format!("{label}, {layout}"),
                    &mut gpu,
                    &mut rng,
                    rows,
                    cols,
                    reps,
                );
            }
        }
        Err(e) => println!("no GPU adapter: {e}"),
    }
}
