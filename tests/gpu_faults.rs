//! GPU faults, injected with `EMBER_GPU_FAULT` (src/backend/gpu/fault.rs): an out-of-memory while
//! uploading, a lost device, a pipeline that fails to compile and buffers over the device's
//! limit each end in a clear error on an explicit GPU backend, and in the CPU backend with a
//! one-line notice under `--backend auto` — the same answer the CPU gives. Never a panic.

mod common;

use std::process::Output;

use common::*;
use ember::backend::gpu::GpuChoice;

/// `ember run` of a short greedy answer with the model's own context, with `fault` injected.
fn run(backend: &str, fault: &str) -> Output {
    run_with(backend, fault, &[])
}

fn run_with(backend: &str, fault: &str, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["run", "--backend", backend, "-n", "6", "--temp", "0"])
        .args(args)
        .arg("The capital of France is")
        .env("EMBER_GPU_FAULT", fault)
        .output()
        .expect("ember runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Each fault, and what its error says.
const FAULTS: [(&str, &str); 4] = [
    ("upload-oom", "Out of Memory while uploading"),
    ("device-lost", "the GPU device was lost"),
    ("pipeline", "failed to compile"),
    (
        "buffer-limit",
        "per layer cache; this adapter binds at most 1048576 (use -c",
    ),
];

#[test]
fn each_injected_fault_is_a_clear_error() {
    for choice in gpu_choices() {
        let backend = match choice {
            GpuChoice::Gl => "gl",
            _ => "vulkan",
        };
        // Without the fault the run works (so the errors below are the faults').
        let healthy = run(backend, "");
        let (want, err) = text(&healthy);
        assert!(healthy.status.success(), "{err}");
        for (fault, says) in FAULTS {
            let out = run(backend, fault);
            let (_, err) = text(&out);
            assert!(!out.status.success(), "{backend} {fault}: {err}");
            assert!(err.contains(says), "{backend} {fault}: {err}");
            assert!(!err.contains("panicked"), "{backend} {fault}: {err}");
        }
        // Within 1 MiB buffers a small context fits, the weights cut into pieces that do.
        let small = run_with(backend, "buffer-limit", &["-c", "256"]);
        let (got, err) = text(&small);
        assert!(small.status.success(), "{backend}: {err}");
        assert_eq!(got, want, "{backend}: weights in 1 MiB pieces");
    }
}

#[test]
fn auto_falls_back_to_the_cpu_when_the_gpu_fails() {
    if gpu_choices().is_empty() {
        return;
    }
    let cpu = run("cpu", "");
    let (want, err) = text(&cpu);
    assert!(cpu.status.success(), "{err}");
    for (fault, says) in FAULTS {
        let out = run("auto", fault);
        let (got, err) = text(&out);
        assert!(out.status.success(), "{fault}: {err}");
        let notices: Vec<&str> = err.lines().filter(|l| l.starts_with("notice:")).collect();
        assert_eq!(notices.len(), 1, "{fault}: {err}");
        assert!(
            notices[0].starts_with("notice: the GPU failed (")
                && notices[0].contains(says)
                && notices[0].ends_with("; using the CPU"),
            "{fault}: {err}"
        );
        assert!(err.contains("[cpu]"), "{fault}: {err}");
        assert_eq!(got, want, "{fault}: the CPU's answer");
    }
    // A device lost mid-answer, after the model has loaded: the answer ends with the error.
    let out = run("auto", "device-lost:3");
    let (_, err) = text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("error: backend: the GPU device was lost"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
