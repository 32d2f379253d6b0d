//! Several sequences in one forward pass (what `ember serve` runs): each chunk's logits equal
//! those of the same tokens run alone, whether the chunks are prompts or single decode tokens,
//! at different positions, in any slot order — on the CPU and every GPU.

mod common;

use common::*;
use ember::ModelFile;
use ember::backend::Backend;
use ember::backend::cpu::CpuBackend;
use ember::backend::gpu::{GpuBackend, GpuContext, GpuOptions};
use ember::model::{LanguageModel, Model, SeqChunk};

/// Three sequences: their prompts, then one more token each.
const PROMPTS: [&[u32]; 3] = [
    &[6403, 1980, 253, 655],
    &[28, 260],
    &[2240, 282, 23324, 27108, 436],
];
const NEXT: [u32; 3] = [253, 314, 1980];

/// Runs the sequences alone (one model each) and together (one model, a slot each, the slots
/// in reverse order), and compares every chunk's logits.
fn batched_matches_alone<B: Backend>(make: &dyn Fn() -> B, file: &ModelFile, tol: f32, what: &str) {
    let mut alone = Vec::new();
    for (p, &next) in PROMPTS.iter().zip(&NEXT) {
        let mut m = Model::new(file, make(), 32).unwrap();
        let prompt = m.forward(p, 0, false).unwrap();
        let step = m.forward(&[next], p.len(), false).unwrap();
        alone.push((prompt, step));
    }
    let mut m = Model::with_slots(file, make(), 32, 3).unwrap();
    assert_eq!(m.slots(), 3);
    let slot = |i: usize| 2 - i;
    // Prompts of different lengths together.
    let chunks: Vec<SeqChunk> = PROMPTS
        .iter()
        .enumerate()
        .map(|(i, p)| SeqChunk {
            slot: slot(i),
            ids: p,
            pos0: 0,
        })
        .collect();
    let prompts = m.forward_batch(&chunks).unwrap();
    // Then one decode token each, at each sequence's own position.
    let chunks: Vec<SeqChunk> = (0..3)
        .map(|i| SeqChunk {
            slot: slot(i),
            ids: &NEXT[i..i + 1],
            pos0: PROMPTS[i].len(),
        })
        .collect();
    let steps = m.forward_batch(&chunks).unwrap();
    for i in 0..3 {
        let e = rel_err(&prompts[i], &alone[i].0);
        assert!(e <= tol, "{what}: prompt {i} off by {e:e}");
        let e = rel_err(&steps[i], &alone[i].1);
        assert!(e <= tol, "{what}: step {i} off by {e:e}");
    }
    // A prompt chunk beside a decode token.
    let mixed = [
        SeqChunk {
            slot: 0,
            ids: PROMPTS[0],
            pos0: 0,
        },
        SeqChunk {
            slot: 1,
            ids: &NEXT[1..2],
            pos0: PROMPTS[1].len(),
        },
    ];
    let got = m.forward_batch(&mixed).unwrap();
    assert!(rel_err(&got[0], &alone[0].0) <= tol, "{what}: mixed prompt");
    assert!(rel_err(&got[1], &alone[1].1) <= tol, "{what}: mixed step");
}

fn default_file() -> ModelFile {
    ModelFile::open(default_model().as_ref()).unwrap()
}

#[test]
fn batched_sequences_match_alone_on_cpu() {
    let file = default_file();
    // Rows quantized for the integer kernels the same way alone or together; the products may
    // take a different kernel for several rows (sums in another order).
    batched_matches_alone(&|| CpuBackend::new(2).unwrap(), &file, 1e-4, "cpu");
}

#[test]
fn batched_sequences_match_alone_on_gpu() {
    let file = default_file();
    for choice in gpu_choices() {
        let make = || {
            let ctx = GpuContext::new(choice).unwrap();
            let options = GpuOptions::accurate(&ctx);
            GpuBackend::with_context(ctx, options).unwrap()
        };
        batched_matches_alone(&make, &file, 1e-4, &format!("{choice:?}"));
    }
}

#[test]
fn bad_batches_are_refused() {
    let file = default_file();
    let mut m = Model::with_slots(&file, CpuBackend::new(1).unwrap(), 8, 2).unwrap();
    let chunk = |slot, ids: &'static [u32], pos0| SeqChunk { slot, ids, pos0 };
    for (bad, why) in [
        (vec![chunk(2, &[1], 0)], "does not exist"),
        (vec![chunk(0, &[1], 0), chunk(0, &[2], 1)], "twice"),
        (vec![chunk(1, &[1, 2], 7)], "exceed the context"),
        (vec![chunk(0, &[], 0)], "no tokens"),
        (vec![chunk(0, &[u32::MAX], 0)], "outside the vocabulary"),
    ] {
        let err = m.forward_batch(&bad).unwrap_err().to_string();
        assert!(err.contains(why), "{err}");
    }
    assert!(Model::with_slots(&file, CpuBackend::new(1).unwrap(), 8, 0).is_err());
}
