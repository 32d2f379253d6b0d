//! `ember serve`: an OpenAI-compatible HTTP server. The HTTP side (axum on tokio) parses and
//! checks requests, renders chat templates and tokenizes, then hands each completion to the
//! engine ([`engine`]), whose one thread steps every running answer in a batch on the model;
//! answers come back over a channel per request, as one JSON body or as server-sent events.

pub mod api;
pub mod engine;
pub mod metrics;
mod responses;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::sync::mpsc::unbounded_channel;

use crate::error::{Error, Result};
use crate::format::ModelFile;
use crate::model::LanguageModel;
use api::{ApiError, ChatRequest, CompletionRequest, Params};
use engine::{EngineHandle, Event, Job, Rejected};
use metrics::Metrics;
use responses::{Kind, collect, stream};

/// How `ember serve` runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on (127.0.0.1 unless told otherwise).
    pub host: String,
    /// Port (0: any free one; the chosen one is printed).
    pub port: u16,
    /// Sequences decoded together (KV-cache slots).
    pub parallel: usize,
    /// Context per slot, in tokens.
    pub ctx: usize,
    /// Requests that may wait for a slot before new ones get 503.
    pub queue: usize,
    /// Bearer token every `/v1` request must carry.
    pub api_key: Option<String>,
    /// Append one JSON line per finished request here.
    pub metrics_file: Option<PathBuf>,
    /// Allow browser pages from this origin (`*` for any).
    pub cors: Option<String>,
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// The model's id in `/v1/models` and responses.
    pub model_id: String,
}

/// Loads the model with the given number of slots (each of [`ServerConfig::ctx`] positions) on
/// the engine's thread, where its GPU device or thread pool then stays.
pub type Loader = Box<dyn FnOnce(usize) -> Result<Box<dyn LanguageModel>> + Send>;

struct AppState {
    file: Arc<ModelFile>,
    config: ServerConfig,
    engine: EngineHandle,
    metrics: Arc<Metrics>,
    ready: AtomicBool,
    created: u64,
    next_id: AtomicU64,
}

/// Serves `file` until interrupted (Ctrl-C or SIGTERM). Listening starts at once; `/health`
/// says `loading` until `load` has made the model, and a model that fails to load ends the
/// server with that error.
pub fn serve(file: Arc<ModelFile>, config: ServerConfig, load: Loader) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Backend(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve_async(file, config, load))
}

async fn serve_async(file: Arc<ModelFile>, config: ServerConfig, load: Loader) -> Result<()> {
    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| Error::Invalid(format!("cannot listen on {addr}: {e}")))?;
    let local: SocketAddr = listener
        .local_addr()
        .map_err(|e| Error::Invalid(format!("cannot listen on {addr}: {e}")))?;
    let metrics = Arc::new(Metrics::new(config.metrics_file.as_deref())?);
    let (engine, queue) = engine::channel(config.queue);
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let state = Arc::new(AppState {
        file: file.clone(),
        config: config.clone(),
        engine,
        metrics: metrics.clone(),
        ready: AtomicBool::new(false),
        created,
        next_id: AtomicU64::new(1),
    });
    let (failed_tx, mut failed_rx) = unbounded_channel::<Error>();
    let engine_state = state.clone();
    std::thread::Builder::new()
        .name("ember-engine".into())
        .spawn(move || {
            let mut model = match load(config.parallel) {
                Ok(m) => m,
                Err(e) => {
                    let _ = failed_tx.send(e);
                    return;
                }
            };
            engine_state.metrics.set_backend(&model.backend_name());
            eprintln!(
                "ember serve: {} on {}, {} slots of {} tokens",
                engine_state.config.model_id,
                model.backend_name(),
                model.slots(),
                model.context_len()
            );
            engine_state.ready.store(true, Ordering::SeqCst);
            engine::run(model.as_mut(), &file.tokenizer, queue, &metrics);
        })
        .map_err(|e| Error::Backend(format!("cannot start the engine thread: {e}")))?;
    eprintln!("ember serve: listening on http://{local}");
    let app = router(state);
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal());
    tokio::select! {
        r = server => r.map_err(|e| Error::Backend(format!("server: {e}"))),
        Some(e) = failed_rx.recv() => Err(e),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn router(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    let mut app = Router::new()
        .merge(v1)
        .route("/health", get(health))
        .route("/metrics", get(prometheus))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .with_state(state.clone());
    if let Some(origin) = &state.config.cors {
        use tower_http::cors::{AllowOrigin, CorsLayer};
        let allow = if origin == "*" {
            AllowOrigin::any()
        } else {
            // `ember serve` checked the origin; one that is still no header value allows none.
            HeaderValue::from_str(origin).map_or(AllowOrigin::list([]), AllowOrigin::exact)
        };
        app = app.layer(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        );
    }
    app
}

/// With an API key, `/v1` requests need `Authorization: Bearer KEY` (compared in constant
/// time).
async fn authorize(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &state.config.api_key {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(key.as_bytes())) {
            state.metrics.bad_request();
            let message = if given.is_empty() {
                "no API key: send Authorization: Bearer KEY"
            } else {
                "incorrect API key"
            };
            let mut e = ApiError::new(StatusCode::UNAUTHORIZED, "authentication_error", message);
            e.code = Some("invalid_api_key");
            return e.into_response();
        }
    }
    next.run(req).await
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found_error",
        format!("no endpoint {} {}", req.method(), req.uri().path()),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    if state.ready.load(Ordering::SeqCst) {
        Json(json!({"status": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "loading"})),
        )
            .into_response()
    }
}

