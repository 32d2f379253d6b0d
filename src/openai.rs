//! OpenAI-shaped requests — chat and text completions — and their checks, shared by `ember
//! serve` and the browser engine. What is not supported is refused naming the parameter, never
//! silently ignored; fields a client sends for other servers' features and that change nothing
//! here (`user`, `metadata`, `store`, …) are ignored, as OpenAI-compatible servers do.

use serde::Deserialize;
use serde_json::json;

use crate::sample::SamplerConfig;
use crate::session::GenerateOptions;
use crate::tokenizer::{ChatMessage, Tokenizer};

/// A request that cannot be served as asked: OpenAI's `invalid_request_error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// What went wrong, for a person.
    pub message: String,
    /// The request parameter at fault.
    pub param: Option<String>,
    /// A machine-readable code (`context_length_exceeded`, …).
    pub code: Option<&'static str>,
}

impl RequestError {
    /// An error about `param`.
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> RequestError {
        RequestError {
            message: message.into(),
            param: param.map(str::to_string),
            code: None,
        }
    }

    /// Sets the machine-readable code.
    pub fn code(mut self, code: &'static str) -> RequestError {
        self.code = Some(code);
        self
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.param {
            Some(p) => write!(f, "{p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for RequestError {}

/// `stop`: one string or several.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Up to four.
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Deserialize, Debug, Default)]
pub struct StreamOptions {
    /// Send a last chunk with the usage counts.
    #[serde(default)]
    pub include_usage: bool,
}

/// The generation parameters chat and text completions share.
#[derive(Deserialize, Debug, Default)]
pub struct Params {
    /// The model's id (`GET /v1/models`); absent means the one served.
    pub model: Option<String>,
    /// Most tokens to generate.
    pub max_tokens: Option<u64>,
    /// Newer name of `max_tokens` (chat).
    pub max_completion_tokens: Option<u64>,
    /// 0 to 2; 0 is greedy.
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    pub top_p: Option<f32>,
    /// llama-server's extension: keep the k most likely tokens.
    pub top_k: Option<usize>,
    /// llama-server's extension: drop tokens below this share of the most likely.
    pub min_p: Option<f32>,
    /// llama-server's extension: CTRL repetition penalty.
    pub repeat_penalty: Option<f32>,
    /// Seed of the sampler's random stream.
    pub seed: Option<u64>,
    /// Stop strings.
    pub stop: Option<Stop>,
    /// Answers per request (only 1).
    pub n: Option<u64>,
    /// OpenAI's presence penalty, -2 to 2.
    pub presence_penalty: Option<f32>,
    /// OpenAI's frequency penalty, -2 to 2.
    pub frequency_penalty: Option<f32>,
    /// Stream the answer as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
    /// Log-probabilities (not supported: refused when asked for).
    pub logprobs: Option<serde_json::Value>,
    /// Token biases (not supported: refused when not empty).
    pub logit_bias: Option<serde_json::Map<String, serde_json::Value>>,
    /// Tool definitions (not supported: refused when not empty).
    pub tools: Option<Vec<serde_json::Value>>,
    /// Output format (only `text`).
    pub response_format: Option<serde_json::Value>,
    /// Completions: echo the prompt (not supported).
    pub echo: Option<bool>,
    /// Completions: text after the insertion point (not supported).
    pub suffix: Option<String>,
    /// Completions: candidates to rank (only 1).
    pub best_of: Option<u64>,
}

/// A chat message's content: text, or a list of parts of which only text is supported.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts.
    Parts(Vec<Part>),
}

/// One content part.
#[derive(Deserialize, Debug)]
pub struct Part {
    /// `text` (images and audio are not supported).
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    pub text: Option<String>,
}

/// One message of a chat.
#[derive(Deserialize, Debug)]
pub struct Message {
    /// `system`, `developer`, `user` or `assistant`.
    pub role: String,
    /// Its content (may be null for an assistant turn).
    pub content: Option<Content>,
}

/// `POST /v1/chat/completions`.
#[derive(Deserialize, Debug)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<Message>,
    /// Everything else.
    #[serde(flatten)]
    pub params: Params,
}

