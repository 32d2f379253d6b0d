//! Accuracy measurements: perplexity over a text with the reference protocol.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::model::LanguageModel;

/// Result of [`perplexity`].
#[derive(Clone, Debug)]
pub struct Perplexity {
    /// exp(mean negative log-likelihood).
    pub ppl: f64,
    /// Sum of negative log-likelihoods (natural log).
    pub total_nll: f64,
    /// Positions scored.
    pub scored: usize,
    /// Tokens in the text.
    pub tokens: usize,
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl Perplexity {
    /// Tokens evaluated per second.
    pub fn tokens_per_second(&self) -> f64 {
        self.tokens as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Negative log-likelihood of `target` under `logits` (a log-softmax in f64).
pub fn nll(logits: &[f32], target: u32) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    max + sum.ln() - logits[target as usize] as f64
}

/// Perplexity of `tokens`: non-overlapping windows of `window` tokens from the start (the last
/// may be shorter); in each window every position but the first is scored, predicted from the
/// window's earlier tokens only. `progress(done, total)` is called after each window.
pub fn perplexity(
    model: &mut dyn LanguageModel,
    tokens: &[u32],
    window: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Perplexity> {
    if window < 2 {
        return Err(Error::Invalid(
            "the window must be at least 2 tokens".into(),
        ));
    }
    if window > model.context_len() {
        return Err(Error::Invalid(format!(
            "a window of {window} tokens exceeds the context of {}",
            model.context_len()
        )));
    }
    if tokens.len() < 2 {
        return Err(Error::Invalid(
            "the text must be at least 2 tokens long".into(),
        ));
    }
    let vocab = model.config().vocab_size;
    let start = Instant::now();
    let (mut total_nll, mut scored) = (0.0f64, 0usize);
    for (i, w) in tokens.chunks(window).enumerate() {
        if w.len() >= 2 {
            let logits = model.forward(w, 0, true)?;
            for (p, &target) in w.iter().enumerate().skip(1) {
                total_nll += nll(&logits[(p - 1) * vocab..p * vocab], target);
                scored += 1;
            }
        }
        progress(((i + 1) * window).min(tokens.len()), tokens.len());
    }
    Ok(Perplexity {
        ppl: (total_nll / scored as f64).exp(),
        total_nll,
        scored,
        tokens: tokens.len(),
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_is_a_log_softmax() {
        let logits = [1.0f32, 2.0, 3.0];
        let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        for t in 0..3 {
            let want = -((logits[t] as f64).exp() / z).ln();
            assert!((nll(&logits, t as u32) - want).abs() < 1e-12);
        }
        // Stable for large logits.
        assert!((nll(&[1000.0, 1000.0], 0) - 2f64.ln()).abs() < 1e-9);
    }
}
