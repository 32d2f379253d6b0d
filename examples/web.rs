//! Ember in the browser: the engine behind the JavaScript package in `web/` (its worker,
//! `web/src/worker.js`, holds one [`Engine`]). Any GGUF model, on the page's WebGPU adapter or on
//! the CPU compiled to WebAssembly; requests are OpenAI-shaped JSON, validated, templated and
//! sampled by the same Rust code as `ember serve`.
//!
//! Build: `scripts/web.sh build` (cargo for wasm32, then wasm-bindgen into `web/pkg`).
//! Natively this example is empty.

#[cfg(target_arch = "wasm32")]
mod web {
    use std::sync::Arc;

    use ember::ModelFile;
    use ember::backend::cpu::{CpuBackend, Precision};
    use ember::backend::gpu::{AdapterReport, GpuBackend, GpuChoice, GpuContext, GpuOptions};
    use ember::model::{LanguageModel, Model};
    use ember::openai::{ChatRequest, CompletionRequest, Request};
    use ember::session::{Continuation, StopReason};
    use ember::tokenizer::Tokenizer;
    use serde::Deserialize;
    use serde_json::json;
    use wasm_bindgen::prelude::*;

    fn js(e: impl std::fmt::Display) -> JsError {
        JsError::new(&e.to_string())
    }

    /// Prompt tokens evaluated per forward call (bounds the activations of long prompts).
    const PREFILL_CHUNK: usize = 256;

    /// The model on one of the two backends.
    enum Runner {
        Gpu(Box<Model<GpuBackend>>),
        Cpu(Box<Model<CpuBackend>>),
    }

    impl Runner {
        /// The logits after `ids` evaluated from position `pos`.
        async fn forward(&mut self, ids: &[u32], pos: usize) -> ember::Result<Vec<f32>> {
            match self {
                Runner::Gpu(m) => m.forward_async(ids, pos, false).await,
                Runner::Cpu(m) => m.forward(ids, pos, false),
            }
        }

        fn model(&self) -> &dyn LanguageModel {
            match self {
                Runner::Gpu(m) => m.as_ref(),
                Runner::Cpu(m) => m.as_ref(),
            }
        }
    }

    /// `Engine.load`'s options.
    #[derive(Deserialize)]
    struct LoadOptions {
        /// "auto", "webgpu" or "cpu".
        #[serde(default = "auto")]
        backend: String,
        /// KV cache positions.
        #[serde(default = "default_ctx")]
        ctx: usize,
    }

    fn auto() -> String {
        "auto".into()
    }

    fn default_ctx() -> usize {
        2048
    }

    /// `Engine.start`'s argument: an OpenAI request of either kind.
    #[derive(Deserialize)]
    struct Start {
        /// "chat" or "completion".
        kind: String,
        /// The request body (without `stream`, which the package handles).
        request: serde_json::Value,
    }

    /// The answer being generated.
    struct Answer {
        continuation: Continuation<Arc<Tokenizer>>,
        /// Tokens to evaluate next: the prompt's uncached suffix, then each sampled token.
        pending: Vec<u32>,
        /// Position of `pending[0]`.
        pos: usize,
    }

    /// A model loaded in the browser, with its tokenizer, the tokens in its KV cache and the
    /// answer being generated.
    #[wasm_bindgen]
    pub struct Engine {
        runner: Runner,
        tokenizer: Arc<Tokenizer>,
        info: serde_json::Value,
        cached: Vec<u32>,
        answer: Option<Answer>,
    }

    fn adapter_info(r: &AdapterReport) -> serde_json::Value {
        let mut features = Vec::new();
        if r.shader_f16 {
            features.push("shader-f16");
        }
        if r.subgroups {
            features.push("subgroups");
        }
        if r.timestamp_query {
            features.push("timestamp-query");
        }
        json!({
            "adapter": if r.name.is_empty() { "unnamed adapter" } else { &r.name },
            "device_type": r.device_type,
            "features": features,
            "limits": {
                "maxStorageBufferBindingSize": r.max_storage_buffer_binding_size,
                "maxBufferSize": r.max_buffer_size,
                "maxComputeWorkgroupStorageSize": r.max_compute_workgroup_storage_size,
                "maxComputeInvocationsPerWorkgroup": r.max_compute_invocations_per_workgroup,
            },
        })
    }

