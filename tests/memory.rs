//! Peak memory of a CPU generation with the default model stays within 40% over the model file
//! (no doubled copy of the weights: the repacked strips replace the file's pages). The rest is
//! fixed cost — the program's code, the tokenizer's tables — about 28 MB, which is 29% of this
//! 98 MB model and a few percent of a 1B one. (Probing GPU drivers, as `--backend auto` does,
//! maps tens of MB of driver code on its own, so the test asks for the CPU.)
//! A test binary of its own: getrusage reports the largest child of the whole process, so no
//! other test may spawn `ember` here.

mod common;

#[cfg(target_os = "linux")]
#[test]
fn peak_memory_stays_within_forty_percent_of_the_model_file() {
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
        peak < model * 14 / 10,
        "peak RSS {peak} bytes vs model file {model} bytes"
    );
}
