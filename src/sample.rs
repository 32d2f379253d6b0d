//! Turning logits into the next token: greedy, temperature, top-k, top-p, min-p and a
//! repetition penalty, with a seeded portable RNG.
//!
//! Order, as llama.cpp applies them: repetition penalty on the logits, then top-k, top-p and
//! min-p on the probabilities at temperature 1, then temperature on what is left, then a draw.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// Sampling settings. Neutral values switch a stage off.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    /// Softmax temperature; `0` means greedy (argmax).
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens (`0`: all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability adds up to `top_p` (`1`: all).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one (`0`: none).
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recently seen tokens by this (`1`: off).
    pub repeat_penalty: f32,
    /// Subtract this from the logit of every token seen recently (OpenAI's presence penalty,
    /// `0`: off).
    pub presence_penalty: f32,
    /// Subtract this times the number of recent occurrences from a token's logit (OpenAI's
    /// frequency penalty, `0`: off).
    pub frequency_penalty: f32,
    /// How many recent tokens the penalties look at.
    pub repeat_last_n: usize,
    /// Random seed.
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        SamplerConfig {
            temperature: 0.0,
            ..Default::default()
        }
    }

    /// Refuses values outside each setting's domain.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Invalid(what.to_string()));
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad("temperature must be a finite number >= 0");
        }
        if !(0.0..=1.0).contains(&self.top_p) || self.top_p == 0.0 {
            return bad("top-p must be in (0, 1]");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min-p must be in [0, 1]");
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return bad("repeat penalty must be a finite number > 0");
        }
        if !(-2.0..=2.0).contains(&self.presence_penalty)
            || !(-2.0..=2.0).contains(&self.frequency_penalty)
        {
            return bad("presence and frequency penalties must be in [-2, 2]");
        }
        Ok(())
    }
}

/// Index of the largest logit (the lowest index among equals).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// The `k` largest logits as `(id, logit)`, largest first.
pub fn top_k(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    let k = k.min(ids.len());
    if k == 0 {
        return Vec::new();
    }
    ids.select_nth_unstable_by(k - 1, |&a, &b| {
        logits[b as usize].total_cmp(&logits[a as usize])
    });
    ids.truncate(k);
    ids.sort_by(|&a, &b| {
        logits[b as usize]
            .total_cmp(&logits[a as usize])
            .then(a.cmp(&b))
    });
    ids.into_iter().map(|i| (i, logits[i as usize])).collect()
}

/// Applies the CTRL-style repetition penalty to the tokens in `recent`.
pub fn apply_repeat_penalty(logits: &mut [f32], recent: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = std::collections::HashSet::new();
    for &id in recent {
        if let Some(l) = logits.get_mut(id as usize).filter(|_| seen.insert(id)) {
            *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
        }
    }
}

/// Applies OpenAI's presence and frequency penalties for the tokens in `recent`:
/// `logit -= count * frequency + (count > 0) * presence`.
pub fn apply_presence_frequency(logits: &mut [f32], recent: &[u32], presence: f32, frequency: f32) {
    if presence == 0.0 && frequency == 0.0 {
        return;
    }
    let mut counts = std::collections::HashMap::new();
    for &id in recent {
        *counts.entry(id).or_insert(0u32) += 1;
    }
    for (id, n) in counts {
        if let Some(l) = logits.get_mut(id as usize) {
            *l -= n as f32 * frequency + presence;
        }
    }
}

/// The tokens that survive top-k, top-p and min-p, with their probabilities after temperature,
/// normalised, most likely first.
pub fn candidates(logits: &[f32], cfg: &SamplerConfig) -> Vec<(u32, f32)> {
    let k = if cfg.top_k == 0 {
        logits.len()
    } else {
        cfg.top_k
    };
    let mut c = top_k(logits, k);
    let max = c[0].1;
    let probs: Vec<f64> = c.iter().map(|&(_, l)| ((l - max) as f64).exp()).collect();
    let total: f64 = probs.iter().sum();
    // top-p: the shortest prefix reaching the mass (always at least one token).
    let mut keep = c.len();
    let mut cum = 0.0;
    for (i, p) in probs.iter().enumerate() {
        cum += p / total;
        if cum >= cfg.top_p as f64 {
            keep = i + 1;
            break;
        }
    }
    // min-p: relative to the most likely token (probs[0] / total).
    let floor = cfg.min_p as f64 * probs[0];
    keep = keep.min(probs.iter().take_while(|&&p| p >= floor).count().max(1));
    c.truncate(keep);
    let t = cfg.temperature.max(f32::MIN_POSITIVE) as f64;
    let weights: Vec<f64> = c
        .iter()
        .map(|&(_, l)| (((l - max) as f64) / t).exp())
        .collect();
    let sum: f64 = weights.iter().sum();
    c.iter()
        .zip(weights)
        .map(|(&(id, _), w)| (id, (w / sum) as f32))
        .collect()
}

/// A sampler with its own random stream.
pub struct Sampler {
    cfg: SamplerConfig,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// A sampler seeded with `cfg.seed`.
    pub fn new(cfg: SamplerConfig) -> Sampler {
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        Sampler { cfg, rng }
    }

