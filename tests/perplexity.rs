//! `ember perplexity` on the default model gives the reference perplexity within 0.5%, on the CPU
//! and on each GPU API.

mod common;

use common::*;

fn ppl(backend: &str) -> f64 {
    let text = json("reference/prompts-public.json")["ppl_text"]
        .as_str()
        .unwrap()
        .to_string();
    let path = std::env::temp_dir().join(format!("ember-ppl-{}-{backend}.txt", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
        .args([
            "perplexity",
            "-f",
            path.to_str().unwrap(),
            "--window",
            "128",
            "--backend",
            backend,
            "--json",
        ])
        .output()
        .unwrap();
    std::fs::remove_file(&path).ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reference = json("reference/smollm2-135m-instruct-q4_1.json")["perplexity"].clone();
    assert_eq!(v["tokens"], reference["text_tokens"]);
    assert_eq!(v["scored"], reference["scored_tokens"]);
    assert!(v["tokens_per_s"].as_f64().unwrap() > 0.0);
    v["ppl"].as_f64().unwrap() / reference["ppl"].as_f64().unwrap()
}

#[test]
fn cpu_perplexity_matches_reference() {
    let ratio = ppl("cpu");
    assert!((ratio - 1.0).abs() < 0.005, "ratio {ratio}");
}

#[test]
fn gpu_perplexity_matches_reference() {
    for choice in gpu_choices() {
        let ratio = ppl(&format!("{choice:?}").to_lowercase());
        assert!((ratio - 1.0).abs() < 0.005, "{choice:?}: ratio {ratio}");
    }
}
