//! Importance matrices: for each weight matrix, how large each of its input columns runs over a
//! calibration text (the mean square of the activations the matrix multiplies). A quantizer
//! that weighs each weight's rounding error by its column's importance spends its precision
//! where the model's outputs depend on it — llama.cpp's `llama-imatrix` / `--imatrix`.
//!
//! - [`collect`]: runs a model over a text and accumulates the statistics.
//! - [`file`]: llama.cpp's formats: the GGUF one (`<tensor>.in_sum2`, `<tensor>.counts`) that
//!   Ember writes and both tools read, and the legacy `.dat` that Ember also reads.

pub mod collect;
pub mod file;
mod recorder;

use std::collections::BTreeMap;

pub use collect::{CollectOptions, collect};

/// One weight matrix's statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Per input column, the sum of the squared activations over every row (token) counted.
    pub sum2: Vec<f64>,
    /// Rows counted.
    pub count: u64,
}

impl Entry {
    /// Per input column, the mean squared activation: the column's importance.
    pub fn importance(&self) -> Vec<f32> {
        let n = self.count.max(1) as f64;
        self.sum2.iter().map(|&s| (s / n) as f32).collect()
    }
}

/// The importance matrix of a model: statistics per weight matrix, and what they came from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportanceMatrix {
    /// Per weight tensor name (`blk.0.attn_q.weight`).
    pub entries: BTreeMap<String, Entry>,
    /// Calibration chunks evaluated.
    pub chunk_count: u32,
    /// Tokens per chunk (0 where the file does not say: legacy files).
    pub chunk_size: u32,
    /// The calibration texts.
    pub datasets: Vec<String>,
    /// The file it was read from, if it was.
    pub source: Option<String>,
}

impl ImportanceMatrix {
    /// The importance of each input column of weight `tensor`, if the matrix has it.
    pub fn importance(&self, tensor: &str) -> Option<Vec<f32>> {
        self.entries.get(tensor).map(Entry::importance)
    }

    /// Adds the rows `x` (`cols` values each) to the statistics of `tensor`.
    pub fn accumulate(&mut self, tensor: &str, x: &[f32], cols: usize) {
        let e = self
            .entries
            .entry(tensor.to_string())
            .or_insert_with(|| Entry {
                sum2: vec![0.0; cols],
                count: 0,
            });
        for row in x.chunks_exact(cols) {
            for (s, &v) in e.sum2.iter_mut().zip(row) {
                *s += f64::from(v) * f64::from(v);
            }
            e.count += 1;
        }
    }
}
