//! The OpenAI response shapes: a whole `chat.completion` / `text_completion` object, or its
//! stream of chunks as server-sent events ending with `data: [DONE]`.

use std::convert::Infallible;

use axum::Json;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_stream::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::api::ApiError;
use super::engine::{Event, Summary};
use super::metrics::finish_reason;

/// Which endpoint answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Text,
}

impl Kind {
    /// Prefix of response ids.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Kind::Chat => "chatcmpl",
            Kind::Text => "cmpl",
        }
    }

    fn object(self, chunk: bool) -> &'static str {
        match (self, chunk) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Text, _) => "text_completion",
        }
    }
}

/// What every response object of one request repeats.
pub struct Head {
    /// Response id.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// Model id.
    pub model: String,
    /// Endpoint.
    pub kind: Kind,
}

impl Head {
    fn object(&self, chunk: bool, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": self.kind.object(chunk),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": concat!("ember-", env!("CARGO_PKG_VERSION")),
            "choices": choices,
        })
    }

    /// One choice holding `text` (a message, a delta or a text completion).
    fn choice(&self, text: &str, finish: Option<&str>, chunk: bool) -> Value {
        match (self.kind, chunk) {
            (Kind::Chat, false) => json!({
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": null,
                "finish_reason": finish,
            }),
            (Kind::Chat, true) => {
                let delta = if finish.is_some() && text.is_empty() {
                    json!({})
                } else {
                    json!({"content": text})
                };
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
            }
            (Kind::Text, _) => json!({
                "index": 0,
                "text": text,
                "logprobs": null,
                "finish_reason": finish,
            }),
        }
    }
}

/// OpenAI's usage object.
fn usage(s: &Summary) -> Value {
    json!({
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "total_tokens": s.prompt_tokens + s.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": s.cached_tokens},
    })
}

fn failed(message: String) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
}

/// Waits for the whole answer and returns it as one object.
pub async fn collect(head: Head, mut rx: UnboundedReceiver<Event>) -> Response {
    let mut text = String::new();
    while let Some(event) = rx.recv().await {
        match event {
            Event::Text(t) => text.push_str(&t),
            Event::Failed(m) => return failed(m).into_response(),
            Event::Done(s) => {
                let choice = head.choice(&text, Some(finish_reason(s.reason)), false);
                let mut body = head.object(false, json!([choice]));
                body["usage"] = usage(&s);
                return Json(body).into_response();
            }
        }
    }
    failed("the answer ended without a result".into()).into_response()
}

fn sse(v: &Value) -> String {
    format!("data: {v}\n\n")
}

/// The answer as server-sent events: (chat) a first chunk with the role, a chunk per piece of
/// text, a last chunk with the finish reason, the usage when asked for, then `[DONE]`.
pub fn stream(
    head: Head,
    rx: UnboundedReceiver<Event>,
    include_usage: bool,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let first = match head.kind {
        Kind::Chat => {
            let role = json!([{
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": null,
                "finish_reason": null,
            }]);
            sse(&head.object(true, role))
        }
        Kind::Text => String::new(),
    };
    let events = UnboundedReceiverStream::new(rx).map(move |event| {
        let out = match event {
            Event::Text(t) => sse(&head.object(true, json!([head.choice(&t, None, true)]))),
            Event::Done(s) => {
                let finish = head.choice("", Some(finish_reason(s.reason)), true);
                let mut out = sse(&head.object(true, json!([finish])));
                if include_usage {
                    let mut u = head.object(true, json!([]));
                    u["usage"] = usage(&s);
                    out.push_str(&sse(&u));
                }
                out.push_str("data: [DONE]\n\n");
                out
            }
            Event::Failed(m) => {
                let e = json!({"error": {"message": m, "type": "server_error", "param": null, "code": null}});
                format!("{}data: [DONE]\n\n", sse(&e))
            }
        };
        Ok(Bytes::from(out))
    });
    tokio_stream::once(Ok(Bytes::from(first))).chain(events)
}
