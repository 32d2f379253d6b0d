//! Window-sized KV caches: a model whose sliding-window layers keep only their window (and the
//! rows of a pass) gives the logits a model keeping the whole context gives — through a prompt
//! longer than the cache (split into passes), chunks and decode steps that make the cache drop
//! old positions, and several sequences in one batch — on the CPU and every GPU; and it refuses
//! to continue from a position whose window it has dropped.

mod common;

use common::*;
use ember::ModelFile;
use ember::backend::Backend;
use ember::backend::cpu::{CpuBackend, Precision};
use ember::backend::gpu::{GpuBackend, GpuContext, GpuOptions};
use ember::model::{LanguageModel, Model, RING_CHUNK, SeqChunk};

/// Positions of the caches: room for a prompt longer than [`RING_CHUNK`] and then some.
const CTX: usize = 1400;

fn compare<B: Backend>(make: &dyn Fn() -> B, file: &ModelFile, tol: f32, what: &str) {
    let vocab = file.config.vocab_size as u64;
    let mut rng = Rng::fresh("window_cache");
    let ids: Vec<u32> = (0..1300)
        .map(|_| (((rng.f32() + 1.0) * 0.5 * vocab as f32) as u64).min(vocab - 1) as u32)
        .collect();
    let mut ring = Model::with_caches(file, make(), CTX, 2, true).unwrap();
    let mut whole = Model::with_caches(file, make(), CTX, 2, false).unwrap();
    let check = |a: &[f32], b: &[f32], step: &str| {
        let e = rel_err(a, b);
        assert!(e <= tol, "{what}: {step} off by {e:e}");
    };
    // A prompt longer than a pass of a window-sized model, every row's logits.
    let n = RING_CHUNK + 188;
    check(
        &ring.forward(&ids[..n], 0, true).unwrap(),
        &whole.forward(&ids[..n], 0, true).unwrap(),
        "long prompt",
    );
    // Chunks and single tokens that keep dropping old positions.
    let mut pos = n;
    for (i, len) in [100, 1, 1, 230, 1, 64, 1].into_iter().enumerate() {
        let chunk = &ids[pos..pos + len];
        check(
            &ring.forward(chunk, pos, false).unwrap(),
            &whole.forward(chunk, pos, false).unwrap(),
            &format!("step {i} at {pos}"),
        );
        pos += len;
    }
    // The other slot in a batch with a long chunk of this one.
    let chunks = [
        SeqChunk {
            slot: 1,
            ids: &ids[..600],
            pos0: 0,
        },
        SeqChunk {
            slot: 0,
            ids: &ids[pos..pos + 3],
            pos0: pos,
        },
    ];
    let (a, b) = (
        ring.forward_batch(&chunks).unwrap(),
        whole.forward_batch(&chunks).unwrap(),
    );
    check(&a[0], &b[0], "batched long chunk");
    check(&a[1], &b[1], "batched step");
    // A dropped window cannot be continued from; the whole cache can.
    assert_eq!(ring.resumable(0, 100), 0);
    assert_eq!(ring.resumable(0, pos), pos);
    assert_eq!(whole.resumable(0, 100), 100);
    let err = ring.forward(&ids[..1], 100, false).unwrap_err().to_string();
    assert!(err.contains("cannot continue"), "{err}");
    // Starting again from 0 works.
    check(
        &ring.forward(&ids[..40], 0, false).unwrap(),
        &whole.forward(&ids[..40], 0, false).unwrap(),
        "restart",
    );
}

/// Gemma 2 (a window of 8 on every other layer) and Gemma 3 (five window layers in six).
fn files() -> Vec<ModelFile> {
    ["gemma2", "gemma3"]
        .iter()
        .map(|a| {
            ModelFile::open(data(&format!("archs/tiny-{a}/tiny-{a}-F16.gguf")).as_ref()).unwrap()
        })
        .collect()
}

#[test]
fn window_sized_caches_match_whole_ones_on_cpu() {
    for file in files() {
        let what = format!("cpu {}", file.config.arch.name());
        compare(
            &|| CpuBackend::with_precision(1, Precision::F32).unwrap(),
            &file,
            1e-5,
            &what,
        );
    }
}

#[test]
fn window_sized_caches_match_whole_ones_on_gpu() {
    for file in files() {
        for choice in gpu_choices() {
            let make = || {
                let ctx = GpuContext::new(choice).unwrap();
                let options = GpuOptions::accurate(&ctx);
                GpuBackend::with_context(ctx, options).unwrap()
            };
            let what = format!("{choice:?} {}", file.config.arch.name());
            compare(&make, &file, 1e-4, &what);
        }
    }
}
