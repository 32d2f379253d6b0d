//! `ember quantize`: every type from the default model loads, writes sensible text and has a
//! sane perplexity (q8_0 within 1% of the source, lower-bit types worse in the expected order);
//! Hugging Face folders convert end to end; bad requests leave no file behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use ember::ModelFile;
use ember::backend::cpu::CpuBackend;
use ember::bench::{BenchConfig, measure};
use ember::eval::perplexity;
use ember::model::{LanguageModel, Model};
use ember::quantize::{Preset, QuantizeOptions, quantize};
use ember::sample::SamplerConfig;
use ember::session::{GenerateOptions, Session};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "ember-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn convert(input: &Path, out: &Path, ty: &str) -> ModelFile {
    let src = ModelFile::open(input).unwrap();
    let opts = QuantizeOptions {
        preset: Preset::parse(ty).unwrap(),
        token_embd_type: None,
        output_type: None,
        tensor_types: Vec::new(),
        imatrix: None,
    };
    quantize(&src, out, &opts, &mut |_, _| {}).unwrap();
    ModelFile::open(out).expect("the written file loads")
}

fn ppl(file: &ModelFile, tokens: &[u32]) -> f64 {
    let mut model = Model::new(file, CpuBackend::new(0).unwrap(), 256).unwrap();
    perplexity(&mut model, tokens, 128, &mut |_, _| {})
        .unwrap()
        .ppl
}

fn greedy_text(file: &ModelFile, prompt: &str) -> String {
    let mut model = Model::new(file, CpuBackend::new(0).unwrap(), 64).unwrap();
    let mut session = Session::new(&mut model, &file.tokenizer);
    let ids = file.tokenizer.encode(prompt, true).unwrap();
    let opts = GenerateOptions {
        max_tokens: 8,
        sampler: SamplerConfig::greedy(),
        stop: vec![],
    };
    session.generate(&ids, &opts, &mut |_| true).unwrap().text
}

#[test]
fn every_type_from_the_default_model() {
    let dir = TempDir::new("quant");
    let source = ModelFile::open(default_model().as_ref()).unwrap();
    let text = json("reference/prompts-public.json")["ppl_text"]
        .as_str()
        .unwrap()
        .to_string();
    let tokens = source.tokenizer.encode(&text, false).unwrap();
    let base = ppl(&source, &tokens);
    let mut results = std::collections::HashMap::new();
    for ty in [
        "f16", "bf16", "q8_0", "q6_k", "q5_k", "q5_k_m", "q5_1", "q5_0", "q4_k_m", "q4_k", "q4_1",
        "q4_0",
    ] {
        let out = dir.0.join(format!("{ty}.gguf"));
        let file = convert(default_model().as_ref(), &out, ty);
        let p = ppl(&file, &tokens);
        let said = greedy_text(&file, "The capital of France is");
        eprintln!("{ty}: perplexity {p:.4} (source {base:.4}), {said:?}");
        assert!(
            said.chars().filter(|c| c.is_alphabetic()).count() >= 5,
            "{ty} wrote {said:?}"
        );
        assert!(p < base * 1.5, "{ty}: perplexity {p} vs {base}");
        // `ember bench` measures every type written.
        let recs = measure(
            &out,
            None,
            &BenchConfig {
                n_prompt: 8,
                n_gen: 2,
                reps: 1,
                precision: Default::default(),
            },
            2,
            false,
        )
        .unwrap();
        assert!(
            recs.len() == 2 && recs.iter().all(|r| r.avg_ts > 0.0),
            "{ty}: bench"
        );
        results.insert(ty, p);
    }
    let r = |t: &str| results[t];
    assert!(
        (r("q8_0") / base - 1.0).abs() < 0.01,
        "q8_0 {} vs source {base}",
        r("q8_0")
    );
    assert!((r("f16") / base - 1.0).abs() < 0.001);
    // Fewer bits, more error: 8 and 6 bits stay near the source, 5 bits lose more, 4 bits most.
    assert!(r("q8_0") <= r("q6_k") * 1.005 && r("q6_k") < r("q5_0") && r("q6_k") < r("q5_1"));
    assert!(r("q4_0") > r("q5_0") && r("q4_0") > r("q5_1") && r("q4_0") > r("q4_k_m"));
    assert!(
        greedy_text(
            &convert(default_model().as_ref(), &dir.0.join("again.gguf"), "q8_0"),
            "The capital of France is"
        )
        .contains("Paris")
    );
}

