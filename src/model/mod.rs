//! The transformer forward pass, written once against [`Backend`].

mod transformer;

pub use transformer::{Model, RING_CHUNK};

use crate::error::Result;
use crate::format::ModelConfig;
use crate::format::TensorView;

/// What a session needs from a loaded model, whatever backend runs it.
pub trait LanguageModel {
    /// The architecture hyper-parameters.
    fn config(&self) -> &ModelConfig;
    /// Positions the KV cache holds.
    fn context_len(&self) -> usize;
    /// The backend's name.
    fn backend_name(&self) -> String;
    /// Device memory the backend holds, in bytes.
    fn device_bytes(&self) -> u64;
    /// Starts or stops per-op timing (see [`crate::backend::Backend::set_profiling`]).
    fn set_profiling(&mut self, on: bool);
    /// Time per kind of op since profiling started.
    fn take_profile(&mut self) -> crate::backend::OpTimes;
    /// Runs `ids` at positions `pos0..` through the model, appending to the KV cache. Returns
    /// the logits of every position when `all_logits`, else of the last one only
    /// (`vocab_size` floats per position).
    fn forward(&mut self, ids: &[u32], pos0: usize, all_logits: bool) -> Result<Vec<f32>>;
    /// Sequence slots: KV caches of [`LanguageModel::context_len`] positions each ([`forward`]
    /// uses slot 0).
    ///
    /// [`forward`]: LanguageModel::forward
    fn slots(&self) -> usize;
    /// Where `slot` can continue from when its cache holds `pos` positions of a sequence and the
    /// sequence is to go on at `pos`: `pos`, or 0 when a window-sized cache has already dropped
    /// positions that the window of the next token would need (the sequence is then evaluated
    /// again from the start).
    fn resumable(&self, slot: usize, pos: usize) -> usize;
    /// Runs several sequences in one pass — each chunk's tokens at its positions in its own
    /// slot's cache, every weight read once for all of them — and returns each chunk's last
    /// logits, in order.
    fn forward_batch(&mut self, chunks: &[SeqChunk<'_>]) -> Result<Vec<Vec<f32>>>;
}

/// Tokens of one sequence in a batched forward pass.
#[derive(Clone, Copy, Debug)]
pub struct SeqChunk<'a> {
    /// The sequence's KV-cache slot.
    pub slot: usize,
    /// Its next tokens.
    pub ids: &'a [u32],
    /// Position of the first of them (the tokens before it are in the slot's cache).
    pub pos0: usize,
}

/// A small f32 vector as a tensor view (for derived constants such as rope frequencies).
pub(crate) fn f32_tensor(name: &str, values: &[f32]) -> Result<TensorView> {
    TensorView::owned_f32(name, vec![values.len()], values)
}
