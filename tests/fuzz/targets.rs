//! The fuzz targets: each makes inputs from seeds (real files from `tests/data`) and runs Ember's
//! code for untrusted bytes on them. Any result is fine, an error or a success; what must not
//! happen is a panic, a hang or a huge allocation (the harness watches for those).

use std::path::{Path, PathBuf};

use ember::ModelFile;
use ember::format::gguf::GgufFile;
use ember::openai::{ChatRequest, CompletionRequest, Request};
use ember::tokenizer::{ChatMessage, Tokenizer, chat};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::mutate;

/// A parser of untrusted bytes, and how to make inputs for it.
pub trait Target: Sync {
    /// An input: a seed with a few mutations.
    fn generate(&self, rng: &mut ChaCha8Rng) -> Vec<u8>;
    /// Runs Ember on `input`; whether it was accepted (loaded, rendered, served) rather than
    /// refused: the share accepted shows how deep the inputs reach.
    fn run(&self, input: &[u8]) -> bool;
}

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("seed {}: {e}", path.display()))
}

/// Text with what tokenizers trip on: specials, multi-byte and invalid-looking characters.
const TEXT: &str = "Hello world <|im_start|> <s></s> ünïcödé 日本語 🦀 \u{0} \t\n 12345";

/// Whatever a model's tokenizer can be asked: encode (specials parsed or not), decode, pieces,
/// the chat template.
fn exercise(tok: &Tokenizer) {
    for specials in [true, false] {
        if let Ok(ids) = tok.encode(TEXT, specials) {
            let _ = tok.decode(&ids, true);
            let mut stream = tok.stream();
            for &id in &ids {
                let _ = stream.push(tok.token_bytes(id));
            }
        }
    }
    for id in [0, 1, 2, tok.vocab_size().saturating_sub(1) as u32] {
        if (id as usize) < tok.vocab_size() {
            let _ = tok.token_text(id);
        }
    }
    let _ = tok.encode_chat(&[
        ChatMessage::new("system", "Be brief."),
        ChatMessage::new("user", TEXT),
    ]);
}

/// GGUF files: the reader (header, metadata of every type, nested arrays, tensor table, offsets
/// and alignment), then the whole model (architecture, hyper-parameters, tokenizer from the
/// vocabulary arrays, weights).
pub struct Gguf {
    /// Seed files and their header lengths (where mutations mostly land).
    seeds: Vec<(Vec<u8>, usize)>,
}

impl Gguf {
    /// Seeds: small models of several architectures and vocabulary kinds.
    pub fn from_test_data() -> Gguf {
        let files = [
            "fuzz/seeds/tiny-bpe-llama.gguf",
            "archs/tiny-gemma2/tiny-gemma2-Q8_0.gguf",
            "archs/tiny-phi3/tiny-phi3-Q8_0.gguf",
            "archs/tiny-gemma3/tiny-gemma3-Q8_0.gguf",
        ];
        let seeds = files
            .iter()
            .map(|f| {
                let bytes = read(&data(f));
                let header = GgufFile::from_bytes(bytes.clone())
                    .unwrap_or_else(|e| panic!("seed {f}: {e}"))
                    .data_offset;
                (bytes, header)
            })
            .collect();
        Gguf { seeds }
    }
}

impl Target for Gguf {
    fn generate(&self, rng: &mut ChaCha8Rng) -> Vec<u8> {
        let (seed, hot) = &self.seeds[rng.random_range(0..self.seeds.len())];
        let (other, other_hot) = &self.seeds[rng.random_range(0..self.seeds.len())];
        let mut input = seed.clone();
        mutate::bytes(rng, &mut input, *hot, &other[..*other_hot]);
        input
    }

    fn run(&self, input: &[u8]) -> bool {
        if let Ok(g) = GgufFile::from_bytes(input.to_vec()) {
            for (_, v) in &g.metadata {
                let _ = v.summary();
            }
            for t in &g.tensors {
                if let Some(view) = g.tensor(&t.name) {
                    let _ = (view.bytes().len(), view.rows(), view.cols());
                }
            }
        }
        let Ok(model) = ModelFile::from_gguf_bytes("fuzz.gguf", input.to_vec()) else {
            return false;
        };
        exercise(&model.tokenizer);
        let _ = (
            model.config.rope_inv_freqs(),
            model.config.llama3_rope_factors(),
        );
        true
    }
}

/// The files of a Hugging Face folder a target mutates (one per input).
const HF_FILES: [&str; 5] = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "model.safetensors",
    "chat_template.jinja",
];

/// Hugging Face folders: `config.json`, `tokenizer.json`, `tokenizer_config.json`, the
/// safetensors header, the chat template file. An input is a folder index, a file index and
/// that file's mutated bytes; the other files stay as they are.
pub struct HfFolder {
    /// Per seed folder: a scratch copy to run in, and the original bytes of each file.
    folders: Vec<(PathBuf, Vec<Vec<u8>>)>,
}

impl HfFolder {
    /// Copies the seed folders to scratch folders under `scratch`.
    pub fn new(scratch: &Path) -> HfFolder {
        let seeds = ["archs/tiny-gemma2/hf", "archs/tiny-phi3/hf"];
        let folders = seeds
            .iter()
            .enumerate()
            .map(|(i, seed)| {
                let dir = scratch.join(format!("hf-{i}"));
                std::fs::create_dir_all(&dir).expect("scratch folder");
                let files = HF_FILES
                    .iter()
                    .map(|f| {
                        let bytes = read(&data(seed).join(f));
                        std::fs::write(dir.join(f), &bytes).expect("scratch file");
                        bytes
                    })
                    .collect();
                (dir, files)
            })
            .collect();
        HfFolder { folders }
    }
}