/// Writes a tiny Hugging Face Llama folder with random f32 weights (and the test tokenizer).
fn tiny_hf_folder(dir: &Path) {
    let src = data("hf-tiny/tiny-hf-llama");
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(format!("{src}/{f}"), dir.join(f)).unwrap();
    }
    let mut rng = Rng(0x5eed);
    let (h, ffn, vocab, kv) = (64usize, 192usize, 49152usize, 32usize);
    let mut tensors: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![vocab, h]),
        ("model.norm.weight".into(), vec![h]),
    ];
    for i in 0..2 {
        let p = |s: &str| format!("model.layers.{i}.{s}");
        tensors.extend([
            (p("input_layernorm.weight"), vec![h]),
            (p("post_attention_layernorm.weight"), vec![h]),
            (p("self_attn.q_proj.weight"), vec![h, h]),
            (p("self_attn.k_proj.weight"), vec![kv, h]),
            (p("self_attn.v_proj.weight"), vec![kv, h]),
            (p("self_attn.o_proj.weight"), vec![h, h]),
            (p("mlp.gate_proj.weight"), vec![ffn, h]),
            (p("mlp.up_proj.weight"), vec![ffn, h]),
            (p("mlp.down_proj.weight"), vec![h, ffn]),
        ]);
    }
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = if shape.len() == 1 {
                rng.vec(n).iter().map(|v| 1.0 + 0.1 * v).collect()
            } else {
                rng.vec(n).iter().map(|v| v * 0.3).collect()
            };
            (
                name,
                shape,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}

#[test]
fn hugging_face_folder_converts_end_to_end() {
    let dir = TempDir::new("hf");
    tiny_hf_folder(&dir.0);
    let hf = ModelFile::open(&dir.0).unwrap();
    let prompt = hf
        .tokenizer
        .encode("Once upon a time there was", true)
        .unwrap();
    let logits_of = |f: &ModelFile| {
        Model::new(f, CpuBackend::new(0).unwrap(), 64)
            .unwrap()
            .forward(&prompt, 0, true)
            .unwrap()
    };
    let want = logits_of(&hf);
    for (ty, tol) in [("f16", 2e-2f32), ("q8_0", 0.1)] {
        let out = dir.0.join(format!("tiny-{ty}.gguf"));
        let g = convert(&dir.0, &out, ty);
        assert_eq!(
            g.config.rope_layout,
            ember::format::RopeLayout::Interleaved,
            "written as llama.cpp writes llama"
        );
        assert_eq!(
            g.tokenizer
                .encode("Once upon a time there was", true)
                .unwrap(),
            prompt
        );
        assert!(g.tokenizer.chat_template.is_some());
        let got = logits_of(&g);
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(&want)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= tol * scale,
            "{ty}: max logit error {err} (scale {scale})"
        );
    }
}