async fn prometheus(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn models(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let c = &state.config;
    Json(json!({
        "object": "list",
        "data": [{
            "id": c.model_id,
            "object": "model",
            "created": state.created,
            "owned_by": "ember",
            "meta": {
                "n_ctx": c.ctx,
                "slots": c.parallel,
                "n_vocab": state.file.config.vocab_size,
                "architecture": format!("{:?}", state.file.config.arch).to_lowercase(),
            },
        }],
    }))
}

/// The body as bytes: 413 over the limit.
fn body(
    state: &AppState,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Bytes, ApiError> {
    body.map_err(|e| {
        let too_large = e.status() == StatusCode::PAYLOAD_TOO_LARGE;
        let status = if too_large {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        let message = if too_large {
            format!("the request body exceeds {} bytes", state.config.body_limit)
        } else {
            format!("cannot read the request body: {e}")
        };
        ApiError::new(status, "invalid_request_error", message)
    })
}

/// Refuses a model name other than the one served.
fn check_model(state: &AppState, params: &Params) -> std::result::Result<(), ApiError> {
    match &params.model {
        Some(m) if *m != state.config.model_id => Err(ApiError {
            param: Some("model".into()),
            code: Some("model_not_found"),
            ..ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!(
                    "the model '{m}' does not exist here; this server has '{}'",
                    state.config.model_id
                ),
            )
        }),
        _ => Ok(()),
    }
}

/// Counts a refused request and passes its error on.
fn refused(state: &AppState, e: ApiError) -> Response {
    state.metrics.bad_request();
    e.into_response()
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    raw: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    answer(&state, raw, Kind::Chat, |state, req: &ChatRequest| {
        let messages = req.messages()?;
        state.file.tokenizer.encode_chat(&messages).map_err(|e| {
            ApiError::invalid(Some("messages"), format!("cannot render the chat: {e}"))
        })
    })
    .await
}

async fn completions(
    State(state): State<Arc<AppState>>,
    raw: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    answer(&state, raw, Kind::Text, |state, req: &CompletionRequest| {
        Ok(req.prompt_ids(&state.file.tokenizer, state.file.config.vocab_size)?)
    })
    .await
}

/// Parses the body as an `R`, checks its model, makes its prompt with `prompt`, and answers.
/// Parsing, template rendering and tokenizing run on tokio's blocking pool: a prompt of
/// megabytes takes a while, and the I/O threads keep streaming other answers meanwhile.
async fn answer<R: api::Request + Send + 'static>(
    state: &Arc<AppState>,
    raw: std::result::Result<Bytes, BytesRejection>,
    kind: Kind,
    prompt: impl FnOnce(&AppState, &R) -> std::result::Result<Vec<u32>, ApiError> + Send + 'static,
) -> Response {
    let received = Instant::now();
    let raw = match body(state, raw) {
        Ok(b) => b,
        Err(e) => return refused(state, e),
    };
    let shared = state.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        let req = api::parse::<R>(&raw)?;
        check_model(&shared, req.params())?;
        // A model file changed in place is not the model loaded (one replaced by rename is).
        shared.file.check_unchanged().map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                e.to_string(),
            )
        })?;
        let ids = prompt(&shared, &req)?;
        Ok((req, ids))
    })
    .await
    .unwrap_or_else(|e| {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            format!("preparing the prompt failed: {e}"),
        ))
    });
    match prepared {
        Ok((req, ids)) => complete(state, kind, ids, req.params(), received).await,
        Err(e) => refused(state, e),
    }
}

/// Queues the completion and answers with its result, whole or streamed.
async fn complete(
    state: &Arc<AppState>,
    kind: Kind,
    prompt: Vec<u32>,
    params: &Params,
    received: Instant,
) -> Response {
    if !state.ready.load(Ordering::SeqCst) {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the model is still loading",
        );
        e.retry_after = Some(1);
        return e.into_response();
    }
    let param = match kind {
        Kind::Chat => "messages",
        Kind::Text => "prompt",
    };
    let opts = match params.options(prompt.len(), state.config.ctx, param) {
        Ok(o) => o,
        Err(e) => return refused(state, e.into()),
    };
    let (tx, rx) = unbounded_channel::<Event>();
    let job = Job {
        prompt,
        opts,
        events: tx,
        received,
    };
    match state.engine.submit(job) {
        Ok(()) => {}
        Err(Rejected::Busy) => {
            state.metrics.rejected();
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                format!(
                    "the server is busy: {} requests are already waiting for a slot",
                    state.config.queue
                ),
            );
            e.retry_after = Some(1);
            return e.into_response();
        }
        Err(Rejected::Stopped) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "the engine has stopped",
            )
            .into_response();
        }
    }
    let id = state.next_id.fetch_add(1, Ordering::SeqCst);
    let head = responses::Head {
        id: format!("{}-{:x}-{id}", kind.id_prefix(), state.created),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: state.config.model_id.clone(),
        kind,
    };
    if params.stream {
        let include_usage = params.include_usage();
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::from_stream(stream(head, rx, include_usage)))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    } else {
        collect(head, rx).await
    }
}
