//! Bounded resources: a KV cache that cannot fit in memory is refused up front, saying how much
//! it needs and how much there is; the model's own (huge) context shrinks to what fits instead.

mod common;

use std::process::{Command, Output};

use common::*;

/// The tiny byte-level BPE Llama with its trained context claimed as `ctx`, written to a file
/// named with `tag`.
fn claiming_context(ctx: u32, tag: &str) -> std::path::PathBuf {
    let mut file = std::fs::read(data("fuzz/seeds/tiny-bpe-llama.gguf")).expect("seed model");
    let key = b"llama.context_length";
    let at = file
        .windows(key.len())
        .position(|w| w == key)
        .expect("the key")
        + key.len();
    assert_eq!(file[at..at + 4], 4u32.to_le_bytes(), "a u32 value");
    file[at + 4..at + 8].copy_from_slice(&ctx.to_le_bytes());
    let path =
        std::env::temp_dir().join(format!("ember-ctx-{ctx}-{tag}-{}.gguf", std::process::id()));
    std::fs::write(&path, file).expect("the model is written");
    path
}

fn run(model: impl AsRef<std::ffi::OsStr>, ctx: &str, limit: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ember"));
    cmd.args(["run", "-m"]).arg(model.as_ref()).args([
        "--backend",
        "cpu",
        "-n",
        "2",
        "-c",
        ctx,
        "Hello",
    ]);
    if let Some(limit) = limit {
        cmd.env("EMBER_MEMORY_LIMIT", limit);
    }
    cmd.output().expect("ember runs")
}

#[test]
fn an_impossible_kv_cache_is_refused_saying_what_it_needs() {
    // The largest context a header may claim (2^24) of 1 layer × 2 × 16 values × 4 bytes needs
    // 2 GiB of cache; with a 1 GiB limit set for the device it cannot fit.
    let model = claiming_context(1 << 24, "refused");
    let out = run(&model, "16777216", Some("1G"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("a context of 16777216 tokens needs 2.0 GiB of KV cache")
            && err.contains("; 1.0 GiB of memory is available: use a smaller --ctx-size"),
        "{err}"
    );
    let out = run(&model, "65536", Some("1M"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("a context of 65536 tokens needs 8.0 MiB")
            && err.contains("; 1.0 MiB of memory is available"),
        "{err}"
    );
    // What fits runs.
    let out = run(&model, "4096", Some("1M"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&model, "256", Some("12 parsecs"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("EMBER_MEMORY_LIMIT=\"12 parsecs\" is not a size"),
        "{err}"
    );
    std::fs::remove_file(model).ok();
}

#[test]
fn the_models_own_huge_context_shrinks_to_what_fits() {
    // With 64 MiB to spend, the claimed 2^24 default context halves until its cache takes half
    // of that: 2^18 positions × 128 bytes.
    let model = claiming_context(1 << 24, "shrunk");
    let out = run(&model, "0", Some("64M"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("(16777216 tokens) does not fit in memory; using 262144"),
        "{err}"
    );
    std::fs::remove_file(model).ok();
}
