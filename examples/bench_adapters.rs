//! Benchmarks a model (default: the one in assets/) on the CPU and on every GPU API this machine
//! has an adapter for, through the library API, and prints a llama-bench style table.
//! `cargo run --release --example bench_adapters [-- MODEL]`

use ember::bench::{BenchConfig, measure, parse_backends, to_markdown};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .map(Into::into)
        .unwrap_or_else(ember::default_model_path);
    let cfg = BenchConfig {
        n_prompt: 64,
        n_gen: 32,
        reps: 3,
        precision: Default::default(),
    };
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut records = Vec::new();
    for backend in parse_backends("all")? {
        eprintln!(
            "measuring on {}",
            backend.map_or("cpu".into(), |b| format!("{b:?}"))
        );
        records.extend(measure(&path, backend, &cfg, threads, false)?);
    }
    print!("{}", to_markdown(&records));
    Ok(())
}
