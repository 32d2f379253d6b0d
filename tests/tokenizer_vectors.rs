//! The tokenizer built from GGUF vocabularies reproduces llama.cpp's test vectors, and decoding
//! gives the input back.

mod common;

use ember::format::gguf::GgufFile;
use ember::tokenizer::{ChatMessage, Tokenizer};

fn check_vocab(name: &str) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vocab");
    let g = GgufFile::open(format!("{dir}/ggml-vocab-{name}.gguf").as_ref()).expect("vocab parses");
    let tok = Tokenizer::from_gguf(&g).expect("tokenizer builds");
    let inp = std::fs::read_to_string(format!("{dir}/ggml-vocab-{name}.gguf.inp")).unwrap();
    let out = std::fs::read_to_string(format!("{dir}/ggml-vocab-{name}.gguf.out")).unwrap();
    let texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    let expected: Vec<&str> = out.lines().collect();
    assert!(texts.len() >= expected.len() && !expected.is_empty());
    let mut failures = Vec::new();
    for (text, want) in texts.iter().zip(&expected) {
        let want: Vec<u32> = want
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect();
        let got = tok.encode_raw(text).unwrap();
        if got != want {
            failures.push(format!("{text:?}: got {got:?}, want {want:?}"));
            continue;
        }
        // Decoding gives the text back whenever every piece was known (no unknown/control id).
        let decoded = tok.decode(&got, true);
        if decoded != *text && !got.iter().any(|&id| tok.is_control(id)) {
            failures.push(format!("{text:?}: decoded as {decoded:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} vectors fail:\n{}",
        failures.len(),
        expected.len(),
        failures.join("\n")
    );
}

#[test]
fn llama_spm() {
    check_vocab("llama-spm");
}

#[test]
fn phi_3() {
    check_vocab("phi-3");
}

#[test]
fn llama_bpe() {
    check_vocab("llama-bpe");
}

#[test]
fn qwen2() {
    check_vocab("qwen2");
}

#[test]
fn gpt_2() {
    check_vocab("gpt-2");
}

/// Gemma's SentencePiece vocabulary (a small one trained with Gemma's settings: no dummy prefix,
/// whitespace pieces, byte fallback) splits unicode, whitespace runs, digits, code and emoji as
/// transformers does, read from the Hugging Face folder's tokenizer.json and from the GGUF file
/// llama.cpp's converter made of its tokenizer.model.
#[test]
fn gemma_sentencepiece_matches_transformers() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/archs");
    for arch in ["gemma2", "gemma3"] {
        let vectors: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!("{dir}/tiny-{arch}/tokenizer-vectors.json")).unwrap(),
        )
        .unwrap();
        for source in ["hf".to_string(), format!("tiny-{arch}-F16.gguf")] {
            let path = format!("{dir}/tiny-{arch}/{source}");
            let file = ember::ModelFile::open(path.as_ref()).expect("model opens");
            let tok = &file.tokenizer;
            assert!(tok.add_bos, "{path}: Gemma starts with BOS");
            let mut failures = Vec::new();
            for v in vectors["strings"].as_array().unwrap() {
                let text = v["text"].as_str().unwrap();
                let want: Vec<u32> = v["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_u64().unwrap() as u32)
                    .collect();
                // transformers parses the chat markers in text, as Ember does with specials on.
                let got = tok.encode(text, true).unwrap();
                let got = got.strip_prefix(&[tok.bos.unwrap()][..]).unwrap_or(&got);
                if got != want {
                    failures.push(format!("{text:?}: got {got:?}, want {want:?}"));
                } else if tok.decode(got, true) != text {
                    failures.push(format!("{text:?}: decoded as {:?}", tok.decode(got, true)));
                }
            }
            assert!(failures.is_empty(), "{path}:\n{}", failures.join("\n"));
            // Chat: <end_of_turn> ends an answer; Gemma 2's template refuses a system turn,
            // which then goes into the first user turn.
            let eot = tok.token_id("<end_of_turn>").unwrap();
            assert!(tok.stop_ids.contains(&eot), "{path}");
            let msgs = [
                ChatMessage::new("system", "Be brief."),
                ChatMessage::new("user", "Hi"),
            ];
            let text = tok.apply_chat_template(&msgs, true).unwrap();
            assert_eq!(
                text,
                "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n",
                "{path}"
            );
            let ids = tok.encode_chat(&msgs).unwrap();
            assert_eq!(
                ids.iter().filter(|&&i| Some(i) == tok.bos).count(),
                1,
                "{path}"
            );
        }
    }
}

