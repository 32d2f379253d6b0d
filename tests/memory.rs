//! Peak memory of a CPU generation with the default model stays under twice the model file size
//! (probing GPU drivers, as `--backend auto` does, maps tens of MB of driver code on its own).
//! A test binary of its own: getrusage reports the largest child of the whole process, so no
//! other test may spawn `ember` here.

mod common;

#[cfg(target_os = "linux")]
#[test]
fn peak_memory_stays_under_twice_the_model_file() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
        .args([
            "run",
            "--backend",
            "cpu",
            "-p",
            "Once upon a time",
            "--temp",
            "0",
            "-n",
            "32",
        ])
        .output()
        .expect("ember runs");
    assert!(out.status.success());
    // SAFETY: getrusage only writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) },
        0
    );
    let peak = usage.ru_maxrss as u64 * 1024; // kilobytes on Linux
    let model = std::fs::metadata(common::default_model()).unwrap().len();
    assert!(
        peak < 2 * model,
        "peak RSS {peak} bytes vs model file {model} bytes"
    );
}
