//! Running a model over a calibration text to measure its importance matrix, the way
//! `llama-imatrix` does: the text's tokens (BOS first, where the model wants one) cut into
//! chunks of `chunk` tokens, each evaluated from an empty cache with its first token replaced
//! by BOS; every product of at least 16 rows with a layer's weight (and the output head's, with
//! `process_output`) adds the squares of its input activations.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::ModelFile;
use crate::model::{LanguageModel, Model};

use super::ImportanceMatrix;
use super::recorder::Recorder;

/// Options of [`collect`].
#[derive(Clone, Debug)]
pub struct CollectOptions {
    /// Tokens per chunk (llama-imatrix's `-c`, 512 by default).
    pub chunk: usize,
    /// Evaluate at most this many chunks.
    pub max_chunks: Option<usize>,
    /// Also measure the output head (llama-imatrix's `--process-output`).
    pub process_output: bool,
}

impl Default for CollectOptions {
    fn default() -> Self {
        CollectOptions {
            chunk: 512,
            max_chunks: None,
            process_output: false,
        }
    }
}

/// Whether weight `name` is measured: the layers' matrices, and the output head if asked.
fn watched(name: &str, process_output: bool) -> bool {
    name.starts_with("blk.") || (process_output && name == "output.weight")
}

/// Measures the importance matrix of `file`'s model over `tokens` on `backend`.
/// `progress(done, total)` is called after each chunk.
pub fn collect<B: Backend>(
    file: &ModelFile,
    backend: B,
    tokens: &[u32],
    options: &CollectOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportanceMatrix> {
    let chunk = options.chunk;
    if chunk < 16 {
        return Err(Error::Invalid(format!(
            "chunks of {chunk} tokens are too short: products of fewer than 16 rows are not measured"
        )));
    }
    let available = tokens.len() / chunk;
    if available == 0 {
        return Err(Error::Invalid(format!(
            "the calibration text has {} tokens, fewer than one chunk of {chunk}",
            tokens.len()
        )));
    }
    if options.max_chunks == Some(0) {
        return Err(Error::Invalid("--chunks 0 would measure nothing".into()));
    }
    let chunks = options.max_chunks.map_or(available, |m| m.min(available));
    let process_output = options.process_output;
    let recorder = Recorder::new(backend, move |name| watched(name, process_output));
    let mut model = Model::new(file, recorder, chunk)?;
    let bos = file.tokenizer.bos.filter(|_| file.tokenizer.add_bos);
    for (i, c) in tokens.chunks_exact(chunk).take(chunks).enumerate() {
        let mut c = c.to_vec();
        if let Some(bos) = bos {
            c[0] = bos;
        }
        model.forward(&c, 0, process_output)?;
        progress(i + 1, chunks);
    }
    let mut m = std::mem::take(&mut model.backend().stats);
    m.chunk_count = chunks as u32;
    m.chunk_size = chunk as u32;
    Ok(m)
}