/// Random text for the parity test: words, digits, whitespace runs, accented letters, CJK, emoji,
/// byte-fallback and special-token look-alikes, in random order.
fn random_text(rng: &mut common::Rng) -> String {
    const PARTS: &[&str] = &[
        "the",
        " cat",
        "Hello",
        " world",
        "don't",
        "I'll",
        "12345",
        "3.14",
        "  ",
        "\n",
        "\n\n",
        "\t",
        " ",
        "é",
        "naïve",
        "Ünïcödé",
        "日本語",
        "中文字",
        "🙂",
        "👩‍💻",
        "<unk>",
        "<0x41>",
        "<|im_start|>",
        "<end_of_turn>",
        "fn main() {",
        "}",
        "=>",
        "...",
        "—",
        "ﬁ",
        "\u{0}",
        "straße",
        "ΑΒΓ",
        "кот",
        "x",
        "zzzz",
        "\r\n",
        "’s",
    ];
    let n = 1 + (rng.byte() % 24) as usize;
    (0..n)
        .map(|_| {
            if rng.byte() < 24 {
                // A random code point (surrogates and out-of-range values skipped).
                let c = u32::from(rng.byte()) << 8 | u32::from(rng.byte());
                char::from_u32(c + 0x80)
                    .map(String::from)
                    .unwrap_or_default()
            } else {
                PARTS[rng.byte() as usize % PARTS.len()].to_string()
            }
        })
        .collect()
}

/// Ember's compact BPE encodes exactly as the `tokenizers` crate's BPE model does, for every BPE
/// tokenizer.json in the test data (byte-level, SentencePiece-style with byte fallback and fused
/// unknowns, Metaspace), and with `ignore_merges` switched on, over random text.
#[test]
fn compact_bpe_encodes_as_tokenizers_does() {
    let mut rng = common::Rng::fresh("compact_bpe_encodes_as_tokenizers_does");
    let root = env!("CARGO_MANIFEST_DIR");
    let folders = [
        "tests/data/hf-tiny/tiny-hf-qwen2",
        "tests/data/archs/tiny-gemma3/hf",
        "tests/data/archs/tiny-phi3/hf",
    ];
    let scratch = std::env::temp_dir().join(format!("ember-bpe-parity-{}", std::process::id()));
    for folder in folders {
        for ignore_merges in [false, true] {
            let dir = std::path::Path::new(root).join(folder);
            let mut json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap())
                    .unwrap();
            json["model"]["ignore_merges"] = ignore_merges.into();
            // The folder with this tokenizer.json: Ember reads folders, `tokenizers` the JSON.
            std::fs::create_dir_all(&scratch).unwrap();
            std::fs::write(scratch.join("tokenizer.json"), json.to_string()).unwrap();
            let ours = Tokenizer::from_hf_folder(&scratch, &serde_json::Value::Null).unwrap();
            let mut theirs: tokenizers::Tokenizer = json.to_string().parse().unwrap();
            for _ in 0..400 {
                let text = random_text(&mut rng);
                // Special-token text parsed as those tokens, then as ordinary text.
                for parse_special in [true, false] {
                    theirs.set_encode_special_tokens(!parse_special);
                    let want = theirs.encode(text.as_str(), false).unwrap();
                    let bos = ours.bos.filter(|_| ours.add_bos);
                    let got = ours.encode(&text, parse_special).unwrap();
                    assert_eq!(
                        got.strip_prefix(bos.as_slice()).unwrap_or(&got),
                        want.get_ids(),
                        "{folder} (ignore_merges {ignore_merges}, specials {parse_special}): {text:?}"
                    );
                }
            }
        }
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}
