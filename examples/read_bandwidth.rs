//! Measures the machine's memory read bandwidth with N threads: each thread sums its share of a
//! 1 GiB buffer (far larger than any cache), best of several passes. Decode is bandwidth-bound,
//! so this is the roofline `scripts/bench_vs_llamacpp.sh` measures tokens/s against.
//! usage: cargo run --release --example read_bandwidth [THREADS]

use std::time::Instant;

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map(|t| t.parse().expect("THREADS must be a number"))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let words = (1usize << 30) / 8;
    // Distinct values so no page is shared or compressed.
    let buf: Vec<u64> = (0..words as u64).collect();
    let chunk = words.div_ceil(threads);
    let mut best = 0.0f64;
    for _ in 0..5 {
        let start = Instant::now();
        let total: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = buf
                .chunks(chunk)
                .map(|part| s.spawn(move || sum(part)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        let secs = start.elapsed().as_secs_f64();
        std::hint::black_box(total);
        best = best.max((words * 8) as f64 / secs / 1e9);
    }
    println!("{best:.2}");
}

/// Sum with eight independent lanes, so the loop is limited by loads, not by one add chain.
fn sum(part: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    for c in part.chunks_exact(8) {
        for i in 0..8 {
            acc[i] = acc[i].wrapping_add(c[i]);
        }
    }
    acc.iter().fold(0, |a, &b| a.wrapping_add(b))
}