    #[wasm_bindgen]
    impl Engine {
        /// Parses the GGUF `bytes` and puts the model on WebGPU or the CPU (`options`: JSON
        /// `{backend, ctx}`; "auto" tries WebGPU and falls back to the CPU if the adapter cannot
        /// hold the model).
        pub async fn load(
            name: String,
            bytes: Vec<u8>,
            options: String,
        ) -> Result<Engine, JsError> {
            let options: LoadOptions = serde_json::from_str(&options).map_err(js)?;
            let file = ModelFile::from_gguf_bytes(&name, bytes).map_err(js)?;
            let mut gpu_error = None;
            let mut runner = None;
            let mut device = json!({"adapter": "CPU (WebAssembly)", "features": [], "limits": {}});
            if options.backend != "cpu" {
                match load_gpu(&file, options.ctx).await {
                    Ok((model, report)) => {
                        device = adapter_info(&report);
                        runner = Some(Runner::Gpu(Box::new(model)));
                    }
                    Err(e) if options.backend == "auto" => gpu_error = Some(e.to_string()),
                    Err(e) => return Err(js(e)),
                }
            }
            let mut runner = match runner {
                Some(r) => r,
                None => {
                    let backend = CpuBackend::with_precision(cpu_threads(), Precision::default())
                        .map_err(js)?;
                    Runner::Cpu(Box::new(
                        Model::new(&file, backend, options.ctx).map_err(js)?,
                    ))
                }
            };
            let threads = match &mut runner {
                Runner::Cpu(m) => Some(m.backend().threads()),
                Runner::Gpu(_) => None,
            };
            let c = &file.config;
            let info = json!({
                "backend": if matches!(runner, Runner::Gpu(_)) { "webgpu" } else { "cpu" },
                "fallback_reason": gpu_error,
                "device": device,
                "model": {
                    "name": name,
                    "architecture": c.arch.name(),
                    "layers": c.layers,
                    "hidden": c.hidden,
                    "vocab": c.vocab_size,
                },
                "context_length": runner.model().context_len(),
                "threads": threads,
            });
            Ok(Engine {
                runner,
                tokenizer: Arc::new(file.tokenizer),
                info,
                cached: Vec::new(),
                answer: None,
            })
        }

        /// The backend, device and model, as JSON.
        pub fn info(&self) -> String {
            self.info.to_string()
        }

        /// Token ids of `text` (special-token text such as `<|im_start|>` parsed).
        pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, JsError> {
            self.tokenizer.encode(text, true).map_err(js)
        }

        /// Starts an answer to an OpenAI request (`{kind: "chat" | "completion", request}`):
        /// validates it, builds the prompt (the chat template for chats) and keeps the part of
        /// it already in the KV cache. Returns `{prompt_tokens, prompt_evaluated}` as JSON.
        pub fn start(&mut self, start: &str) -> Result<String, JsError> {
            let mut start: Start = serde_json::from_str(start).map_err(js)?;
            // (Natively an unseeded request takes the clock's nanoseconds, which a browser's
            // WebAssembly cannot read: draw the seed here.)
            if let Some(r) = start.request.as_object_mut()
                && !r.contains_key("seed")
            {
                r.insert(
                    "seed".into(),
                    json!((js_sys::Math::random() * 9.0e15) as u64),
                );
            }
            let ctx = self.runner.model().context_len();
            let (prompt, opts) = match start.kind.as_str() {
                "chat" => {
                    let r: ChatRequest = serde_json::from_value(start.request).map_err(js)?;
                    let messages = r.messages().map_err(js)?;
                    let prompt = self.tokenizer.encode_chat(&messages).map_err(js)?;
                    let opts = r
                        .params()
                        .options(prompt.len(), ctx, "messages")
                        .map_err(js)?;
                    (prompt, opts)
                }
                "completion" => {
                    let r: CompletionRequest = serde_json::from_value(start.request).map_err(js)?;
                    let vocab = self.runner.model().config().vocab_size;
                    let prompt = r.prompt_ids(&self.tokenizer, vocab).map_err(js)?;
                    let opts = r
                        .params()
                        .options(prompt.len(), ctx, "prompt")
                        .map_err(js)?;
                    (prompt, opts)
                }
                other => return Err(js(format!("unknown request kind {other:?}"))),
            };
            // The cached prefix stays; at least one token is evaluated for fresh logits.
            let common = self
                .cached
                .iter()
                .zip(&prompt)
                .take_while(|(a, b)| a == b)
                .count()
                .min(prompt.len() - 1);
            self.cached.truncate(common);
            let evaluated = prompt.len() - common;
            let continuation = Continuation::new(Arc::clone(&self.tokenizer), &prompt, &opts);
            self.answer = Some(Answer {
                continuation,
                pending: prompt[common..].to_vec(),
                pos: common,
            });
            Ok(json!({"prompt_tokens": prompt.len(), "prompt_evaluated": evaluated}).to_string())
        }

