//! Encrypted models at rest (`ember encrypt`, `--key-file`, `EMBER_KEY_FILE`): the same greedy
//! answer as the plain file on the CPU and on GPUs; a wrong key, a truncated file and flipped
//! bytes refused with errors naming what failed; the plaintext never written to disk.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use ember::backend::gpu::GpuChoice;

/// A fresh folder for the encrypted file, its key and the processes' temporary files.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("encrypted-{name}"));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    dir
}

fn ember(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(args)
        .env("TMPDIR", dir.join("tmp"))
        .env_remove("EMBER_KEY_FILE")
        .output()
        .unwrap()
}

fn greedy(dir: &Path, model: &str, backend: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "-m",
        model,
        "--backend",
        backend,
        "-n",
        "12",
        "--temp",
        "0",
    ];
    args.extend(extra);
    args.push("The capital of France is");
    ember(dir, &args)
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    assert!(!o.status.success(), "expected a failure");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Encrypts the default model into `dir` with a new key: (encrypted path, key path).
fn encrypt(dir: &Path) -> (String, String) {
    let (enc, key) = (dir.join("model.enc"), dir.join("model.key"));
    let (model, enc_s, key_s) = (
        default_model(),
        enc.to_str().unwrap(),
        key.to_str().unwrap(),
    );
    let base = ["encrypt", &model, enc_s, "--key-file"];
    assert!(!ember(dir, &base).status.success(), "a key file is needed");
    let out = ember(dir, &[&base[..], &[key_s, "--new-key"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        enc.to_str().unwrap().to_string(),
        key.to_str().unwrap().to_string(),
    )
}

#[test]
fn encrypted_model_answers_as_the_plain_one() {
    let dir = scratch("same");
    let (enc, key) = encrypt(&dir);
    let plain = default_model();
    let mut backends = vec!["cpu"];
    for choice in gpu_choices() {
        if choice == GpuChoice::Vulkan {
            backends.push("vulkan");
        }
    }
    for backend in backends {
        let want = stdout(&greedy(&dir, &plain, backend, &[]));
        let got = stdout(&greedy(&dir, &enc, backend, &["--key-file", &key]));
        assert_eq!(got, want, "{backend}");
    }
    // The environment variable names the key too.
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args([
            "run",
            "-m",
            &enc,
            "--backend",
            "cpu",
            "-n",
            "12",
            "--temp",
            "0",
        ])
        .arg("The capital of France is")
        .env("EMBER_KEY_FILE", &key)
        .env("TMPDIR", dir.join("tmp"))
        .output()
        .unwrap();
    assert_eq!(stdout(&out), stdout(&greedy(&dir, &plain, "cpu", &[])));

    // The plaintext is nowhere on disk: no file in the output folder or the temporary folder
    // the processes were given holds the GGUF's bytes (its start, or a slice from its middle).
    let plain_bytes = std::fs::read(&plain).unwrap();
    let middle = &plain_bytes[plain_bytes.len() / 2..plain_bytes.len() / 2 + 4096];
    let start = &plain_bytes[..4096];
    for dir in [dir.clone(), dir.join("tmp")] {
        for entry in std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
            let path = entry.path();
            if !path.is_file() || entry.metadata().map_or(0, |m| m.len()) > 1 << 30 {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            for needle in [start, middle] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{} holds plaintext",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn wrong_keys_and_damaged_files_are_refused() {
    let dir = scratch("refused");
    let (enc, key) = encrypt(&dir);
    let run = |model: &str, key: &str| stderr(&greedy(&dir, model, "cpu", &["--key-file", key]));

    let err = stderr(&greedy(&dir, &enc, "cpu", &[]));
    assert!(
        err.contains("is an encrypted model: give its key with --key-file"),
        "{err}"
    );
    let other = dir.join("other.key");
    std::fs::write(&other, format!("{}\n", "ab".repeat(32))).unwrap();
    let err = run(&enc, other.to_str().unwrap());
    assert!(
        err.contains("chunk 0 of 94 failed authentication: the key is wrong"),
        "{err}"
    );
    for bad in [
        "not a key".to_string(),
        format!("a\u{e9}{}", "0".repeat(61)),
    ] {
        std::fs::write(&other, bad).unwrap();
        let err = run(&enc, other.to_str().unwrap());
        assert!(err.contains("is not a key"), "{err}");
    }
    let err = stderr(&greedy(
        &dir,
        &default_model(),
        "cpu",
        &["--key-file", &key],
    ));
    assert!(err.contains("is not encrypted"), "{err}");

    let bytes = std::fs::read(&enc).unwrap();
    let damaged = |name: &str, edit: &dyn Fn(&mut Vec<u8>)| -> String {
        let mut b = bytes.clone();
        edit(&mut b);
        let path = dir.join(name);
        std::fs::write(&path, b).unwrap();
        run(path.to_str().unwrap(), &key)
    };
    let err = damaged("truncated.enc", &|b| b.truncate(b.len() - 1000));
    assert!(err.contains("truncated, or the header is damaged"), "{err}");
    // 40-byte header, then 94 chunks of 1 MiB + a 16-byte tag (the last one shorter).
    let chunk = (1 << 20) + 16;
    for (at, says) in [
        (30, "chunk 0 of 94 failed authentication"),
        (
            40 + 5 * chunk + 100,
            "chunk 5 of 94 failed authentication: the file is damaged",
        ),
        (
            bytes.len() - 1,
            "chunk 93 of 94 failed authentication: the file is damaged",
        ),
        (8, "encrypted-model version"),
    ] {
        let err = damaged("flipped.enc", &|b| b[at] ^= 0x01);
        assert!(err.contains(says), "byte {at}: {err}");
    }
}