fn ember(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bad_requests_fail_and_leave_no_file() {
    let dir = TempDir::new("qbad");
    let out = dir.0.join("out.gguf");
    let out_s = out.to_str().unwrap();
    let model = default_model();
    let tiny = data("iquants/tiny-llama-F16.gguf");
    let corrupt = dir.0.join("corrupt.gguf");
    std::fs::write(&corrupt, &std::fs::read(&model).unwrap()[..5000]).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["quantize", &model, out_s, "--type", "q9_9"],
            "unknown quantization type",
        ),
        // As llama-quantize: the lowest-bit lattice types only with an importance matrix.
        (
            vec!["quantize", &model, out_s, "--type", "iq1_s"],
            "needs an importance matrix",
        ),
        (
            vec!["quantize", &model, out_s, "--type", "iq2_xxs"],
            "needs an importance matrix",
        ),
        (
            vec!["quantize", &model, out_s, "--type", "iq2_m"],
            "needs an importance matrix",
        ),
        (
            vec![
                "quantize",
                corrupt.to_str().unwrap(),
                out_s,
                "--type",
                "q8_0",
            ],
            "invalid model file",
        ),
        (
            vec![
                "quantize",
                &model,
                "/proc/no-such-dir/out.gguf",
                "--type",
                "q8_0",
            ],
            "no-such-dir",
        ),
        (
            vec![
                "quantize",
                &model,
                out_s,
                "--type",
                "q8_0",
                "--output-type",
                "q4_k_m",
            ],
            "not a tensor type",
        ),
        // The output head is exempt from the mixtures' importance rule, but a type that cannot
        // be written without importances still needs them.
        (
            vec![
                "quantize",
                &tiny,
                out_s,
                "--type",
                "q4_k_m",
                "--output-type",
                "iq2_xxs",
            ],
            "needs an importance matrix",
        ),
    ];
    for (args, needle) in cases {
        let o = ember(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(needle),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"));
        assert!(!out.exists(), "{args:?} left a file");
    }
    // Nothing else (no temporary file) is left in the folder either.
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("corrupt.gguf")]);
    // And a successful run writes exactly the output.
    let o = ember(&["quantize", &model, out_s, "--type", "q8_0"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(ModelFile::open(&out).is_ok());
}

/// Folders of the architectures beyond Llama — Qwen3 (q/k head norms, head size 32 at width
/// 64), Gemma 2 and 3 (norms stored as w - 1, windows, soft caps, local RoPE; a SentencePiece
/// tokenizer.json), Phi-3 (fused q/k/v and gate/up, partial rotary, longrope factors) —
/// quantized to Q8_0 by Ember hold the same config, tensors, types and bytes as llama.cpp's
/// convert + llama-quantize made of them (whose outputs tests/reference.rs checks), and a
/// tokenizer that encodes the reference prompts alike.
#[test]
fn folders_quantize_as_llama_cpp_does() {
    let dir = TempDir::new("archs");
    for arch in ["qwen3", "llama3", "mistral", "gemma2", "gemma3", "phi3"] {
        let out = dir.0.join(format!("tiny-{arch}-q8_0.gguf"));
        let ours = convert(
            data(&format!("archs/tiny-{arch}/hf")).as_ref(),
            &out,
            "q8_0",
        );
        let theirs =
            ModelFile::open(data(&format!("archs/tiny-{arch}/tiny-{arch}-Q8_0.gguf")).as_ref())
                .unwrap();
        assert_eq!(ours.config, theirs.config, "{arch}");
        let (a, b) = (ours.weights.all(), theirs.weights.all());
        assert_eq!(a.len(), b.len(), "{arch}");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!((&x.name, x.dtype, &x.shape), (&y.name, y.dtype, &y.shape));
            if x.name == "rope_freqs.weight" {
                // Llama 3's divisors: computed in f64 here, in f32 torch by the converter.
                for (p, q) in x.to_f32().iter().zip(y.to_f32()) {
                    assert!((p - q).abs() <= 1e-6 * q, "{arch}: rope_freqs {p} vs {q}");
                }
                continue;
            }
            assert!(x.bytes() == y.bytes(), "{arch}: {} differs", x.name);
        }
        let reference = json(&format!("archs/tiny-{arch}/reference-Q8_0.json"));
        for p in reference["prompts"].as_array().unwrap() {
            let prompt = ours
                .tokenizer
                .encode(p["text"].as_str().unwrap(), true)
                .unwrap();
            let prompt = match ours.tokenizer.bos {
                Some(b) if ids(&p["prompt_ids"]).first() != Some(&b) => {
                    prompt.strip_prefix(&[b][..]).unwrap_or(&prompt).to_vec()
                }
                _ => prompt,
            };
            assert_eq!(prompt, ids(&p["prompt_ids"]), "{arch}");
        }
    }
}

/// Re-quantizing the tiny K-quant Llama to llama.cpp's mixtures, with and without an importance
/// matrix (tests/data/requant, made by its make.py): every tensor gets the type and the very
/// bytes llama-quantize gave it — the type rules, the quantizers, the importance weighting and
/// the copy of tensors already in their type.
#[test]
fn requantized_mixtures_match_llama_quantize() {
    use sha2::{Digest, Sha256};
    let src =
        ModelFile::open(data("tiny-llama-q4_k_m/tiny-llama-2l-Q4_K_M.gguf").as_ref()).unwrap();
    let imatrix = ember::imatrix::file::read(data("requant/imatrix.gguf").as_ref()).unwrap();
    let dir = TempDir::new("requant");
    let expected = json("requant/expected.json");
    for case in expected["cases"].as_array().unwrap() {
        let (ty, with) = (
            case["type"].as_str().unwrap(),
            case["imatrix"].as_bool().unwrap(),
        );
        let out = dir.0.join(format!("{ty}-{with}.gguf"));
        let opts = QuantizeOptions {
            preset: Preset::parse(ty).unwrap(),
            token_embd_type: None,
            output_type: None,
            tensor_types: Vec::new(),
            imatrix: with.then(|| imatrix.clone()),
        };
        quantize(&src, &out, &opts, &mut |_, _| {}).unwrap();
        let ours = ember::format::gguf::GgufFile::open(&out).unwrap();
        let want = case["tensors"].as_array().unwrap();
        assert_eq!(ours.tensors.len(), want.len(), "{ty}");
        for w in want {
            let name = w["name"].as_str().unwrap();
            let t = ours.tensor(name).unwrap();
            let what = format!("{ty} (imatrix: {with}) {name}");
            assert_eq!(t.dtype.name(), w["type"].as_str().unwrap(), "{what}");
            let digest = format!("{:x}", Sha256::digest(t.bytes()));
            assert_eq!(
                digest,
                w["sha256"].as_str().unwrap(),
                "{what}: bytes differ"
            );
        }
    }
}
