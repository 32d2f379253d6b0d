//! A stand-in for a fine-tune, for measuring model deltas (`scripts/delta_sizes.sh`): copies a
//! GGUF with a share of its tensors (weight matrices, picked at random) nudged — each value
//! moved by a small random fraction of the tensor's mean magnitude, then encoded again in the
//! tensor's own type — and everything else byte for byte.
//!
//! Usage: `cargo run --release --example perturb -- IN OUT [SHARE] [SCALE]` (defaults 0.1 of the
//! tensors, 0.02).

use ember::format::gguf::GgufFile;
use rand::{Rng, SeedableRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output, rest @ ..] = args.as_slice() else {
        return Err("usage: perturb IN OUT [SHARE] [SCALE]".into());
    };
    let share: f64 = rest.first().map_or(Ok(0.1), |s| s.parse())?;
    let scale: f32 = rest.get(1).map_or(Ok(0.02), |s| s.parse())?;
    let gguf = GgufFile::open(input.as_ref())?;
    let mut bytes = std::fs::read(input)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut matrices: Vec<_> = gguf
        .tensors
        .iter()
        .filter(|t| gguf.tensor(&t.name).is_some_and(|v| v.rows() > 1))
        .collect();
    let count = (share * gguf.tensors.len() as f64).ceil() as usize;
    // A seeded shuffle: the first `count` are changed.
    for i in (1..matrices.len()).rev() {
        matrices.swap(i, rng.random_range(0..=i));
    }
    let mut changed = 0;
    for info in matrices.into_iter().take(count) {
        let Some(view) = gguf.tensor(&info.name) else {
            continue;
        };
        let mut values = view.to_f32();
        let mean = values.iter().map(|v| v.abs()).sum::<f32>() / values.len() as f32;
        for v in &mut values {
            *v += mean * scale * rng.random_range(-1.0f32..1.0);
        }
        let encoded = info.dtype.quantize(&values)?;
        let at = gguf.data_offset + info.offset;
        bytes[at..at + encoded.len()].copy_from_slice(&encoded);
        changed += 1;
    }
    std::fs::write(output, bytes)?;
    eprintln!(
        "{output}: {changed} of {} tensors perturbed",
        gguf.tensors.len()
    );
    Ok(())
}