        /// Evaluates what is pending and samples the next token of the answer. Returns
        /// `{token, text, finish_reason}` as JSON (`finish_reason` null until the answer ends).
        pub async fn next(&mut self) -> Result<String, JsError> {
            let mut answer = self
                .answer
                .take()
                .ok_or_else(|| js("no answer is being generated (call start first)"))?;
            let ctx = self.runner.model().context_len();
            if answer.pos + answer.pending.len() > ctx {
                let text = answer.continuation.finish();
                return Ok(
                    json!({"token": null, "text": text, "finish_reason": "length"}).to_string(),
                );
            }
            let mut logits = Vec::new();
            for (i, chunk) in answer.pending.chunks(PREFILL_CHUNK).enumerate() {
                logits = self
                    .runner
                    .forward(chunk, answer.pos + i * PREFILL_CHUNK)
                    .await
                    .map_err(js)?;
            }
            self.cached.extend_from_slice(&answer.pending);
            answer.pos += answer.pending.len();
            let vocab = self.runner.model().config().vocab_size;
            let last = logits.len() - vocab;
            let step = answer.continuation.step(&mut logits[last..]).map_err(js)?;
            let finish = step.done.map(|d| match d {
                StopReason::EndOfSequence | StopReason::StopString => "stop",
                StopReason::MaxTokens | StopReason::ContextFull => "length",
                StopReason::Cancelled => "abort",
            });
            if finish.is_none() {
                answer.pending = vec![step.token];
                self.answer = Some(answer);
            }
            Ok(
                json!({"token": step.token, "text": step.text, "finish_reason": finish})
                    .to_string(),
            )
        }

        /// Drops the answer being generated.
        pub fn cancel(&mut self) {
            self.answer = None;
        }

        /// Prompt processing of `prompt_tokens` and generation of `gen_tokens`, timed as
        /// `ember bench` does; returns the rates as JSON. The KV cache starts over.
        pub async fn bench(
            &mut self,
            prompt_tokens: usize,
            gen_tokens: usize,
        ) -> Result<String, JsError> {
            self.answer = None;
            self.cached.clear();
            let vocab = self.runner.model().config().vocab_size as u32;
            let ids: Vec<u32> = (0..prompt_tokens as u32)
                .map(|i| (i * 7 + 100) % vocab)
                .collect();
            let t0 = js_sys::Date::now();
            self.runner.forward(&ids, 0).await.map_err(js)?;
            let t1 = js_sys::Date::now();
            let mut token = ids[ids.len() - 1];
            for i in 0..gen_tokens {
                let logits = self
                    .runner
                    .forward(&[token], prompt_tokens + i)
                    .await
                    .map_err(js)?;
                token = ember::sample::argmax(&logits);
            }
            let t2 = js_sys::Date::now();
            let rate = |n: usize, ms: f64| {
                if ms > 0.0 {
                    n as f64 / (ms / 1000.0)
                } else {
                    0.0
                }
            };
            Ok(json!({
                "prompt_tokens": prompt_tokens,
                "prompt_tokens_per_second": rate(prompt_tokens, t1 - t0),
                "gen_tokens": gen_tokens,
                "gen_tokens_per_second": rate(gen_tokens, t2 - t1),
            })
            .to_string())
        }
    }

    /// Threads for the CPU backend: this one and every thread the page started for it (see
    /// `threads` below); one where the build has no shared memory.
    fn cpu_threads() -> usize {
        #[cfg(target_feature = "atomics")]
        return 1 + ember::backend::cpu::web_threads::free_threads();
        #[cfg(not(target_feature = "atomics"))]
        1
    }

    /// The model on the page's WebGPU adapter, and the adapter's report.
    async fn load_gpu(
        file: &ModelFile,
        ctx: usize,
    ) -> ember::Result<(Model<GpuBackend>, AdapterReport)> {
        let gpu = GpuContext::new_async(GpuChoice::Any).await?;
        let report = gpu.report.clone();
        let options = GpuOptions::accurate(&gpu);
        let backend = GpuBackend::with_context(gpu, options)?;
        Ok((Model::new(file, backend, ctx)?, report))
    }

    /// The entry points of the CPU pool's threads, in the build with shared memory: the
    /// package's worker starts Web Workers (`web/src/thread.js`) on this module and memory,
    /// each registers and serves, and only then is a model loaded.
    #[cfg(target_feature = "atomics")]
    mod threads {
        use ember::backend::cpu::web_threads;
        use wasm_bindgen::prelude::*;

        /// This module, for the workers that run its threads.
        #[wasm_bindgen(js_name = engineModule)]
        pub fn wasm_module() -> JsValue {
            wasm_bindgen::module()
        }

        /// The shared memory, for the workers that run its threads.
        #[wasm_bindgen(js_name = engineMemory)]
        pub fn wasm_memory() -> JsValue {
            wasm_bindgen::memory()
        }

        /// Counts the calling worker's thread as free for the CPU backend.
        #[wasm_bindgen(js_name = threadRegister)]
        pub fn thread_register() {
            web_threads::register()
        }

        /// Runs the CPU backend's work on the calling worker's thread; never returns.
        #[wasm_bindgen(js_name = threadServe)]
        pub fn thread_serve() {
            web_threads::serve()
        }
    }
}
