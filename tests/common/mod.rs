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
