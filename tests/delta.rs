//! Model deltas (`ember diff`, `ember patch`): NEW rebuilt byte for byte (SHA-256) from OLD and
//! the patch, a patch for another file or a damaged one refused, an interrupted patch leaving
//! OLD intact and no half-written NEW, and a re-run completing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use sha2::{Digest, Sha256};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("delta-{name}"));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ember(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    err
}

/// `ember diff OLD NEW -o PATCH`, which must succeed; its report.
fn diff(old: &Path, new: &Path, patch: &Path) -> String {
    ok(ember(&[
        Path::new("diff"),
        old,
        new,
        Path::new("-o"),
        patch,
    ]))
}

/// `ember patch OLD PATCH -o OUT`, which must succeed.
fn apply(old: &Path, patch: &Path, out: &Path) {
    ok(ember(&[
        Path::new("patch"),
        old,
        patch,
        Path::new("-o"),
        out,
    ]));
}

/// Whether `dir` holds a patch's partial output.
fn has_partial(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".partial")
    })
}

fn sha(path: &Path) -> [u8; 32] {
    Sha256::digest(std::fs::read(path).unwrap()).into()
}

/// The default model with three tensors re-quantized to other types (`dir/a.gguf`), and with a
/// few tensors slightly changed in place (`dir/b.gguf`).
fn variants(dir: &Path) -> (PathBuf, PathBuf) {
    let model = PathBuf::from(default_model());
    let a = dir.join("a.gguf");
    ok(Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["quantize", "--type", "q4_1"])
        .args(["--tensor-type", "blk.3.ffn_down=q8_0"])
        .args(["--tensor-type", "blk.10.attn_q=q5_0"])
        .args(["--tensor-type", "blk.20.ffn_up=q8_0"])
        .arg(&model)
        .arg(&a)
        .output()
        .unwrap());
    let b = dir.join("b.gguf");
    let gguf = ember::format::gguf::GgufFile::open(&model).unwrap();
    let mut bytes = std::fs::read(&model).unwrap();
    let mut rng = Rng(0x5eed);
    for name in [
        "blk.0.attn_k.weight",
        "blk.7.ffn_gate.weight",
        "blk.29.attn_v.weight",
    ] {
        let info = gguf.tensors.iter().find(|t| t.name == name).unwrap();
        let start = gguf.data_offset + info.offset;
        // A few bytes of one block in 64 changed: a small fine-tune's footprint.
        let len = gguf.tensor(name).unwrap().bytes().len();
        for at in (start..start + len).step_by(64 * 20) {
            bytes[at + 7] ^= rng.byte() | 1;
        }
    }
    std::fs::write(&b, bytes).unwrap();
    (a, b)
}

#[test]
fn patches_rebuild_new_exactly() {
    let dir = scratch("rebuild");
    let model = PathBuf::from(default_model());
    let (a, b) = variants(&dir);
    for (new, says) in [
        (
            &a,
            "269 tensors copied, 0 stored as a difference, 3 stored whole",
        ),
        (
            &b,
            "269 tensors copied, 3 stored as a difference, 0 stored whole",
        ),
    ] {
        let patch = dir.join("p.patch");
        let out = dir.join("rebuilt.gguf");
        let err = diff(&model, new, &patch);
        assert!(err.contains(says), "{err}");
        let size = std::fs::metadata(&patch).unwrap().len();
        assert!(
            size < std::fs::metadata(new).unwrap().len() / 20,
            "{size} bytes"
        );
        apply(&model, &patch, &out);
        assert_eq!(sha(&out), sha(new));
        // The rebuilt model runs.
        ok(Command::new(env!("CARGO_BIN_EXE_ember"))
            .args(["run", "--backend", "cpu", "-n", "2", "-m"])
            .arg(&out)
            .arg("Hi")
            .output()
            .unwrap());
    }
}

#[test]
fn wrong_or_damaged_patches_are_refused() {
    let dir = scratch("refused");
    let model = PathBuf::from(default_model());
    let (a, b) = variants(&dir);
    let patch = dir.join("a.patch");
    diff(&model, &a, &patch);
    let out = dir.join("out.gguf");
    let fails = |old: &Path, patch: &Path| {
        let o = ember(&[Path::new("patch"), old, patch, Path::new("-o"), &out]);
        assert!(!o.status.success());
        assert!(!out.exists(), "no output after a refusal");
        assert!(!has_partial(&dir), "no partial file left");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let err = fails(&b, &patch);
    assert!(err.contains("it is for another file"), "{err}");
    let bytes = std::fs::read(&patch).unwrap();
    for (name, edit) in [
        (
            "truncated",
            Box::new(|b: &mut Vec<u8>| b.truncate(b.len() - 100)) as Box<dyn Fn(&mut Vec<u8>)>,
        ),
        (
            "flipped",
            Box::new(|b: &mut Vec<u8>| {
                let at = b.len() - 5000;
                b[at] ^= 0x40;
            }),
        ),
        ("not a patch", Box::new(|b: &mut Vec<u8>| b[0] = b'X')),
    ] {
        let mut damaged = bytes.clone();
        edit(&mut damaged);
        let path = dir.join("damaged.patch");
        std::fs::write(&path, damaged).unwrap();
        let err = fails(&model, &path);
        assert!(
            err.contains("damaged")
                || err.contains("truncated")
                || err.contains("not an Ember patch"),
            "{name}: {err}"
        );
    }
}

#[test]
fn an_interrupted_patch_leaves_old_intact_and_runs_again() {
    let dir = scratch("interrupted");
    let old = dir.join("model.gguf");
    std::fs::copy(default_model(), &old).unwrap();
    let (_, b) = variants(&dir);
    let patch = dir.join("b.patch");
    diff(&old, &b, &patch);
    let before = sha(&old);
    // Killed half-way through writing, updating the model in place.
    let o = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args([Path::new("patch"), &old, &patch, Path::new("-o"), &old])
        .env("EMBER_PATCH_KILL_AFTER", "50000000")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the run was killed");
    assert_eq!(sha(&old), before, "OLD is intact");
    // The re-run completes and replaces OLD with NEW.
    apply(&old, &patch, &old);
    assert_eq!(sha(&old), sha(&b));
    assert!(!has_partial(&dir), "the partial file is gone");
}