/// A completion prompt: text, a one-element list of text, or token ids.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Prompt {
    /// Text.
    Text(String),
    /// Texts (only one).
    Texts(Vec<String>),
    /// Token ids.
    Tokens(Vec<u32>),
}

/// `POST /v1/completions`.
#[derive(Deserialize, Debug)]
pub struct CompletionRequest {
    /// The text to continue.
    pub prompt: Prompt,
    /// Everything else.
    #[serde(flatten)]
    pub params: Params,
}

/// A request body with generation parameters.
pub trait Request: for<'de> Deserialize<'de> {
    /// Its parameters.
    fn params(&self) -> &Params;
}

impl Request for ChatRequest {
    fn params(&self) -> &Params {
        &self.params
    }
}

impl Request for CompletionRequest {
    fn params(&self) -> &Params {
        &self.params
    }
}

impl ChatRequest {
    /// The conversation as the chat template takes it.
    pub fn messages(&self) -> Result<Vec<ChatMessage>, RequestError> {
        if self.messages.is_empty() {
            return Err(RequestError::invalid(
                Some("messages"),
                "messages must hold at least one message",
            ));
        }
        self.messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let param = format!("messages[{i}]");
                let role = match m.role.as_str() {
                    "system" | "developer" => "system",
                    "user" => "user",
                    "assistant" => "assistant",
                    other => {
                        return Err(RequestError::invalid(
                            Some(&format!("{param}.role")),
                            format!(
                                "unknown role '{other}': use system, developer, user or assistant"
                            ),
                        ));
                    }
                };
                let text = match &m.content {
                    None if role == "assistant" => String::new(),
                    None => {
                        return Err(RequestError::invalid(
                            Some(&format!("{param}.content")),
                            "content is required",
                        ));
                    }
                    Some(Content::Text(t)) => t.clone(),
                    Some(Content::Parts(parts)) => {
                        let mut text = String::new();
                        for (j, p) in parts.iter().enumerate() {
                            match (p.kind.as_str(), &p.text) {
                                ("text", Some(t)) => text.push_str(t),
                                (kind, _) => {
                                    return Err(RequestError::invalid(
                                        Some(&format!("{param}.content[{j}]")),
                                        format!(
                                            "content parts of type '{kind}' are not supported (only text)"
                                        ),
                                    ));
                                }
                            }
                        }
                        text
                    }
                };
                Ok(ChatMessage::new(role, &text))
            })
            .collect()
    }
}

impl CompletionRequest {
    /// The prompt's token ids: text encoded by `tokenizer` (specials parsed), or ids checked
    /// against a vocabulary of `vocab` entries. An empty prompt is refused: the answer needs a
    /// token to follow.
    pub fn prompt_ids(
        &self,
        tokenizer: &Tokenizer,
        vocab: usize,
    ) -> Result<Vec<u32>, RequestError> {
        let encode = |text: &str| {
            tokenizer
                .encode(text, true)
                .map_err(|e| RequestError::invalid(Some("prompt"), e.to_string()))
        };
        let ids = match &self.prompt {
            Prompt::Text(t) => encode(t)?,
            Prompt::Texts(v) if v.len() == 1 => encode(&v[0])?,
            Prompt::Texts(_) => {
                return Err(RequestError::invalid(
                    Some("prompt"),
                    "one prompt per request is supported",
                ));
            }
            Prompt::Tokens(ids) => {
                if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
                    return Err(RequestError::invalid(
                        Some("prompt"),
                        format!("token id {bad} is outside the vocabulary of {vocab}"),
                    ));
                }
                ids.clone()
            }
        };
        if ids.is_empty() {
            return Err(RequestError::invalid(Some("prompt"), "the prompt is empty"));
        }
        Ok(ids)
    }
}

