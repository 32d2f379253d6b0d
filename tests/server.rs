//! `ember serve` over loopback HTTP: every kind of bad request gets its status and an
//! OpenAI-shaped error object; a second chat turn reuses the first's KV cache; a client that
//! leaves mid-stream frees its slot; metrics and the metrics file count what happened. (The
//! official `openai` client and the load test are `scripts/serve_check.py`, run by CI.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::data;

/// A running `ember serve` on a free port, stopped when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ember"))
            .args(["serve", "--port", "0", "--backend", "cpu", "-t", "2"])
            .args(args)
            .env(
                "EMBER_TUNE_CACHE",
                std::env::temp_dir().join("ember-no-tune-cache/tune.json"),
            )
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("ember serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("ember serve printed its address")
                .unwrap();
            if let Some(addr) = line.strip_prefix("ember serve: listening on http://") {
                break addr.rsplit(':').next().unwrap().parse().unwrap();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let server = Server { child, port };
        let start = Instant::now();
        while server.get("/health").0 != 200 {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "model never loaded"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Sends a request; returns status, headers (lower-case names) and body.
    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        send(self.port, method, path, headers, body)
    }

    fn get(&self, path: &str) -> (u16, String) {
        let r = self.send("GET", path, &[], b"");
        (r.status, r.body)
    }

    fn post(&self, path: &str, body: &Value) -> Reply {
        self.send("POST", path, &[], body.to_string().as_bytes())
    }

    fn metrics(&self) -> String {
        self.get("/metrics").1
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a request to the server on `port`; returns status, headers (lower-case names) and body.
fn send(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before reading a huge body; a reset then is fine.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    Reply::parse(&raw)
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn parse(raw: &[u8]) -> Reply {
        let text = String::from_utf8_lossy(raw).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP response");
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// The value of an unlabelled metric.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

/// Checks an OpenAI error object: status, type, and the parameter or code where given.
fn assert_error(r: &Reply, status: u16, kind: &str, param: Option<&str>, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    let e = &r.json()["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {e}"
    );
    assert_eq!(e["type"], kind, "{what}: {e}");
    for key in ["param", "code"] {
        assert!(e.get(key).is_some(), "{what}: no {key} in {e}");
    }
    if let Some(p) = param {
        assert_eq!(e["param"], p, "{what}: {e}");
    }
}

/// A 400 `invalid_request_error` about `param`.
fn invalid(r: &Reply, param: Option<&str>, what: &str) {
    assert_error(r, 400, "invalid_request_error", param, what);
}

#[test]
fn bad_requests_get_openai_errors() {
    let s = Server::start(&["--api-key", "sekret", "-c", "64", "--body-limit", "4096"]);
    let auth = [("Authorization", "Bearer sekret")];
    let chat = |body: &[u8]| s.send("POST", "/v1/chat/completions", &auth, body);
    let hello = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});

    let r = s.send(
        "POST",
        "/v1/chat/completions",
        &[],
        hello.to_string().as_bytes(),
    );
    assert_error(&r, 401, "authentication_error", None, "no key");
    let wrong = [("Authorization", "Bearer sekreT")];
    let r = s.send("GET", "/v1/models", &wrong, b"");
    assert_error(&r, 401, "authentication_error", None, "wrong key");
    // The key guards /v1 only; health and metrics stay open for probes.
    assert_eq!(s.get("/health").0, 200);

    let r = chat(b"{\"messages\": [");
    invalid(&r, None, "broken JSON");
    let r = chat(br#"{"messages": "hi"}"#);
    invalid(&r, None, "wrong type");
    let r = chat(br#"{"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}"#);
    invalid(&r, None, "wrong type of a number");
    let r = chat(&vec![b' '; 8000]);
    assert_error(&r, 413, "invalid_request_error", None, "huge body");

    let long = "word ".repeat(100);
    let r = chat(
        json!({"messages": [{"role": "user", "content": long}]})
            .to_string()
            .as_bytes(),
    );
    invalid(&r, Some("messages"), "long prompt");
    assert_eq!(r.json()["error"]["code"], "context_length_exceeded");
    let r = s.send(
        "POST",
        "/v1/completions",
        &auth,
        json!({"prompt": long}).to_string().as_bytes(),
    );
    invalid(&r, Some("prompt"), "long text prompt");

    let mut other = hello.clone();
    other["model"] = json!("gpt-4o");
    let r = chat(other.to_string().as_bytes());
    assert_error(
        &r,
        404,
        "invalid_request_error",
        Some("model"),
        "unknown model",
    );
    assert_eq!(r.json()["error"]["code"], "model_not_found");

    let r = chat(
        json!({"messages": [{"role": "wizard", "content": "hi"}]})
            .to_string()
            .as_bytes(),
    );
    invalid(&r, Some("messages[0].role"), "unknown role");
    for (field, value) in [
        ("n", json!(2)),
        ("logprobs", json!(true)),
        ("temperature", json!(3.5)),
        ("top_p", json!(0)),
        ("stop", json!(["a", "b", "c", "d", "e"])),
        ("presence_penalty", json!(5)),
    ] {
        let mut body = hello.clone();
        body[field] = value;
        let r = chat(body.to_string().as_bytes());
        invalid(&r, Some(field), field);
    }

    let r = s.send("GET", "/v1/nothing", &auth, b"");
    assert_error(&r, 404, "not_found_error", None, "unknown endpoint");
    let r = s.send("GET", "/v1/chat/completions", &auth, b"");
    assert_error(&r, 405, "invalid_request_error", None, "wrong method");

    // After all that, a good request still works.
    let r = chat(hello.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["object"], "chat.completion");
    let m = s.metrics();
    assert!(
        m.contains("ember_requests_total{outcome=\"invalid\"}"),
        "{m}"
    );
    assert!(
        m.contains("ember_requests_total{outcome=\"finished\"} 1"),
        "{m}"
    );
}

#[test]
fn second_chat_turn_reuses_the_cache() {
    let dir = std::env::temp_dir().join(format!("ember-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lines_path = dir.join("metrics.jsonl");
    let _ = std::fs::remove_file(&lines_path);
    let s = Server::start(&["-c", "1024", "--metrics-file", lines_path.to_str().unwrap()]);
    // A long system prompt: evaluating it is most of the first turn's time to first token.
    let system = "You are a helpful assistant for a bakery. ".repeat(40);
    let mut messages = vec![
        json!({"role": "system", "content": system}),
        json!({"role": "user", "content": "What bread do you sell?"}),
    ];
    let turn = |messages: &Vec<Value>| {
        let r = s.post(
            "/v1/chat/completions",
            &json!({"messages": messages, "max_tokens": 12, "temperature": 0}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let first = turn(&messages);
    let first_prompt = first["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(first_prompt > 300, "{first}");
    assert_eq!(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    let answer = first["choices"][0]["message"]["content"].as_str().unwrap();
    messages.push(json!({"role": "assistant", "content": answer}));
    messages.push(json!({"role": "user", "content": "And cakes?"}));
    let second = turn(&messages);
    let cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(cached >= first_prompt, "{second}");
    let lines: Vec<Value> = std::fs::read_to_string(&lines_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        for key in [
            "time",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "time_to_first_token_s",
            "decode_tokens_per_s",
            "backend",
            "finish_reason",
        ] {
            assert!(l.get(key).is_some(), "no {key} in {l}");
        }
    }
    let ttft = |l: &Value| l["time_to_first_token_s"].as_f64().unwrap();
    assert_eq!(lines[1]["cached_tokens"].as_u64(), Some(cached));
    assert!(
        ttft(&lines[1]) * 2.0 < ttft(&lines[0]),
        "second turn {} s to first token, first {} s",
        ttft(&lines[1]),
        ttft(&lines[0])
    );
}

#[test]
fn a_client_leaving_mid_stream_frees_its_slot() {
    let s = Server::start(&["-c", "4096", "-P", "1"]);
    // Greedy counting: an answer that does not end by itself before the client leaves.
    let body = json!({"prompt": "The list of numbers from 1 to 1000: 1, 2, 3, 4, 5,",
                      "max_tokens": 3000, "stream": true, "temperature": 0});
    let mut stream = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Read until a few tokens have arrived, then hang up.
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.matches("data: ").count() < 3 {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    drop(stream);
    // With its one slot freed, the next request is served at once (not after 3000 tokens).
    let start = Instant::now();
    let r = s.post(
        "/v1/completions",
        &json!({"prompt": "Hello", "max_tokens": 4, "temperature": 0}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    let m = s.metrics();
    assert_eq!(
        m.lines()
            .find(|l| l.starts_with("ember_requests_total{outcome=\"cancelled\"}")),
        Some("ember_requests_total{outcome=\"cancelled\"} 1"),
        "{m}"
    );
    assert_eq!(metric(&m, "ember_slots_busy"), 0.0);
    assert_eq!(metric(&m, "ember_queue_depth"), 0.0);
    assert!(
        m.contains("ember_time_to_first_token_seconds_bucket{le=\"+Inf\"} 1"),
        "{m}"
    );
}

#[test]
fn streams_end_with_done_and_usage() {
    let s = Server::start(&["-c", "256"]);
    let r = s.post(
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 5,
                "stream": true, "stream_options": {"include_usage": true}}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events: Vec<&str> = r
        .body
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{}", r.body);
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let id = &chunks[0]["id"];
    assert!(
        chunks
            .iter()
            .all(|c| c["id"] == *id && c["object"] == "chat.completion.chunk")
    );
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 5, "{usage}");
    let finish = &chunks[chunks.len() - 2]["choices"][0]["finish_reason"];
    assert_eq!(finish, "length");
    // Models, health and the Prometheus text.
    let (status, models) = s.get("/v1/models");
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["data"][0]["object"], "model");
    let m = s.metrics();
    for name in [
        "ember_prompt_tokens_total",
        "ember_completion_tokens_total",
        "ember_queue_depth",
        "ember_prompt_tokens_per_second",
        "ember_decode_tokens_per_second",
        "ember_kv_cache_used_tokens",
        "ember_time_to_first_token_seconds_count",
    ] {
        metric(&m, name);
    }
    assert_eq!(metric(&m, "ember_completion_tokens_total"), 5.0);
}

#[test]
fn bad_server_flags_fail_cleanly() {
    let s = Server::start(&["-c", "64"]);
    let port = s.port.to_string();
    for (args, why) in [
        (vec!["--port", port.as_str()], "cannot listen"),
        (vec!["--parallel", "0"], "--parallel"),
        (vec!["-m", "/nonexistent/model.gguf"], "nonexistent"),
        (vec!["--api-key", ""], "empty"),
        (vec!["--cors", "not an origin"], "--cors"),
        (vec!["--queue", "0"], "--queue"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ember"))
            .args(["serve", "--backend", "cpu"])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(why), "{args:?}: {err}");
    }
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let s = Server::start(&["-c", "4096", "-P", "1", "--queue", "1"]);
    // The one slot streams a long answer (greedy counting, which does not stop by itself for
    // thousands of tokens, so the slot stays busy however slow a shared machine is); the next
    // request waits in the queue.
    let body = json!({"prompt": "The list of numbers from 1 to 1000: 1, 2, 3, 4, 5,",
                      "max_tokens": 3000, "stream": true, "temperature": 0})
    .to_string();
    let mut busy = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    write!(
        busy,
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = [0u8; 1024];
    assert!(busy.read(&mut buf).unwrap() > 0);
    let port = s.port;
    let waiting = std::thread::spawn(move || {
        let body = json!({"prompt": "Hi", "max_tokens": 2}).to_string();
        send(port, "POST", "/v1/completions", &[], body.as_bytes()).status
    });
    let start = Instant::now();
    // The slot is busy and a request waits (jobs count as waiting until the engine starts
    // them, so both are needed to know the waiting one is the second request).
    let queued =
        |m: &str| metric(m, "ember_slots_busy") >= 1.0 && metric(m, "ember_queue_depth") >= 1.0;
    while !queued(&s.metrics()) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the request never queued: {} {}",
            s.metrics(),
            waiting.is_finished()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = s.post("/v1/completions", &json!({"prompt": "Hi", "max_tokens": 2}));
    assert_error(&r, 503, "server_error", None, "full queue");
    assert_eq!(r.header("retry-after"), Some("1"));
    // The slot frees when its client leaves; the waiting request is then served.
    drop(busy);
    assert_eq!(waiting.join().unwrap(), 200);
    let m = s.metrics();
    assert!(
        m.contains("ember_requests_total{outcome=\"rejected\"} 1"),
        "{m}"
    );
}

#[test]
fn an_answer_that_fills_the_context_ends_with_length() {
    // A prompt that fits but leaves less room than max_tokens asks: the answer runs to the end
    // of the context and says so, and the slot serves the next request.
    let s = Server::start(&["-c", "64", "-P", "1"]);
    let counting = json!({"prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "max_tokens": 500,
                          "temperature": 0});
    for _ in 0..2 {
        let r = s.post("/v1/completions", &counting);
        assert_eq!(r.status, 200, "{}", r.body);
        let body = r.json();
        assert_eq!(body["choices"][0]["finish_reason"], "length", "{body}");
        assert_eq!(body["usage"]["total_tokens"], 64, "{body}");
    }
    let mut streamed = counting.clone();
    streamed["stream"] = json!(true);
    let r = s.post("/v1/completions", &streamed);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("\"finish_reason\":\"length\""),
        "{}",
        r.body
    );
    assert!(r.body.trim_end().ends_with("data: [DONE]"), "{}", r.body);
}

#[test]
fn a_model_file_changed_underneath_the_server() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("server-file-changes");
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("model.gguf");
    std::fs::copy(data("fuzz/seeds/tiny-bpe-llama.gguf"), &model).unwrap();
    let s = Server::start(&["-m", model.to_str().unwrap(), "-c", "128"]);
    let hello = json!({"prompt": "Hello", "max_tokens": 4, "temperature": 0});
    let first = s.post("/v1/completions", &hello);
    assert_eq!(first.status, 200, "{}", first.body);
    // Replaced by rename: the server answers from the model it loaded, the same way.
    let new = dir.join("model.new");
    std::fs::write(&new, b"another model").unwrap();
    std::fs::rename(&new, &model).unwrap();
    let again = s.post("/v1/completions", &hello);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["choices"], first.json()["choices"]);
    // Changed in place: refused with a reason.
    std::fs::copy(data("fuzz/seeds/tiny-bpe-llama.gguf"), &new).unwrap();
    std::fs::rename(&new, &model).unwrap();
    let s2 = Server::start(&["-m", model.to_str().unwrap(), "-c", "128"]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&model)
        .and_then(|f| f.set_len(1000))
        .unwrap();
    let r = s2.post("/v1/completions", &hello);
    assert_eq!(r.status, 503, "{}", r.body);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("changed while in use"), "{message}");
}
