//! NaN in a model file is reported as a fault naming the tensor, never turned into text: vectors
//! (norms) are checked at load, a NaN in a quantized matrix shows as non-finite logits and is
//! traced back to the tensor.

mod common;

use std::process::Command;

use common::*;
use ember::format::gguf::GgufFile;
use ember::{Error, ModelFile};

/// The tiny byte-level BPE Llama (tests/data/fuzz/seeds), with the bytes at `at` (relative to
/// the start of `tensor`'s data) replaced by `bytes`.
fn damaged(tensor: &str, at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut file = std::fs::read(data("fuzz/seeds/tiny-bpe-llama.gguf")).expect("seed model");
    let g = GgufFile::from_bytes(file.clone()).expect("a valid GGUF");
    let info = g
        .tensors
        .iter()
        .find(|t| t.name == tensor)
        .expect("the tensor");
    let start = g.data_offset + info.offset + at;
    file[start..start + bytes.len()].copy_from_slice(bytes);
    file
}

#[test]
fn a_nan_norm_weight_is_refused_at_load_naming_it() {
    let bytes = damaged("blk.0.attn_norm.weight", 3 * 4, &f32::NAN.to_le_bytes());
    let Err(e) = ModelFile::from_gguf_bytes("nan.gguf", bytes) else {
        panic!("a NaN norm weight loaded");
    };
    assert!(matches!(e, Error::Tensor { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("blk.0.attn_norm.weight") && msg.contains("NaN") && msg.contains("column 3"),
        "{msg}"
    );
}

#[test]
fn a_nan_block_scale_is_a_numeric_fault_traced_to_its_tensor() {
    // The first Q8_0 block's f16 scale of the feed-forward down projection: NaN (0x7e00).
    let bytes = damaged("blk.0.ffn_down.weight", 0, &[0x00, 0x7e]);
    let dir = std::env::temp_dir().join(format!("ember-nan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("nan-scale.gguf");
    std::fs::write(&path, bytes).unwrap();
    for cmd in ["run", "chat"] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ember"));
        c.args([
            cmd,
            "-m",
            path.to_str().unwrap(),
            "--backend",
            "cpu",
            "-n",
            "4",
        ]);
        let out = if cmd == "run" {
            c.arg("Hello world").output().unwrap()
        } else {
            use std::io::Write;
            let mut child = c
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"Hello\nAgain\n")
                .unwrap();
            child.wait_with_output().unwrap()
        };
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "ember {cmd} succeeded on NaN weights"
        );
        assert!(
            err.contains("numeric fault") && err.contains("traced to tensor blk.0.ffn_down.weight"),
            "ember {cmd}: {err}"
        );
        assert!(
            out.stdout.iter().all(|b| b.is_ascii_whitespace()),
            "ember {cmd} printed text"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