impl Target for HfFolder {
    fn generate(&self, rng: &mut ChaCha8Rng) -> Vec<u8> {
        let folder = rng.random_range(0..self.folders.len());
        let file = rng.random_range(0..HF_FILES.len());
        let mut content = self.folders[folder].1[file].clone();
        match HF_FILES[file] {
            "model.safetensors" => {
                let header = u64::from_le_bytes(content[..8].try_into().expect("8 bytes"));
                mutate::bytes(rng, &mut content, 8 + header as usize, &[]);
            }
            "chat_template.jinja" => mutate::template(rng, &mut content),
            _ => mutate::json_doc(rng, &mut content),
        }
        let mut input = vec![folder as u8, file as u8];
        input.extend(content);
        input
    }

    fn run(&self, input: &[u8]) -> bool {
        let [folder, file, content @ ..] = input else {
            return false;
        };
        let Some((dir, originals)) = self.folders.get(usize::from(*folder)) else {
            return false;
        };
        let Some(name) = HF_FILES.get(usize::from(*file)) else {
            return false;
        };
        let path = dir.join(name);
        std::fs::write(&path, content).expect("scratch file");
        let opened = std::panic::catch_unwind(|| {
            ModelFile::open(dir)
                .map(|model| exercise(&model.tokenizer))
                .is_ok()
        });
        std::fs::write(&path, &originals[usize::from(*file)]).expect("scratch file");
        opened.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// Chat templates: real ones with hostile Jinja spliced in (loops, recursion, growth).
pub struct ChatTemplate {
    seeds: Vec<Vec<u8>>,
}

impl ChatTemplate {
    /// Seeds: the tiny models' templates and the default model's.
    pub fn from_test_data() -> ChatTemplate {
        let mut seeds: Vec<Vec<u8>> = ["archs/tiny-gemma2/hf", "archs/tiny-phi3/hf"]
            .iter()
            .map(|d| read(&data(d).join("chat_template.jinja")))
            .collect();
        let default = ModelFile::open(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/SmolLM2-135M-Instruct.Q4_1.gguf"),
        )
        .expect("the default model");
        seeds.extend(default.tokenizer.chat_template.map(String::into_bytes));
        ChatTemplate { seeds }
    }
}

impl Target for ChatTemplate {
    fn generate(&self, rng: &mut ChaCha8Rng) -> Vec<u8> {
        let mut input = self.seeds[rng.random_range(0..self.seeds.len())].clone();
        mutate::template(rng, &mut input);
        input
    }

    fn run(&self, input: &[u8]) -> bool {
        let template = String::from_utf8_lossy(input);
        let messages = [
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", TEXT),
            ChatMessage::new("assistant", "Hi."),
            ChatMessage::new("user", "Again"),
        ];
        // One rendering per input (each may take the sandbox's whole time limit); the input's
        // length picks whether the generation prompt is added.
        let generation = input.len() % 2 == 1;
        chat::render(&template, &messages, generation, "<s>", "</s>").is_ok()
    }
}

/// Request bodies (`/v1/chat/completions`, `/v1/completions`, the browser's `create`): parsed,
/// checked, turned into a prompt with a real tokenizer and into generation options.
pub struct OpenAiRequest {
    tokenizer: Tokenizer,
    vocab: usize,
    seeds: Vec<Vec<u8>>,
}

impl OpenAiRequest {
    /// Seeds: chat and completion requests using most parameters; the tiny Gemma 2's tokenizer.
    pub fn from_test_data() -> OpenAiRequest {
        let model =
            ModelFile::open(&data("archs/tiny-gemma2/tiny-gemma2-Q8_0.gguf")).expect("tiny model");
        let seeds = [
            r#"{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"temperature":0.7,"top_p":0.9,"max_tokens":16,"seed":1,"stop":["\n"],"stream":true,"stream_options":{"include_usage":true}}"#,
            r#"{"messages":[{"role":"developer","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"role":"assistant","content":null},{"role":"user","content":"c"}],"max_completion_tokens":4,"top_k":40,"min_p":0.05,"repeat_penalty":1.1,"presence_penalty":0.5,"frequency_penalty":-0.5,"n":1}"#,
            r#"{"prompt":"Once upon a time","max_tokens":8,"temperature":0,"stop":"."}"#,
            r#"{"prompt":[1,2,3,4],"max_tokens":2,"logprobs":null,"echo":false,"suffix":""}"#,
            r#"{"prompt":["one text"],"seed":18446744073709551615,"logit_bias":{},"tools":[],"response_format":{"type":"text"}}"#,
        ];
        OpenAiRequest {
            vocab: model.config.vocab_size,
            tokenizer: model.tokenizer,
            seeds: seeds.iter().map(|s| s.as_bytes().to_vec()).collect(),
        }
    }
}

impl Target for OpenAiRequest {
    fn generate(&self, rng: &mut ChaCha8Rng) -> Vec<u8> {
        let mut input = self.seeds[rng.random_range(0..self.seeds.len())].clone();
        mutate::json_doc(rng, &mut input);
        input
    }

    fn run(&self, input: &[u8]) -> bool {
        let ctx = 256;
        let mut accepted = false;
        if let Ok(r) = serde_json::from_slice::<ChatRequest>(input)
            && let Ok(messages) = r.messages()
            && let Ok(prompt) = self.tokenizer.encode_chat(&messages)
        {
            accepted |= r.params().options(prompt.len(), ctx, "messages").is_ok();
        }
        if let Ok(r) = serde_json::from_slice::<CompletionRequest>(input)
            && let Ok(prompt) = r.prompt_ids(&self.tokenizer, self.vocab)
        {
            accepted |= r.params().options(prompt.len(), ctx, "prompt").is_ok();
        }
        accepted
    }
}
