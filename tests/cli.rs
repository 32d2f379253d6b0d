//! The `ember` binary end to end on the default model: tokenize, score and greedy run match the
//! reference for every prompt; bad input gets a one-line error and a non-zero exit.

mod common;

use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn ember(args: &[&str]) -> Output {
    ember_env(args, &[])
}

fn ember_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    // No tuning cache of the user's unless a test names one: runs use the default kernels.
    let no_cache = std::env::temp_dir().join("ember-no-tune-cache/tune.json");
    Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(args)
        .env("EMBER_TUNE_CACHE", no_cache)
        .envs(env.iter().copied())
        .output()
        .expect("ember runs")
}

fn ember_json(args: &[&str]) -> Value {
    ember_json_env(args, &[])
}

fn ember_json_env(args: &[&str], env: &[(&str, &str)]) -> Value {
    let out = ember_env(args, env);
    assert!(
        out.status.success(),
        "ember {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// The CLI arguments that give a reference prompt: chat entries as a user message via --chat.
fn prompt_args(index: usize) -> Vec<String> {
    let prompts = json("reference/prompts-public.json");
    let p = &prompts["prompts"][index];
    match p.as_str() {
        Some(text) => vec!["-p".into(), text.into()],
        None => vec![
            "--chat".into(),
            "-p".into(),
            p["chat"][0]["content"].as_str().unwrap().into(),
        ],
    }
}

fn with(base: &[&str], extra: &[String]) -> Vec<String> {
    base.iter()
        .map(|s| s.to_string())
        .chain(extra.iter().cloned())
        .collect()
}

fn run_json(args: Vec<String>) -> Value {
    run_json_env(args, &[])
}

fn run_json_env(args: Vec<String>, env: &[(&str, &str)]) -> Value {
    ember_json_env(&args.iter().map(String::as_str).collect::<Vec<_>>(), env)
}

#[test]
fn tokenize_matches_reference_prompt_ids() {
    let reference = json("reference/smollm2-135m-instruct-q4_1.json");
    for (i, p) in reference["prompts"].as_array().unwrap().iter().enumerate() {
        let got = run_json(with(&["tokenize"], &prompt_args(i)));
        assert_eq!(ids(&got["ids"]), ids(&p["prompt_ids"]), "prompt {i}");
    }
}

/// `ember score` and `ember run --temp 0` with runtime options `runtime` and environment `env`
/// match the reference for every prompt: logits within `tol`, the first `greedy` greedy ids
/// exactly. A one-token continuation (the chat prompt's end of turn) is the last position's
/// top-1, checked from the scores: a run would only repeat the prompt's prefill.
fn score_and_greedy_run_match_reference_with(
    runtime: &[&str],
    env: &[(&str, &str)],
    tol: f64,
    greedy: usize,
) {
    let reference = json("reference/smollm2-135m-instruct-q4_1.json");
    for (i, p) in reference["prompts"].as_array().unwrap().iter().enumerate() {
        let scored = run_json_env(with(&[&["score"], runtime].concat(), &prompt_args(i)), env);
        assert_eq!(ids(&scored["prompt_ids"]), ids(&p["prompt_ids"]));
        let top = &scored["top"];
        for (pos, (ours, theirs)) in top
            .as_array()
            .unwrap()
            .iter()
            .zip(p["top5_per_position"].as_array().unwrap())
            .enumerate()
        {
            for (a, b) in ours
                .as_array()
                .unwrap()
                .iter()
                .zip(theirs.as_array().unwrap())
            {
                let (la, lb) = (a[1].as_f64().unwrap(), b[1].as_f64().unwrap());
                assert!(
                    (la - lb).abs() <= tol,
                    "prompt {i} position {pos}: {a} vs {b}"
                );
                // Same id unless two logits are within the tolerance of each other.
                assert!(
                    a[0] == b[0] || (la - lb).abs() <= tol,
                    "prompt {i} position {pos}"
                );
            }
        }
        let mut want = ids(&p["greedy_ids"]);
        want.truncate(greedy);
        if let [only] = want[..] {
            let last = top.as_array().unwrap().last().unwrap();
            assert_eq!(
                last[0][0].as_u64(),
                Some(only as u64),
                "prompt {i} greedy id"
            );
            continue;
        }
        let n = want.len().to_string();
        let ran = run_json_env(
            with(
                &[&["run"], runtime, &["--temp", "0", "-n", &n, "--json"]].concat(),
                &prompt_args(i),
            ),
            env,
        );
        assert_eq!(ids(&ran["ids"]), want, "prompt {i} greedy ids");
        assert_eq!(ids(&ran["prompt_ids"]), ids(&p["prompt_ids"]));
    }
}

/// The exact f32 path, at the tolerances of the reference.
#[test]
fn cpu_matches_reference() {
    score_and_greedy_run_match_reference_with(
        &["--backend", "cpu", "--precision", "f32"],
        &[],
        2e-3,
        32,
    );
}

/// The default integer path (two-byte activations) gives the reference's greedy ids and its
/// logits within 1e-2 (the activations carry ~15 bits; logits of ~30 accumulate that over 30
/// layers), with the kernels of every instruction set this CPU has, forced through
/// `EMBER_CPU_LEVEL`: the whole continuation with the default (the best) kernels, 16 ids with
/// each other level (their kernels' parity is cpu_kernels' business; this is the model's).
#[test]
fn cpu_integer_kernels_match_reference_at_every_level() {
    let mut greedy = 32;
    for level in ember::quant::int_dot::CpuLevel::ALL.into_iter().rev() {
        if level.supported() {
            let env = [("EMBER_CPU_LEVEL", level.name())];
            score_and_greedy_run_match_reference_with(&["--backend", "cpu"], &env, 1e-2, greedy);
            greedy = 16;
        }
    }
}

#[test]
fn unknown_or_unsupported_cpu_level_is_refused() {
    let out = ember_env(
        &["run", "--backend", "cpu", "-n", "1", "-p", "hi"],
        &[("EMBER_CPU_LEVEL", "sse9")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("EMBER_CPU_LEVEL=sse9"), "{err}");
}

/// With an f32 KV cache at the reference's tolerance; with the default cache (f16 where the
/// adapter has shader-f16: keys and values rounded to 11 bits move logits of ~30 by up to ~2e-2,
/// about 1e-3 of their size) at 5e-2, greedy ids unchanged (adapters without shader-f16 run the
/// f32 cache once). Greedy runs take the reference's first 16 ids: a software adapter decodes
/// at a few tokens per second.
#[test]
fn gpus_match_reference() {
    for choice in gpu_choices() {
        let backend = format!("{choice:?}").to_lowercase();
        score_and_greedy_run_match_reference_with(
            &["--backend", &backend, "--cache-type", "f32"],
            &[],
            2e-3,
            16,
        );
        let f16 = ember::backend::gpu::GpuContext::new(choice)
            .unwrap()
            .report
            .shader_f16;
        if f16 {
            score_and_greedy_run_match_reference_with(&["--backend", &backend], &[], 5e-2, 16);
        }
    }
}

#[test]
fn seeded_sampling_is_reproducible() {
    let sample = |seed: &str| {
        let args = [
            "run",
            "-p",
            "Once upon a time",
            "-n",
            "12",
            "--temp",
            "1.0",
            "--seed",
            seed,
            "--json",
        ];
        ember_json(&args)["ids"].clone()
    };
    assert_eq!(sample("42"), sample("42"));
    assert_ne!(
        sample("42"),
        sample("7"),
        "different seeds should differ on 12 sampled tokens"
    );
}

/// Runs ember expecting failure: non-zero exit, one line on stderr containing `needle`.
fn assert_fails(args: &[&str], needle: &str) {
    let out = ember(args);
    // `--backend auto` may add a one-line notice about the backend it chose.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let err: String = stderr
        .lines()
        .filter(|l| !l.starts_with("notice: "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!out.status.success(), "ember {args:?} should fail");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "ember {args:?}: expected one line, got {err:?}"
    );
    assert!(
        err.contains(needle),
        "ember {args:?}: {err:?} should mention {needle:?}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_flags_and_requests_fail_cleanly() {
    assert_fails(&["run", "-n", "-5", "hi"], "-5");
    assert_fails(&["run", "--temp", "abc", "hi"], "abc");
    assert_fails(&["run", "--top-p", "1.5", "hi"], "top-p");
    assert_fails(&["run", "--frobnicate"], "frobnicate");
    assert_fails(
        &[
            "run",
            "-c",
            "8",
            "-p",
            "one two three four five six seven eight nine ten eleven",
        ],
        "context",
    );
    assert_fails(&["run", "-c", "100000", "hi"], "context");
    assert_fails(&["run"], "no prompt");
    assert_fails(&["info", "-m", "/no/such/model.gguf"], "no such file");
    assert_fails(&["run", "-f", "/no/such/prompt.txt"], "prompt file");
    assert_fails(&["score", "--top", "0", "hi"], "--top");
    assert_fails(&["run", "--backend", "metal", "hi"], "no Metal adapter");
    assert_fails(&["run", "--backend", "dx12", "hi"], "no DX12 adapter");
    assert_fails(&["run", "--backend", "tpu", "hi"], "tpu");
}

#[test]
fn corrupt_model_files_fail_cleanly() {
    let dir = std::env::temp_dir().join(format!("ember-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read(default_model()).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.gguf", vec![], "truncated"),
        (
            "magic.gguf",
            b"GGML\x03\x00\x00\x00"
                .iter()
                .copied()
                .chain(good[8..4096].iter().copied())
                .collect(),
            "not a GGUF",
        ),
        ("header.gguf", good[..100_000].to_vec(), "left in the file"),
        ("half.gguf", good[..good.len() / 2].to_vec(), "past the end"),
    ];
    for (name, bytes, needle) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        assert_fails(&["info", "-m", path.to_str().unwrap()], needle);
        assert_fails(&["run", "-m", path.to_str().unwrap(), "hi"], needle);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn info_describes_the_default_model() {
    let out = ember(&["info"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "llama",
        "layers:         30",
        "Q4_1",
        "Q8_0",
        "49152 tokens",
        "chat template:  present",
        "98362432 bytes",
    ] {
        assert!(text.contains(needle), "info lacks {needle:?}:\n{text}");
    }
}

#[test]
fn devices_lists_the_adapters() {
    let out = ember(&["devices", "--json"]);
    assert!(out.status.success());
    let adapters: Value = serde_json::from_slice(&out.stdout).unwrap();
    for choice in gpu_choices() {
        let backend = format!("{choice:?}");
        let a = adapters
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["backend"] == backend.as_str())
            .unwrap_or_else(|| panic!("{backend} not listed"));
        assert!(a["max_storage_buffer_binding_size"].as_u64().unwrap() >= 1 << 20);
        assert!(a["name"].as_str().is_some_and(|n| !n.is_empty()));
    }
    let text = String::from_utf8_lossy(&ember(&["devices"]).stdout).into_owned();
    assert!(
        text.contains("max storage binding") || text.contains("no GPU adapters"),
        "{text}"
    );
}

/// `ember compare` on one model under two precisions: JSON with the measures, B close to A.
#[test]
fn compare_reports_kld_agreement_and_perplexities() {
    let text = std::env::temp_dir().join(format!("ember-compare-{}.txt", std::process::id()));
    let ppl_text = json("reference/prompts-public.json")["ppl_text"].clone();
    std::fs::write(&text, ppl_text.as_str().unwrap()).unwrap();
    let model = default_model();
    let v = ember_json(&[
        "compare",
        &model,
        "--backend",
        "cpu",
        "--precision-a",
        "f32",
        "--precision-b",
        "i8",
        "-f",
        text.to_str().unwrap(),
        "--window",
        "64",
        "--json",
    ]);
    std::fs::remove_file(&text).ok();
    let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert!(f("positions") > 400.0);
    assert!(f("mean_kld") > 0.0 && f("mean_kld") < 0.01, "{v}");
    assert!(f("max_kld") >= f("p99_kld") && f("p99_kld") >= 0.0);
    assert!(f("top1_agreement") > 0.9 && f("top1_agreement") <= 1.0);
    assert!((f("ppl_b") / f("ppl_a") - 1.0).abs() < 0.02);
    assert!(v["a"].as_str().unwrap().ends_with("(f32)"), "{v}");
}

/// A copy of the tiny Hugging Face Llama whose tokenizer lower-cases its input: the same
/// vocabulary size, but other tokens for the same text.
fn tiny_model_with_other_tokens() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-other-vocab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = std::path::PathBuf::from(data("hf-tiny/tiny-hf-llama"));
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    let mut tok: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap())
            .unwrap();
    tok["normalizer"] = serde_json::json!({"type": "Lowercase"});
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    dir
}

#[test]
fn compare_refuses_models_with_different_vocabularies() {
    let text = std::env::temp_dir().join(format!("ember-compare-bad-{}.txt", std::process::id()));
    std::fs::write(&text, "Once upon a time there was a Model.").unwrap();
    let other = tiny_model_with_other_tokens();
    let out = ember(&[
        "compare",
        &default_model(),
        other.to_str().unwrap(),
        "--backend",
        "cpu",
        "-f",
        text.to_str().unwrap(),
    ]);
    std::fs::remove_file(&text).ok();
    std::fs::remove_dir_all(&other).ok();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("do not share a vocabulary"), "{err}");
}

/// `ember tune` times every decode kernel choice and writes the winner to the cache; a later
/// `ember run` on the same adapter and model uses it (its backend name says which), including a
/// choice that is not the adapter's default, with the same greedy output. A corrupt cache is a
/// notice, not a failure; tuning the CPU is a clear error. On the first adapter only (Vulkan,
/// with f16 and subgroups: the most candidates): the tuner is the same code on every adapter,
/// a tuning takes two minutes on a software one, and the kernels it picks from are checked on
/// each adapter by gpu_parity.
#[test]
fn tune_writes_a_cache_that_run_uses() {
    let dir = std::env::temp_dir().join(format!("ember-tune-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cache = dir.join("tune.json");
    let env = [("EMBER_TUNE_CACHE", cache.to_str().unwrap())];
    for choice in gpu_choices().into_iter().take(1) {
        let backend = format!("{choice:?}").to_lowercase();
        let tuned = ember_json_env(
            &[
                "tune",
                "--backend",
                &backend,
                "-n",
                "2",
                "-r",
                "1",
                "--depth",
                "16",
                "--prompt",
                "12",
                "--json",
            ],
            &env,
        );
        let chosen = tuned["chosen"].as_str().unwrap().to_string();
        // Every candidate timed (lane counts, 8-bit or not, ...): none may be refused for
        // changing the answer.
        let candidates = tuned["candidates"].as_u64().unwrap() as usize;
        assert!(candidates >= 6, "{tuned}");
        assert_eq!(
            tuned["entry"]["measured"].as_array().unwrap().len(),
            candidates,
            "{tuned}"
        );
        // Then every prefill tile shape, in f16 too where the adapter has it.
        let prefill = tuned["prefill_candidates"].as_u64().unwrap() as usize;
        assert!(prefill >= 4, "{tuned}");
        assert_eq!(
            tuned["entry"]["prefill"].as_array().unwrap().len(),
            prefill,
            "{tuned}"
        );
        let run = |env: &[(&str, &str)]| {
            ember_json_env(
                &[
                    "run",
                    "--backend",
                    &backend,
                    "--temp",
                    "0",
                    "-n",
                    "6",
                    "--json",
                    "-p",
                    "Once upon a time",
                ],
                env,
            )
        };
        let first = run(&env);
        let name = first["backend"].as_str().unwrap();
        assert!(
            name.ends_with(&format!("[tuned: {chosen}]")),
            "{name} after choosing {chosen}"
        );
        // Force each choice through the cache: the run reports it and answers the same. (The
        // answers are compared with each other, not with the tuned run's: the tuner may pick
        // 8-bit activations, whose rounding can flip a near-tie in greedy decoding.)
        let stored: Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
        let mut answer: Option<Vec<u32>> = None;
        for (rows, attention) in [(true, true), (false, false)] {
            let mut forced = stored.clone();
            for e in forced["entries"].as_array_mut().unwrap() {
                e["tuning"] = serde_json::json!({"split_rows": rows, "split_attention": attention});
            }
            std::fs::write(&cache, forced.to_string()).unwrap();
            let again = run(&env);
            // Without a lane count, split rows take the adapter's; without tiles, the default.
            let want = if rows {
                "split attention, prefill tiles 32x32]"
            } else {
                "[tuned: whole rows, per-head attention, prefill tiles 32x32]"
            };
            let name = again["backend"].as_str().unwrap();
            assert!(name.ends_with(want), "{name}");
            assert_eq!(name.contains("[tuned: split rows x"), rows, "{name}");
            let got = ids(&again["ids"]);
            assert_eq!(*answer.get_or_insert_with(|| got.clone()), got, "{name}");
        }
        std::fs::write(&cache, "{ not json").unwrap();
        let out = ember_env(&["run", "--backend", &backend, "-n", "2", "-p", "hi"], &env);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains("notice: tuning cache") && err.contains("default kernels"),
            "{err}"
        );
        std::fs::remove_file(&cache).unwrap();
    }
    std::fs::remove_dir_all(&dir).ok();
    assert_fails(&["tune", "--backend", "cpu"], "GPU");
}

/// `ember chat` with its conversation piped in.
fn chat(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ember"))
        .arg("chat")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ember chat runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("the conversation is written");
    child.wait_with_output().expect("ember chat ends")
}

#[test]
fn chat_gives_way_to_new_turns_when_the_context_fills() {
    let turns: String = (1..=6)
        .map(|i| format!("Tell me one short fact about the number {i}, please.\n"))
        .collect();
    let huge = format!("{}\nWhat is 2 + 2?\n", "word ".repeat(400));
    let args = [
        "--backend",
        "cpu",
        "-c",
        "128",
        "-n",
        "12",
        "--temp",
        "0",
        "--system",
        "Be brief.",
    ];
    let out = chat(&args, &format!("{turns}{huge}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("dropped the"), "no context shift:\n{err}");
    // The oversized message is refused on its own; the chat answers the next one.
    assert!(err.contains("error: the message is"), "{err}");
    let prompts = err.matches("> ").count();
    assert_eq!(prompts, 9, "a prompt per line and one at the end:\n{err}");
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(!out.stdout.is_empty());
}
