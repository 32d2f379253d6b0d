//! Fuzzing Ember's readers of untrusted bytes — GGUF files, Hugging Face folders, chat templates,
//! API request bodies — with a stable, reproducible mutation loop (no nightly toolchain needed).
//!
//! Input `i` of a run with seed `s` is a function of `(s, i)` alone: a seed file from
//! `tests/data` with a few mutations drawn from ChaCha8 seeded by both. So any failure is
//! replayed with `EMBER_FUZZ_SEED=s EMBER_FUZZ_REPLAY=i` (which also saves the input, to be kept
//! under `tests/data/fuzz/TARGET/` as a regression case: every file there runs first, each time).
//! A failure is a panic, an input that takes over a second (over ten seconds ends the run: a
//! hang), or an allocation over 1 GiB (refused by the allocator below; usually fatal).
//!
//! The test suite runs a short, fixed-seed pass of each target; `scripts/fuzz.sh TARGET MINUTES`
//! runs a long one with a fresh seed (`EMBER_FUZZ_SECONDS`, `EMBER_FUZZ_INPUTS` and
//! `EMBER_FUZZ_SEED` set the budget and the seed).

mod guard;
mod mutate;
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use targets::Target;

#[global_allocator]
static ALLOCATOR: guard::Capped = guard::Capped;

/// An input slower than this is a failure (a parser must not take seconds on a small file).
const SLOW: Duration = Duration::from_secs(1);

/// The suite's seed: fixed, so a CI failure replays exactly.
const DEFAULT_SEED: u64 = 0x0045_4d42_4552;

/// One target at a time: the watchdog and the allocator report the input being run.
static SERIAL: Mutex<()> = Mutex::new(());

/// The message of the last panic (the hook's, with its location).
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

fn env_u64(key: &str) -> Option<u64> {
    let v = std::env::var(key).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{key}={v} is not a number")),
    )
}

fn regressions(name: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// The input `index` of a run seeded with `seed`.
fn input(target: &dyn Target, seed: u64, index: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    target.generate(&mut rng)
}

/// Runs the regression cases of `name`, then `inputs` generated inputs (or as many as fit in
/// `EMBER_FUZZ_SECONDS`), and fails listing every input that panicked, ran slow or asked for
/// too much memory.
fn fuzz(name: &'static str, target: &dyn Target, inputs: u64) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for file in regressions(name) {
        let bytes = std::fs::read(&file).expect("regression input");
        let started = Instant::now();
        target.run(&bytes);
        assert!(
            started.elapsed() < SLOW,
            "{}: took {:?}",
            file.display(),
            started.elapsed()
        );
        assert_eq!(
            guard::take_refused(),
            0,
            "{}: a huge allocation",
            file.display()
        );
    }

    let seed = env_u64("EMBER_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let replay = move |i: u64| {
        format!(
            "EMBER_FUZZ_SEED={seed} EMBER_FUZZ_REPLAY={i} cargo test --release --test fuzz -- --exact {name}"
        )
    };
    if let Some(i) = env_u64("EMBER_FUZZ_REPLAY") {
        let bytes = input(target, seed, i);
        let out =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{name}-{seed}-{i}.bin"));
        std::fs::write(&out, &bytes).expect("saving the input");
        eprintln!(
            "input #{i} ({} bytes) saved as {}",
            bytes.len(),
            out.display()
        );
        let started = Instant::now();
        let accepted = target.run(&bytes);
        eprintln!(
            "input #{i} was {} in {:?}",
            if accepted { "accepted" } else { "refused" },
            started.elapsed()
        );
        return;
    }
    let deadline = env_u64("EMBER_FUZZ_SECONDS").map(|s| Instant::now() + Duration::from_secs(s));
    let inputs =
        env_u64("EMBER_FUZZ_INPUTS").unwrap_or(if deadline.is_some() { u64::MAX } else { inputs });

    guard::watch(Box::new(replay));
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        *LAST_PANIC.lock().unwrap_or_else(|p| p.into_inner()) = info.to_string();
    }));
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut run = 0;
    let mut slowest = Duration::ZERO;
    let mut accepted = 0u64;
    while run < inputs && deadline.is_none_or(|d| Instant::now() < d) {
        let bytes = input(target, seed, run);
        guard::started(run);
        let t = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| target.run(&bytes)));
        let took = t.elapsed();
        guard::finished();
        slowest = slowest.max(took);
        let refused = guard::take_refused();
        accepted += u64::from(outcome.as_ref().is_ok_and(|&a| a));
        let problem = match outcome {
            Err(_) => Some(format!(
                "panicked: {}",
                LAST_PANIC.lock().unwrap_or_else(|p| p.into_inner())
            )),
            Ok(_) if refused > 0 => Some(format!("asked for {refused} bytes at once")),
            Ok(_) if took > SLOW => Some(format!("took {took:?}")),
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            failures.push(format!(
                "input #{run}: {problem}\n    replay: {}",
                replay(run)
            ));
        }
        run += 1;
        if run.is_power_of_two() && run >= 1024 {
            eprintln!(
                "fuzz {name}: {run} inputs, {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    std::panic::set_hook(previous_hook);
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "fuzz {name}: {run} inputs ({accepted} accepted) in {secs:.1} s ({:.0}/s, slowest {slowest:?}), seed {seed}, {} failures",
        run as f64 / secs,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "fuzz {name}: {} failing inputs:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn gguf() {
    fuzz("gguf", &targets::Gguf::from_test_data(), 20_000);
}

#[test]
fn hf_folder() {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-hf");
    fuzz("hf_folder", &targets::HfFolder::new(&scratch), 3000);
}

#[test]
fn chat_template() {
    // Each rendering forks the template sandbox (about 3 ms here), hence fewer inputs.
    fuzz(
        "chat_template",
        &targets::ChatTemplate::from_test_data(),
        6000,
    );
}

#[test]
fn openai_request() {
    fuzz(
        "openai_request",
        &targets::OpenAiRequest::from_test_data(),
        50_000,
    );
}
