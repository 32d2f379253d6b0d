//! A conversation with a model: the tokens in its KV cache, prefill, decode and stop conditions.

use std::borrow::Borrow;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::model::LanguageModel;
use crate::sample::{Sampler, SamplerConfig};
use crate::tokenizer::{ChatMessage, StreamDecoder, Tokenizer};

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

/// The prompt of a conversation that must leave `reserve` of `ctx` positions for the answer:
/// when it does not fit, the oldest turns go first (whole exchanges: a user message and the
/// replies after it), the system messages stay, as llama.cpp's context shift keeps its first
/// tokens. Returns the prompt and how many messages were dropped from the front of `messages`;
/// an error if even the last message alone (with the system messages) does not fit.
pub fn fit_conversation(
    tokenizer: &Tokenizer,
    messages: &mut Vec<ChatMessage>,
    ctx: usize,
    reserve: usize,
) -> Result<(Vec<u32>, usize)> {
    let mut dropped = 0;
    loop {
        let prompt = tokenizer.encode_chat(messages)?;
        if prompt.len() + reserve <= ctx {
            return Ok((prompt, dropped));
        }
        let first = messages.iter().position(|m| m.role != "system");
        let next_user = first.and_then(|f| {
            messages[f + 1..]
                .iter()
                .position(|m| m.role == "user")
                .map(|i| f + 1 + i)
        });
        let (Some(first), Some(next_user)) = (first, next_user) else {
            return Err(Error::Invalid(format!(
                "the message is {} tokens with the system prompt; the context holds {ctx} and the answer needs {reserve} of them",
                prompt.len()
            )));
        };
        messages.drain(first..next_user);
        dropped += next_user - first;
    }
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
        let start = self.model.resumable(0, common.min(tokens.len() - 1));
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
        let mut answer = Continuation::new(self.tokenizer, prompt, opts);
        let t_gen = Instant::now();
        let ctx = self.model.context_len();
        let reason = loop {
            if opts.max_tokens == 0 {
                break StopReason::MaxTokens;
            }
            let step = answer.step(&mut logits)?;
            if answer.ids().len() == 1 {
                timings.first_token = t0.elapsed();
            }
            if !step.text.is_empty() && !on_text(&step.text) {
                break StopReason::Cancelled;
            }
            if let Some(reason) = step.done {
                break reason;
            }
            if self.cached.len() >= ctx {
                let rest = answer.finish();
                if !rest.is_empty() {
                    on_text(&rest);
                }
                break StopReason::ContextFull;
            }
            logits = self
                .model
                .forward(&[step.token], self.cached.len(), false)?;
            self.cached.push(step.token);
        };
        timings.generated_tokens = answer.ids().len();
        timings.generate = t_gen.elapsed();
        Ok(Generation {
            ids: answer.ids().to_vec(),
            text: answer.text().to_string(),
            stop_reason: reason,
            timings,
        })
    }
}

/// What one [`Continuation::step`] produced.
#[derive(Clone, Debug)]
pub struct Step {
    /// The sampled token.
    pub token: u32,
    /// Text that became final with it (empty while a possible stop string or an incomplete
    /// character is held back).
    pub text: String,
    /// Why the answer ended with this token, if it did.
    pub done: Option<StopReason>,
}

/// One answer being generated, a token at a time: sampling, stop tokens, stop strings,
/// `max_tokens`, and the text released as it becomes final. The model runs elsewhere — a
/// [`Session`] for one conversation, a server stepping many answers in one batch, or the browser
/// engine between awaits — and hands each step the logits after the previous token. `T` is how
/// it holds the tokenizer: borrowed (`&Tokenizer`) or shared (`Arc<Tokenizer>`, where nothing
/// outlives the answer to borrow from).
pub struct Continuation<T: Borrow<Tokenizer>> {
    tokenizer: T,
    sampler: Sampler,
    stop: Vec<String>,
    max_tokens: usize,
    history: Vec<u32>,
    decoder: StreamDecoder,
    ids: Vec<u32>,
    text: String,
    emitted: usize,
}

impl<T: Borrow<Tokenizer>> Continuation<T> {
    /// An answer to `prompt` (its tokens count for the repetition penalties) under `opts`,
    /// whose sampler settings the caller has validated.
    pub fn new(tokenizer: T, prompt: &[u32], opts: &GenerateOptions) -> Self {
        let decoder = tokenizer.borrow().stream();
        Continuation {
            tokenizer,
            sampler: Sampler::new(opts.sampler.clone()),
            stop: opts.stop.clone(),
            max_tokens: opts.max_tokens,
            history: prompt.to_vec(),
            decoder,
            ids: Vec::new(),
            text: String::new(),
            emitted: 0,
        }
    }

    /// The tokens generated so far (a stop token included).
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The answer's text so far (without a stop string or stop token).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Samples the next token from `logits` (the model's output after the previous token) and
    /// returns it with the text it made final and whether the answer ends there; logits holding
    /// NaN or infinity are an [`Error::NonFinite`], not a token.
    pub fn step(&mut self, logits: &mut [f32]) -> Result<Step> {
        if let Some(i) = logits.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!(
                "the logit of token {i} is {} after {} generated tokens",
                logits[i],
                self.ids.len()
            )));
        }
        let token = self.sampler.sample(logits, &self.history);
        self.ids.push(token);
        self.history.push(token);
        let tok = self.tokenizer.borrow();
        let mut done = None;
        if tok.stop_ids.contains(&token) {
            done = Some(StopReason::EndOfSequence);
        } else if !tok.is_control(token) {
            self.text
                .push_str(&self.decoder.push(tok.token_bytes(token)));
        }
        if let Some(at) = self
            .stop
            .iter()
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            self.text.truncate(at);
            let text = self.release(self.text.len());
            return Ok(Step {
                token,
                text,
                done: Some(StopReason::StopString),
            });
        }
        if done.is_none() && self.ids.len() >= self.max_tokens {
            done = Some(StopReason::MaxTokens);
        }
        let text = match done {
            // The end of the answer: whatever was held back is final.
            Some(_) => self.finish(),
            None => self.release(self.text.len() - held_back(&self.text, &self.stop)),
        };
        Ok(Step { token, text, done })
    }

    /// Ends the answer early (the model's context is full, say) and returns the text held back
    /// until now.
    pub fn finish(&mut self) -> String {
        self.text.push_str(&self.decoder.finish());
        self.release(self.text.len())
    }

    /// Releases the text up to byte `upto`.
    fn release(&mut self, upto: usize) -> String {
        let out = self.text[self.emitted.min(upto)..upto].to_string();
        self.emitted = self.emitted.max(upto);
        out
    }
}