impl Params {
    /// Refuses what is not supported, then the generation options for a prompt (request
    /// parameter `prompt_param`) of `prompt_len` tokens in a context of `ctx` (`max_tokens`
    /// capped by what is left).
    pub fn options(
        &self,
        prompt_len: usize,
        ctx: usize,
        prompt_param: &str,
    ) -> Result<GenerateOptions, RequestError> {
        let unsupported = |param: &str, what: &str| {
            Err(RequestError::invalid(
                Some(param),
                format!("{what} is not supported by this server"),
            ))
        };
        if self.n.is_some_and(|n| n != 1) {
            return unsupported("n", "more than one choice per request");
        }
        if self.best_of.is_some_and(|n| n != 1) {
            return unsupported("best_of", "best_of other than 1");
        }
        if self
            .logprobs
            .as_ref()
            .is_some_and(|v| !v.is_null() && *v != json!(false))
        {
            return unsupported("logprobs", "logprobs");
        }
        if self.logit_bias.as_ref().is_some_and(|m| !m.is_empty()) {
            return unsupported("logit_bias", "logit_bias");
        }
        if self.tools.as_ref().is_some_and(|t| !t.is_empty()) {
            return unsupported("tools", "tool calling");
        }
        if let Some(f) = &self.response_format
            && f.get("type").and_then(|t| t.as_str()) != Some("text")
        {
            return unsupported("response_format", "a response format other than text");
        }
        if self.echo == Some(true) {
            return unsupported("echo", "echo");
        }
        if self.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
            return unsupported("suffix", "suffix (insertion)");
        }
        if prompt_len >= ctx {
            return Err(RequestError::invalid(
                Some(prompt_param),
                format!(
                    "the prompt is {prompt_len} tokens, but the context holds {ctx} tokens per slot and the answer needs at least one"
                ),
            )
            .code("context_length_exceeded"));
        }
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) if v.len() > 4 => {
                return Err(RequestError::invalid(
                    Some("stop"),
                    "at most 4 stop sequences are allowed",
                ));
            }
            Some(Stop::Many(v)) => v.clone(),
        };
        if stop.iter().any(String::is_empty) {
            return Err(RequestError::invalid(
                Some("stop"),
                "stop sequences must not be empty",
            ));
        }
        let left = ctx - prompt_len;
        let max_tokens = match self.max_completion_tokens.or(self.max_tokens) {
            Some(0) => {
                return Err(RequestError::invalid(
                    Some("max_tokens"),
                    "max_tokens must be at least 1",
                ));
            }
            Some(n) => (n.min(left as u64)) as usize,
            None => left,
        };
        let temperature = self.temperature.unwrap_or(0.8);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(RequestError::invalid(
                Some("temperature"),
                "temperature must be between 0 and 2",
            ));
        }
        let defaults = SamplerConfig::default();
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        let sampler = SamplerConfig {
            temperature,
            top_k: self.top_k.unwrap_or(defaults.top_k),
            top_p: self.top_p.unwrap_or(defaults.top_p),
            min_p: self.min_p.unwrap_or(defaults.min_p),
            repeat_penalty: self.repeat_penalty.unwrap_or(1.0),
            presence_penalty: self.presence_penalty.unwrap_or(0.0),
            frequency_penalty: self.frequency_penalty.unwrap_or(0.0),
            seed,
            ..defaults
        };
        if let Err(e) = sampler.validate() {
            let param = match e.to_string() {
                m if m.contains("top-p") => "top_p",
                m if m.contains("min-p") => "min_p",
                m if m.contains("presence") => "presence_penalty",
                m if m.contains("repeat") => "repeat_penalty",
                _ => "temperature",
            };
            return Err(RequestError::invalid(Some(param), e.to_string()));
        }
        Ok(GenerateOptions {
            max_tokens,
            sampler,
            stop,
        })
    }

    /// Whether the last streamed chunk carries the usage counts.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }
}