    /// The settings.
    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Picks the next token from `logits`, given the tokens seen so far.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let recent = &history[history.len().saturating_sub(self.cfg.repeat_last_n)..];
        apply_repeat_penalty(logits, recent, self.cfg.repeat_penalty);
        let (presence, frequency) = (self.cfg.presence_penalty, self.cfg.frequency_penalty);
        apply_presence_frequency(logits, recent, presence, frequency);
        if self.cfg.temperature == 0.0 {
            return argmax(logits);
        }
        let c = candidates(logits, &self.cfg);
        let mut r: f32 = self.rng.random();
        for &(id, p) in &c {
            if r < p {
                return id;
            }
            r -= p;
        }
        c.last().map(|&(id, _)| id).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(temperature: f32, top_k: usize, top_p: f32, min_p: f32) -> SamplerConfig {
        SamplerConfig {
            temperature,
            top_k,
            top_p,
            min_p,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 1,
            ..SamplerConfig::default()
        }
    }

    /// Logits whose softmax is exactly `probs`.
    fn logits_of(probs: &[f32]) -> Vec<f32> {
        probs.iter().map(|p| p.ln()).collect()
    }

    #[test]
    fn greedy_takes_the_argmax() {
        let mut s = Sampler::new(SamplerConfig::greedy());
        let mut l = vec![0.3, 2.5, -1.0, 2.4, 0.0];
        assert_eq!(s.sample(&mut l, &[]), 1);
    }

    #[test]
    fn top_k_keeps_the_k_best() {
        let c = candidates(&logits_of(&[0.1, 0.4, 0.2, 0.3]), &cfg(1.0, 2, 1.0, 0.0));
        let ids: Vec<u32> = c.iter().map(|x| x.0).collect();
        assert_eq!(ids, vec![1, 3]);
        assert!((c[0].1 - 4.0 / 7.0).abs() < 1e-6 && (c[1].1 - 3.0 / 7.0).abs() < 1e-6);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_the_mass() {
        let l = logits_of(&[0.5, 0.3, 0.15, 0.05]);
        let ids = |p| {
            candidates(&l, &cfg(1.0, 0, p, 0.0))
                .iter()
                .map(|x| x.0)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(0.5), vec![0]);
        assert_eq!(ids(0.79), vec![0, 1]);
        assert_eq!(ids(0.81), vec![0, 1, 2]);
        assert_eq!(ids(1.0), vec![0, 1, 2, 3]);
    }

    #[test]
    fn min_p_drops_tokens_below_the_fraction_of_the_best() {
        let l = logits_of(&[0.5, 0.3, 0.15, 0.05]);
        let ids: Vec<u32> = candidates(&l, &cfg(1.0, 0, 1.0, 0.2))
            .iter()
            .map(|x| x.0)
            .collect();
        // 0.2 * 0.5 = 0.1: 0.15 stays, 0.05 goes.
        assert_eq!(ids, vec![0, 1, 2]);
    }

    #[test]
    fn temperature_sharpens_and_flattens() {
        let l = logits_of(&[0.6, 0.4]);
        let p = |t| candidates(&l, &cfg(t, 0, 1.0, 0.0))[0].1;
        assert!((p(1.0) - 0.6).abs() < 1e-6);
        // p ∝ exp(l / T): at T = 0.5 the ratio squares.
        assert!((p(0.5) - 0.36 / (0.36 + 0.16)).abs() < 1e-6);
        assert!(p(4.0) < 0.6 && p(4.0) > 0.5);
    }

    #[test]
    fn repeat_penalty_follows_its_definition() {
        let mut l = vec![2.0, -2.0, 1.0];
        apply_repeat_penalty(&mut l, &[0, 1, 1], 2.0);
        assert_eq!(l, vec![1.0, -4.0, 1.0]);
    }

    #[test]
    fn presence_and_frequency_penalties_follow_their_definition() {
        let mut l = vec![2.0, -2.0, 1.0];
        apply_presence_frequency(&mut l, &[0, 1, 1], 0.5, 0.25);
        assert_eq!(l, vec![1.25, -3.0, 1.0]);
    }

    #[test]
    fn sampling_frequencies_follow_the_distribution() {
        let l = logits_of(&[0.7, 0.2, 0.1]);
        let mut s = Sampler::new(cfg(1.0, 0, 1.0, 0.0));
        let mut counts = [0usize; 3];
        for _ in 0..20000 {
            counts[s.sample(&mut l.clone(), &[]) as usize] += 1;
        }
        for (c, p) in counts.iter().zip([0.7, 0.2, 0.1]) {
            assert!((*c as f64 / 20000.0 - p).abs() < 0.015, "{counts:?}");
        }
    }

    #[test]
    fn same_seed_same_stream() {
        let l: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin()).collect();
        let run = |seed| {
            let mut s = Sampler::new(SamplerConfig {
                seed,
                ..cfg(1.0, 0, 1.0, 0.0)
            });
            (0..30)
                .map(|_| s.sample(&mut l.clone(), &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn invalid_settings_are_refused() {
        assert!(cfg(-1.0, 0, 1.0, 0.0).validate().is_err());
        assert!(cfg(f32::NAN, 0, 1.0, 0.0).validate().is_err());
        assert!(cfg(1.0, 0, 0.0, 0.0).validate().is_err());
        assert!(cfg(1.0, 0, 1.0, 1.5).validate().is_err());
        assert!(cfg(1.0, 0, 1.0, 0.0).validate().is_ok());
    }
}
