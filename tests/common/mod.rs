//! Helpers shared by the integration tests: data paths, reference files, logit comparison.
#![allow(dead_code)]

use serde_json::Value;

/// Absolute path of a file under `tests/data`.
pub fn data(rel: &str) -> String {
    format!("{}/tests/data/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// The default model shipped in `assets/`.
pub fn default_model() -> String {
    format!(
        "{}/assets/SmolLM2-135M-Instruct.Q4_1.gguf",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Parses a JSON file under `tests/data`.
pub fn json(rel: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(data(rel)).expect("reference file"))
        .expect("valid JSON")
}

/// A JSON array of integers as token ids.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// Checks that, at each position, the reference top-k ids have logits within `tol` of ours and
/// that our top-k ids are the same set (ties within `tol` may reorder).
pub fn assert_top_matches(logits: &[f32], vocab: usize, reference: &Value, tol: f32, what: &str) {
    let positions = reference.as_array().expect("top list");
    assert_eq!(
        logits.len(),
        positions.len() * vocab,
        "{what}: position count"
    );
    for (p, top) in positions.iter().enumerate() {
        let row = &logits[p * vocab..(p + 1) * vocab];
        let want: Vec<(u32, f32)> = top
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e[0].as_u64().unwrap() as u32, e[1].as_f64().unwrap() as f32))
            .collect();
        for &(id, logit) in &want {
            let got = row[id as usize];
            assert!(
                (got - logit).abs() <= tol,
                "{what} position {p}: token {id} logit {got}, reference {logit}"
            );
        }
        let mut order: Vec<u32> = (0..vocab as u32).collect();
        order.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]));
        let kth = want.last().unwrap().1;
        for &id in &order[..want.len()] {
            let in_ref = want.iter().any(|&(w, _)| w == id);
            assert!(
                in_ref || row[id as usize] <= kth + tol,
                "{what} position {p}: token {id} in our top-{} but not the reference's",
                want.len()
            );
        }
    }
}

/// The largest difference between `got` and `want`, relative to `want`'s largest magnitude.
pub fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-20);
    got.iter()
        .zip(want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

/// The GPU APIs to test on. `EMBER_REQUIRE_GPU=1` makes a missing adapter a failure;
/// `EMBER_REQUIRE_GPU=vulkan,gl` requires those two. Otherwise absent adapters are skipped.
pub fn gpu_choices() -> Vec<ember::backend::gpu::GpuChoice> {
    use ember::backend::gpu::{GpuChoice, GpuContext};
    let required = std::env::var("EMBER_REQUIRE_GPU")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut found = Vec::new();
    for (name, choice) in [("vulkan", GpuChoice::Vulkan), ("gl", GpuChoice::Gl)] {
        match GpuContext::new(choice) {
            Ok(_) => found.push(choice),
            Err(e) if required.split(',').any(|r| r.trim() == name) => {
                panic!("EMBER_REQUIRE_GPU asks for {name}: {e}")
            }
            Err(e) => eprintln!("skipping {name}: {e}"),
        }
    }
    if found.is_empty() && !required.is_empty() && required != "0" {
        panic!("EMBER_REQUIRE_GPU={required} but no GPU adapter was found");
    }
    found
}

/// A small deterministic generator (xorshift) for test inputs.
pub struct Rng(pub u64);

impl Rng {
    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        ((self.f32() + 1.0) * 127.99) as u8
    }

    /// `n` values in [-1, 1), none zero.
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let v = self.f32();
                if v == 0.0 { 0.5 } else { v }
            })
            .collect()
    }

    /// A seed from the clock, so every run draws fresh inputs (printed for reproduction:
    /// `EMBER_TEST_SEED=seed` replays a run).
    pub fn fresh(what: &str) -> Rng {
        let seed = std::env::var("EMBER_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            })
            | 1;
        eprintln!("{what}: seed {seed}");
        Rng(seed)
    }
}

/// A random tensor of `rows` rows of `cols` elements in encoding `t`.
pub fn random_tensor(
    rng: &mut Rng,
    t: ember::quant::GgmlType,
    cols: usize,
    rows: usize,
) -> ember::format::TensorView {
    use ember::quant::GgmlType;
    let n = cols * rows;
    let bytes: Vec<u8> = match t {
        GgmlType::F32 => rng.vec(n).iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::F16 => rng
            .vec(n)
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        GgmlType::Bf16 => rng
            .vec(n)
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
        _ => {
            let blocks = n / t.block_elems();
            let mut b: Vec<u8> = (0..blocks * t.block_bytes()).map(|_| rng.byte()).collect();
            for blk in b.chunks_exact_mut(t.block_bytes()) {
                // f16 scales between 1/32 and 1/8.
                for &at in t.scale_high_bytes() {
                    blk[at] = 0x28 + rng.byte() % 8;
                }
            }
            b
        }
    };
    let storage = std::sync::Arc::new(ember::format::storage::Storage::Owned(bytes));
    ember::format::TensorView::new("random".into(), t, vec![cols, rows], storage, 0)
        .expect("valid random tensor")
}
