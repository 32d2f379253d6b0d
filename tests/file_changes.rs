//! Model files changing underneath a running process. The model is memory-mapped: a file
//! replaced by rename (the documented way to install a model) leaves the running process on the
//! old bytes and it goes on answering; a file rewritten or truncated in place is refused at the
//! next answer with a clear error; one truncated mid-answer ends the process with a message
//! (SIGBUS), never a crash dump.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use common::*;

/// A scratch copy of `model` named `name`, in a folder of its own.
fn scratch_copy(model: &str, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("file-changes-{name}"));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    let path = dir.join("model.gguf");
    std::fs::copy(model, &path).expect("the model is copied");
    path
}

/// A running `ember chat` whose answers arrive line by line.
struct Chat {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Chat {
    fn start(model: &Path) -> Chat {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ember"))
            .args(["chat", "--backend", "cpu", "-n", "8", "--temp", "0", "-m"])
            .arg(model)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ember chat runs");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Chat {
            child,
            stdin,
            lines,
        }
    }

    /// Sends `turn` and waits for its one-line answer.
    fn say(&mut self, turn: &str) -> String {
        writeln!(self.stdin, "{turn}").expect("the turn is sent");
        self.lines
            .recv_timeout(Duration::from_secs(60))
            .expect("an answer")
    }

    /// Sends `turn`, closes the input and returns the exit status and standard error.
    fn end_with(mut self, turn: &str) -> (bool, String) {
        writeln!(self.stdin, "{turn}").expect("the turn is sent");
        drop(self.stdin);
        let out = self.child.wait_with_output().expect("ember chat ends");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

const TINY: &str = "fuzz/seeds/tiny-bpe-llama.gguf";

#[test]
fn chat_goes_on_when_the_model_is_replaced_by_rename() {
    let model = scratch_copy(&data(TINY), "rename");
    // The same two turns without any change: what the answers must be.
    let mut calm = Chat::start(&model);
    let want = [calm.say("Hello"), calm.say("Again")];
    assert!(calm.end_with("/exit").0);

    let mut chat = Chat::start(&model);
    assert_eq!(chat.say("Hello"), want[0]);
    // Another model is installed the documented way: written beside it, renamed over it.
    let new = model.with_extension("new");
    std::fs::write(&new, b"not the model any more").expect("the new file is written");
    std::fs::rename(&new, &model).expect("renamed over the old path");
    assert_eq!(chat.say("Again"), want[1]);
    let (ok, err) = chat.end_with("/exit");
    assert!(ok, "{err}");
}

#[test]
fn a_model_changed_in_place_is_refused_at_the_next_turn() {
    for (name, change) in [
        ("truncated", "its size went from"),
        ("rewritten", "it was rewritten"),
    ] {
        let model = scratch_copy(&data(TINY), name);
        let mut chat = Chat::start(&model);
        chat.say("Hello");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&model)
            .expect("the model opens for writing");
        if name == "truncated" {
            file.set_len(1000).expect("truncated");
        } else {
            let later = std::time::SystemTime::now() + Duration::from_secs(5);
            file.set_modified(later).expect("the time is set");
        }
        drop(file);
        let (ok, err) = chat.end_with("Again");
        assert!(!ok, "{name}: {err}");
        assert!(
            err.contains("changed while in use") && err.contains(change),
            "{name}: {err}"
        );
        assert!(
            err.contains("renaming it over the old path"),
            "{name}: {err}"
        );
    }
}

#[test]
fn truncating_the_model_mid_answer_ends_with_a_message() {
    // The default model, whose CPU decode reads every weight for every token: truncated while
    // it generates, the next read of a vanished page raises SIGBUS.
    let model = scratch_copy(&default_model(), "sigbus");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args([
            "run",
            "--backend",
            "cpu",
            "-n",
            "4000",
            "-c",
            "4096",
            "--temp",
            "0",
            "-m",
        ])
        .arg(&model)
        .arg("Once upon a time")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ember run starts");
    // Truncate once the answer is streaming.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).expect("the answer starts");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&model)
        .and_then(|f| f.set_len(4096))
        .expect("truncated");
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let out = child.wait_with_output().expect("ember run ends");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: a memory-mapped model file was truncated while in use (SIGBUS)"),
        "{err}"
    );
    std::fs::remove_file(&model).ok();
}
