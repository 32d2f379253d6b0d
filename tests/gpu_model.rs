//! The GPU backend as the model drives it: a decode step is one submission that reuses every
//! pipeline and bind group; limits and failures become errors, not panics.

mod common;

use common::*;
use ember::ModelFile;
use ember::backend::Backend;
use ember::backend::cpu::{CpuBackend, Precision};
use ember::backend::gpu::{GpuBackend, GpuContext, GpuOptions, SUBMIT_EVERY};
use ember::model::{LanguageModel, Model};
use ember::quant::GgmlType;

#[test]
fn decode_steps_submit_once_and_reuse_bind_groups() {
    for choice in gpu_choices() {
        let file =
            ModelFile::open(data("tiny-llama-q4_k_m/tiny-llama-2l-Q4_K_M.gguf").as_ref()).unwrap();
        let mut model = Model::new(&file, GpuBackend::new(choice).unwrap(), 64).unwrap();
        model.forward(&[6403, 1980, 253], 0, false).unwrap();
        model.forward(&[655], 3, false).unwrap();
        model.forward(&[28], 4, false).unwrap();
        // A third warm-up step: the activation pool settles on its buffers within three.
        model.forward(&[260], 5, false).unwrap();
        let before = model.backend().stats();
        for pos in 6..10 {
            model.forward(&[260], pos, false).unwrap();
        }
        let after = model.backend().stats();
        assert_eq!(
            after.0 - before.0,
            4,
            "{choice:?}: one submission per decode step"
        );
        assert_eq!(
            after.1, before.1,
            "{choice:?}: decode steps created bind groups"
        );
        assert_eq!(
            after.2, before.2,
            "{choice:?}: decode steps created pipelines"
        );
    }
}

#[test]
fn limits_become_errors() {
    for choice in gpu_choices() {
        let mut rng = Rng::fresh("limits");
        // One Q4_K row is 144 bytes: a 100-byte binding limit cannot hold it.
        let ctx = GpuContext::new(choice).unwrap();
        let options = GpuOptions {
            max_binding: Some(100),
            ..GpuOptions::fastest(&ctx)
        };
        let mut g = GpuBackend::with_context(ctx, options).unwrap();
        let t = random_tensor(&mut rng, GgmlType::Q4K, 256, 3);
        let e = g.upload(&t).err().expect("refused");
        assert!(e.to_string().contains("binding limit"), "{e}");
        // A KV cache whose layer buffer would exceed the binding limit.
        let whole = ember::backend::CacheLayer {
            capacity: 1000,
            window: 0,
        };
        let e = g.new_cache(64, &[whole, whole]).err().expect("refused");
        assert!(e.to_string().contains("-c "), "{e}");
        // Row lengths the kernels cannot handle.
        let mut g = GpuBackend::new(choice).unwrap();
        let odd = random_tensor(&mut rng, GgmlType::F32, 33, 4);
        assert!(
            g.upload(&odd)
                .err()
                .expect("refused")
                .to_string()
                .contains("multiple of 32")
        );
    }
}

/// Under every device profile the context reports the profile's limits and features, and the
/// default model's logits still match the CPU's (every kernel fits the smallest limits).
#[test]
fn every_device_profile_runs_the_model() {
    use ember::backend::cpu::{CpuBackend, Precision};
    use ember::backend::gpu::profile::PROFILES;
    let file = ModelFile::open(default_model().as_ref()).unwrap();
    let ids = [1, 504, 3458, 314, 253, 1345];
    let mut cpu = Model::new(
        &file,
        CpuBackend::with_precision(0, Precision::F32).unwrap(),
        16,
    )
    .unwrap();
    let want = cpu.forward(&ids, 0, false).unwrap();
    for choice in gpu_choices() {
        for p in PROFILES {
            let ctx = pollster::block_on(GpuContext::open(choice, Some(p))).unwrap();
            let r = &ctx.report;
            assert_eq!(r.profile.as_deref(), Some(p.name));
            assert!(r.max_compute_workgroup_storage_size <= p.max_workgroup_storage);
            assert!(r.max_compute_invocations_per_workgroup <= p.max_invocations);
            assert!(p.shader_f16 || !r.shader_f16, "{}", p.name);
            assert!(p.subgroups || !r.subgroups, "{}", p.name);
            let options = GpuOptions::fastest(&ctx);
            let g = GpuBackend::with_context(ctx, options).unwrap();
            let mut gpu = Model::new(&file, g, 16).unwrap();
            let got = gpu.forward(&ids, 0, false).unwrap();
            let err = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                err < 0.05,
                "{choice:?} under {}: max logit error {err}",
                p.name
            );
        }
    }
}

/// Dispatches per layer of a decode step of the default model (fused: the norms into the
/// products after them, RoPE with the cache store, the residual adds into the o and down
/// products, gate and up with SiLU·mul, q, k and v in one product): six. Fused and submitted in
/// pieces, the step's logits are still the CPU's.
#[test]
fn decode_dispatches_per_layer() {
    let file = ModelFile::open(default_model().as_ref()).unwrap();
    let layers = file.config.layers as u64;
    let mut cpu = Model::new(
        &file,
        CpuBackend::with_precision(0, Precision::F32).unwrap(),
        32,
    )
    .unwrap();
    cpu.forward(&[1, 504, 3458], 0, false).unwrap();
    let want = cpu.forward(&[314], 3, false).unwrap();
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for choice in gpu_choices() {
        // Rows and attention split over threads, as on GPUs (software adapters default to a
        // workgroup per head, and to whole rows without subgroups).
        let ctx = GpuContext::new(choice).unwrap();
        let options = GpuOptions {
            split_rows: true,
            split_attention: true,
            ..GpuOptions::accurate(&ctx)
        };
        let gpu = GpuBackend::with_context(ctx, options).unwrap();
        let mut model = Model::new(&file, gpu, 32).unwrap();
        model.forward(&[1, 504, 3458], 0, false).unwrap();
        let (before, submits) = (model.backend().dispatches(), model.backend().stats().0);
        let got = model.forward(&[314], 3, false).unwrap();
        let step = model.backend().dispatches() - before;
        let err = got
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
            / scale;
        assert!(
            err < 2e-3,
            "{choice:?}: logits differ from the CPU's by {err:e}"
        );
        // Submitted in pieces as it is recorded, the rest with the read-back.
        assert_eq!(
            model.backend().stats().0 - submits,
            step / SUBMIT_EVERY + 1,
            "{choice:?}: submissions of a {step}-dispatch step"
        );
        // Outside the layers: the embedding, the final norm and the output head.
        let per_layer = (step - 3) as f64 / layers as f64;
        eprintln!(
            "{choice:?}: {step} dispatches per decode step, {per_layer} per layer; logits off by {err:e}"
        );
        assert_eq!((step - 3) % layers, 0, "{step} dispatches");
        assert!(per_layer <= 6.0, "{per_layer} dispatches per layer");
    }
}
