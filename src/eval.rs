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

/// Result of [`compare`]: how far model B's predictions are from reference model A's.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// Positions compared (every position of every window, the last included).
    pub positions: usize,
    /// Mean KL divergence KL(A ‖ B) of the next-token distributions, in nats.
    pub mean_kld: f64,
    /// Largest KL divergence at one position.
    pub max_kld: f64,
    /// 99th percentile of the per-position KL divergence.
    pub p99_kld: f64,
    /// Share of positions where both models' most likely token is the same.
    pub top1_agreement: f64,
    /// Perplexity of A over the scored positions.
    pub ppl_a: f64,
    /// Perplexity of B over the scored positions.
    pub ppl_b: f64,
}

/// Log-softmax of one row of logits, in f64.
fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max
        + logits
            .iter()
            .map(|&l| (l as f64 - max).exp())
            .sum::<f64>()
            .ln();
    logits.iter().map(|&l| l as f64 - lse).collect()
}

/// Index of the largest logit (the first of equals).
fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

/// Compares model `b` with reference `a` over `tokens`, in the windows [`perplexity`] uses:
/// KL(A ‖ B) and top-1 agreement at every position, and both perplexities. The models must share
/// a vocabulary.
pub fn compare(
    a: &mut dyn LanguageModel,
    b: &mut dyn LanguageModel,
    tokens: &[u32],
    window: usize,
) -> Result<Comparison> {
    let vocab = a.config().vocab_size;
    if b.config().vocab_size != vocab {
        return Err(Error::Invalid(format!(
            "the models' vocabularies differ ({vocab} and {} tokens): their predictions cannot be compared",
            b.config().vocab_size
        )));
    }
    if window < 2 || window > a.context_len().min(b.context_len()) {
        return Err(Error::Invalid(format!(
            "the window must be 2..={} tokens",
            a.context_len().min(b.context_len())
        )));
    }
    if tokens.len() < 2 {
        return Err(Error::Invalid(
            "the text must be at least 2 tokens long".into(),
        ));
    }
    let (mut klds, mut agree) = (Vec::new(), 0usize);
    let (mut nll_a, mut nll_b, mut scored) = (0.0f64, 0.0f64, 0usize);
    for w in tokens.chunks(window) {
        let (la, lb) = (a.forward(w, 0, true)?, b.forward(w, 0, true)?);
        for (p, (ra, rb)) in la
            .chunks_exact(vocab)
            .zip(lb.chunks_exact(vocab))
            .enumerate()
        {
            let (pa, pb) = (log_softmax(ra), log_softmax(rb));
            let kld: f64 = pa.iter().zip(&pb).map(|(&x, &y)| x.exp() * (x - y)).sum();
            klds.push(kld.max(0.0));
            agree += usize::from(argmax(ra) == argmax(rb));
            if let Some(&next) = w.get(p + 1) {
                nll_a -= pa[next as usize];
                nll_b -= pb[next as usize];
                scored += 1;
            }
        }
    }
    let positions = klds.len();
    let mean_kld = klds.iter().sum::<f64>() / positions as f64;
    let mut sorted = klds.clone();
    sorted.sort_by(f64::total_cmp);
    let Some(&max_kld) = sorted.last() else {
        return Err(Error::Backend(
            "the models returned no logits to compare".into(),
        ));
    };
    Ok(Comparison {
        positions,
        mean_kld,
        max_kld,
        p99_kld: sorted[(positions * 99 / 100).min(positions - 1)],
        top1_agreement: agree as f64 / positions as f64,
        ppl_a: (nll_a / scored.max(1) as f64).exp(),
        ppl_b: (nll_b / scored.max(1) as f64).exp(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_normalises_and_argmax_takes_the_first_of_equals() {
        let l = log_softmax(&[1.0, 3.0, 3.0, -2.0]);
        assert!((l.iter().map(|v| v.exp()).sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -2.0]), 1);
    }

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
