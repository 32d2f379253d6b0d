//! Ember in the browser: the default model on WebGPU, driven by `examples/web/index.html`.
//!
//! Build: `scripts/web.sh build` (cargo for wasm32, then wasm-bindgen into `examples/web/pkg`).
//! The page fetches a GGUF file, tokenizes a prompt, decodes greedily on the page's WebGPU
//! adapter and shows the text. `scripts/web.sh test` runs it in headless Chromium and checks the
//! token ids against the reference. Natively this example is empty.

#[cfg(target_arch = "wasm32")]
mod web {
    use ember::ModelFile;
    use ember::backend::gpu::{GpuBackend, GpuChoice, GpuContext, GpuOptions};
    use ember::model::{LanguageModel, Model};
    use ember::sample::argmax;
    use ember::tokenizer::Tokenizer;
    use wasm_bindgen::prelude::*;

    fn js(e: ember::Error) -> JsError {
        JsError::new(&e.to_string())
    }

    /// A model loaded on the page's GPU, with its tokenizer and the position decoding is at.
    #[wasm_bindgen]
    pub struct Engine {
        model: Model<GpuBackend>,
        tokenizer: Tokenizer,
        adapter: String,
        pos: usize,
    }

    #[wasm_bindgen]
    impl Engine {
        /// Parses the GGUF `bytes` and uploads its weights to the page's WebGPU adapter, with
        /// a KV cache of `ctx` positions. `split_rows` overrides the adapter's default decode
        /// mat-vec layout (see `GpuOptions::split_rows`).
        pub async fn load(
            name: String,
            bytes: Vec<u8>,
            ctx: usize,
            split_rows: Option<bool>,
        ) -> Result<Engine, JsError> {
            let file = ModelFile::from_gguf_bytes(&name, bytes).map_err(js)?;
            let gpu = GpuContext::new_async(GpuChoice::Any).await.map_err(js)?;
            let mut options = GpuOptions::accurate(&gpu);
            options.split_rows = split_rows.unwrap_or(options.split_rows);
            // Browsers may hide the adapter's name.
            let name = match gpu.report.name.as_str() {
                "" => "unnamed adapter",
                n => n,
            };
            let layout = if options.split_rows {
                "split rows"
            } else {
                "whole rows"
            };
            let adapter = format!(
                "{name} ({}, {}, {layout})",
                gpu.report.backend, gpu.report.device_type
            );
            let backend = GpuBackend::with_context(gpu, options).map_err(js)?;
            let model = Model::new(&file, backend, ctx).map_err(js)?;
            Ok(Engine {
                model,
                tokenizer: file.tokenizer,
                adapter,
                pos: 0,
            })
        }

        /// The adapter the model runs on.
        pub fn adapter(&self) -> String {
            self.adapter.clone()
        }

        /// Token ids of `text` (special-token text such as `<|im_start|>` parsed).
        pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, JsError> {
            self.tokenizer.encode(text, true).map_err(js)
        }

        /// The text of `ids`.
        pub fn detokenize(&self, ids: &[u32]) -> String {
            self.tokenizer.decode(ids, false)
        }

        /// Starts over: the next `step` evaluates from position 0.
        pub fn reset(&mut self) {
            self.pos = 0;
        }

        /// Evaluates `ids` after what came before and returns the greedy next token.
        pub async fn step(&mut self, ids: Vec<u32>) -> Result<u32, JsError> {
            let logits = self
                .model
                .forward_async(&ids, self.pos, false)
                .await
                .map_err(js)?;
            self.pos += ids.len();
            let vocab = self.model.config().vocab_size;
            Ok(argmax(&logits[logits.len() - vocab..]))
        }
    }
}
