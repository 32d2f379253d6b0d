//! A conversation with a model: the tokens in its KV cache, prefill, decode and stop conditions.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::model::LanguageModel;
use crate::sample::{Sampler, SamplerConfig};
use crate::tokenizer::Tokenizer;

/// Prompt tokens evaluated per forward call, bounding activation memory on long prompts.
const PREFILL_CHUNK: usize = 512;

/// What to generate and when to stop.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Sampling settings.
    pub sampler: SamplerConfig,
    /// Generation stops when the text contains one of these (the stop string is not returned).
    pub stop: Vec<String>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 256,
            sampler: SamplerConfig::default(),
            stop: Vec::new(),
        }
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-sequence / end-of-turn token.
    EndOfSequence,
    /// A stop string appeared.
    StopString,
    /// `max_tokens` were generated.
    MaxTokens,
    /// The context is full.
    ContextFull,
    /// The caller's callback asked to stop.
    Cancelled,
}

/// Wall-clock measurements of one generation.
#[derive(Clone, Debug, Default)]
pub struct Timings {
    /// Prompt tokens evaluated (those not already in the cache).
    pub prompt_tokens: usize,
    /// Time spent evaluating them.
    pub prompt: Duration,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Time from the first to the last generated token's evaluation.
    pub generate: Duration,
    /// Time from the start until the first generated token was known.
    pub first_token: Duration,
}

impl Timings {
    /// Prompt tokens per second.
    pub fn prompt_tps(&self) -> f64 {
        rate(self.prompt_tokens, self.prompt)
    }

    /// Generated tokens per second.
    pub fn generate_tps(&self) -> f64 {
        rate(self.generated_tokens.saturating_sub(1), self.generate)
    }
}

fn rate(n: usize, d: Duration) -> f64 {
    if d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}

/// The result of [`Session::generate`].
#[derive(Clone, Debug)]
pub struct Generation {
    /// Generated ids, including the end-of-sequence token that stopped generation, if any.
    pub ids: Vec<u32>,
    /// The generated text, without a stop string or end-of-sequence token.
    pub text: String,
    /// Why it ended.
    pub stop_reason: StopReason,
    /// Measurements.
    pub timings: Timings,
}

/// A model plus the token sequence its KV cache holds.
pub struct Session<'a> {
    model: &'a mut dyn LanguageModel,
    tokenizer: &'a Tokenizer,
    cached: Vec<u32>,
}

/// Length of the longest suffix of `text` that is a proper prefix of some stop string: text that
/// must be held back because it may yet become a stop string.
fn held_back(text: &str, stops: &[String]) -> usize {
    stops
        .iter()
        .flat_map(|s| {
            (1..s.len())
                .rev()
                .filter(move |&n| s.is_char_boundary(n) && text.ends_with(&s[..n]))
        })
        .max()
        .unwrap_or(0)
}

impl<'a> Session<'a> {
    /// A session with an empty cache.
    pub fn new(model: &'a mut dyn LanguageModel, tokenizer: &'a Tokenizer) -> Session<'a> {
        Session {
            model,
            tokenizer,
            cached: Vec::new(),
        }
    }

    /// The tokens in the KV cache.
    pub fn tokens(&self) -> &[u32] {
        &self.cached
    }

    /// The model.
    pub fn model(&mut self) -> &mut dyn LanguageModel {
        self.model
    }

    /// Makes the cache hold exactly `tokens`, reusing the longest common prefix. Returns the
    /// logits after the last token and how many tokens were evaluated (at least the last one).
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<(Vec<f32>, usize)> {
        let ctx = self.model.context_len();
        if tokens.is_empty() {
            return Err(Error::Invalid("the prompt is empty (no tokens)".into()));
        }
        if tokens.len() > ctx {
            return Err(Error::Invalid(format!(
                "the prompt is {} tokens, longer than the context of {ctx} tokens",
                tokens.len()
            )));
        }
        let common = self
            .cached
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count();
        let start = common.min(tokens.len() - 1);
        self.cached.truncate(start);
        let mut logits = Vec::new();
        for chunk in tokens[start..].chunks(PREFILL_CHUNK) {
            logits = self.model.forward(chunk, self.cached.len(), false)?;
            self.cached.extend_from_slice(chunk);
        }
        Ok((logits, tokens.len() - start))
    }

    /// Continues `prompt` (the whole sequence, cached prefix included). `on_text` receives text as
    /// it becomes final and returns `false` to stop.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        opts: &GenerateOptions,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation> {
        opts.sampler.validate()?;
        let t0 = Instant::now();
        let (mut logits, evaluated) = self.prefill(prompt)?;
        let mut timings = Timings {
            prompt_tokens: evaluated,
            prompt: t0.elapsed(),
            ..Timings::default()
        };
        let mut sampler = Sampler::new(opts.sampler.clone());
        let mut history = prompt.to_vec();
        let mut decoder = self.tokenizer.stream();
        let (mut ids, mut text, mut emitted) = (Vec::new(), String::new(), 0usize);
        let t_gen = Instant::now();
        let ctx = self.model.context_len();
        let mut reason = StopReason::MaxTokens;
        while ids.len() < opts.max_tokens {
            let next = sampler.sample(&mut logits, &history);
            if ids.is_empty() {
                timings.first_token = t0.elapsed();
            }
            ids.push(next);
            history.push(next);
            if self.tokenizer.stop_ids.contains(&next) {
                reason = StopReason::EndOfSequence;
                break;
            }
            if !self.tokenizer.is_control(next) {
                text.push_str(&decoder.push(self.tokenizer.token_bytes(next)));
            }
            if let Some(at) = opts.stop.iter().filter_map(|s| text.find(s.as_str())).min() {
                text.truncate(at);
                reason = StopReason::StopString;
            }
            let safe = if reason == StopReason::StopString {
                text.len()
            } else {
                text.len() - held_back(&text, &opts.stop)
            };
            if safe > emitted {
                let keep_going = on_text(&text[emitted..safe]);
                emitted = safe;
                if !keep_going {
                    reason = StopReason::Cancelled;
                }
            }
            if reason != StopReason::MaxTokens {
                break;
            }
            if ids.len() == opts.max_tokens {
                break;
            }
            if self.cached.len() >= ctx {
                reason = StopReason::ContextFull;
                break;
            }
            logits = self.model.forward(&[next], self.cached.len(), false)?;
            self.cached.push(next);
        }
        if matches!(reason, StopReason::MaxTokens | StopReason::ContextFull) {
            text.push_str(&decoder.finish());
            if text.len() > emitted {
                on_text(&text[emitted..]);
            }
        }
        timings.generated_tokens = ids.len();
        timings.generate = t_gen.elapsed();
        Ok(Generation {
            ids,
            text,
            stop_reason: reason,
            timings,
        })
    }
}
