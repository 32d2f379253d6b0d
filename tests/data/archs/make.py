"""Tiny random models of the architectures beyond llama/qwen2, with their references.

For each architecture: a Hugging Face folder made by transformers' own model code (random bf16
weights; SmolLM2's byte-level BPE tokenizer, or for Gemma and Phi-3, whose converter wants a
tokenizer.model, a 1024-piece SentencePiece BPE vocabulary with byte fallback trained here with
`sentencepiece` on the repository's text), converted to GGUF by llama.cpp's convert_hf_to_gguf.py
(F16) and quantized by llama-quantize (Q8_0); references computed by transformers in float32 on
the weights each file holds (the quantized file's weights dequantized with gguf-py, never
transformers' GGUF loader): prompt ids, top-5 logits at every position, 16 greedy ids. For the
SentencePiece vocabularies also tokenizer-vectors.json: transformers' ids of TOKENIZER_STRINGS
(checked against sentencepiece itself for Gemma).

usage: python make.py LLAMA_CPP_DIR [ARCH ...]
  LLAMA_CPP_DIR: the pinned llama.cpp tree (scripts/bench_vs_llamacpp.sh builds it), with
  build/bin/llama-quantize; needs torch, transformers, safetensors, sentencepiece, protobuf and
  its gguf-py.
Pinned: transformers 5.24.0, torch 2.15.0, sentencepiece 0.2.3, llama.cpp b11312."""
import json, os, shutil, subprocess, sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER = os.path.join(HERE, "..", "hf-tiny", "tiny-hf-llama")
PROMPTS = ["Once upon a time", "The capital of France is",
           "def add(a, b):\n    return a + b\n\nprint(add(2, 3))  # the sum of two and three is"]


# Gemma 2's chat template as Google ships it (raises on a system turn; Ember must cope).
GEMMA_TEMPLATE = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
                  "{{ raise_exception('System role not supported') }}{% endif %}"
                  "{% for message in messages %}"
                  "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
                  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
                  "{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
                  "{% else %}{% set role = message['role'] %}{% endif %}"
                  "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
                  "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}")

PHI3_TEMPLATE = ("{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content']"
                 " + '<|end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}"
                 "{% else %}{{ eos_token }}{% endif %}")

# Strings the tokenizers must split as transformers does (unicode, whitespace runs, digits,
# code, emoji).
TOKENIZER_STRINGS = [
    "Hello world", " Hello world", "  two leading spaces", "tabs\tand\nnew\n\nlines   ",
    "3.14159 and 1234567890", "def f(x):\n    return x ** 2  # square",
    "naïve café — Zürich, Ελληνικά, русский, 日本語のテキスト", "emoji 🙂🚀 and 👩‍💻",
    "<start_of_turn>user\nhi<end_of_turn>", "", " ", "\n", "a\u00a0b", "x" * 40,
]


def train_spm(out, gemma):
    """A small SentencePiece BPE model with byte fallback, trained on the repository's text:
    Gemma's settings (no dummy prefix, whitespace pieces, its special ids) or Llama 2's (Phi-3)."""
    import glob
    import sentencepiece as spm
    root = os.path.join(HERE, "..", "..", "..")
    text = []
    for f in sorted(glob.glob(os.path.join(root, "src", "**", "*.rs"), recursive=True))[:60]:
        text.append(open(f, encoding="utf-8").read())
    for f in sorted(glob.glob(os.path.join(HERE, "..", "vocab", "*.inp"))):
        text.append(open(f, encoding="utf-8").read())
    text.append(open(os.path.join(root, "README.md"), encoding="utf-8").read())
    lines = [l for t in text for l in t.split("\n") if l.strip()]
    settings = dict(model_type="bpe", vocab_size=1024, byte_fallback=True, character_coverage=1.0,
                    split_digits=True, normalization_rule_name="identity",
                    remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
                    max_sentence_length=100000, num_threads=1, minloglevel=2)
    if gemma:
        settings.update(pad_id=0, eos_id=1, bos_id=2, unk_id=3, add_dummy_prefix=False,
                        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
                        unk_piece="<unk>",
                        user_defined_symbols=["<mask>", "<start_of_turn>", "<end_of_turn>"])
    else:
        settings.update(unk_id=0, bos_id=1, eos_id=2, pad_id=-1, add_dummy_prefix=True)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines),
                                   model_prefix=os.path.join(out, "tokenizer"), **settings)
    os.remove(os.path.join(out, "tokenizer.vocab"))
    return spm.SentencePieceProcessor(model_file=os.path.join(out, "tokenizer.model"))


def configs():
    common = dict(vocab_size=49152, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  bos_token_id=1, eos_token_id=2)
    return {
        # head_dim 32 with a width of 64: the head size is its own setting.
        "qwen3": transformers.Qwen3Config(head_dim=32, rope_theta=1e6, rms_norm_eps=1e-6,
                                          tie_word_embeddings=True, **common),
        # Llama 3.2's frequency-dependent RoPE scaling, with an original context of 16 so that
        # the test prompts reach the scaled and the blended wavelengths.
        "llama3": transformers.LlamaConfig(
            rope_theta=5e5, rms_norm_eps=1e-5, tie_word_embeddings=True,
            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
            **common),
        # Mistral's sliding window, shorter than the longer test prompts.
        "mistral": transformers.MistralConfig(sliding_window=8, rope_theta=1e4, rms_norm_eps=1e-5,
                                              tie_word_embeddings=True, **common),
        # Gemma 2: a window of 8 on the even layers, attention and final soft-capping small
        # enough to cap these logits, an attention scale from query_pre_attn_scalar.
        "gemma2": transformers.Gemma2Config(
            **{**common, "vocab_size": 1024, "bos_token_id": 2, "eos_token_id": 1,
               "num_hidden_layers": 4}, pad_token_id=0,
            head_dim=32, query_pre_attn_scalar=32, sliding_window=8, attn_logit_softcapping=4.0,
            final_logit_softcapping=3.0, rope_theta=1e4, rms_norm_eps=1e-6,
            tie_word_embeddings=True),
        # Gemma 3: five local layers (window 8, RoPE base 1e4) to one global (base 1e6, linear
        # scaling 8), q/k norms, no soft-capping.
        "gemma3": transformers.Gemma3TextConfig(
            **{**common, "vocab_size": 1024, "bos_token_id": 2, "eos_token_id": 1,
               "num_hidden_layers": 6}, pad_token_id=0,
            head_dim=32, query_pre_attn_scalar=32, sliding_window=8, rms_norm_eps=1e-6,
            rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 1e4},
                             "full_attention": {"rope_type": "linear", "factor": 8.0,
                                                "rope_theta": 1e6}},
            tie_word_embeddings=True),
        # Phi-3: fused q/k/v and gate/up, RoPE on the first 24 of each head's 32 dimensions,
        # longrope frequency factors (the short ones: the context is the original one, where
        # transformers and llama.cpp both take them), a separate output head, a vocabulary with
        # added chat tokens and padding rows.
        "phi3": transformers.Phi3Config(
            vocab_size=1032, hidden_size=128, intermediate_size=192, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
            original_max_position_embeddings=512, bos_token_id=1, eos_token_id=1027,
            pad_token_id=1024, rms_norm_eps=1e-5, tie_word_embeddings=False,
            rope_parameters={"rope_type": "longrope", "rope_theta": 1e4,
                             "partial_rotary_factor": 0.75,
                             "short_factor": [1.0 + 0.25 * i for i in range(12)],
                             "long_factor": [2.0 + 0.5 * i for i in range(12)]}),
    }


# What llama.cpp's reading of the GGUF leaves out, so the GGUF references do too: its converter
# writes Mistral as `llama`, without the window.
GGUF_READING = {"mistral": {"sliding_window": None}}


def randomize(m):
    torch.manual_seed(20261130)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "norm" in n:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif "bias" in n:
                p.copy_(0.5 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))


def reference(model, tok, what):
    res = {"model": what, "compute": f"float32 (transformers {transformers.__version__}, "
           f"torch {torch.__version__})", "prompts": []}
    for p in PROMPTS:
        ids = tok(p, return_tensors="pt", add_special_tokens=False).input_ids
        with torch.no_grad():
            lg = model(ids).logits[0]
            t = torch.topk(lg, 5, dim=-1)
            g = model.generate(ids, max_new_tokens=16, do_sample=False,
                               attention_mask=torch.ones_like(ids), pad_token_id=2)[0, ids.shape[1]:]
        res["prompts"].append({
            "text": p, "prompt_ids": ids[0].tolist(),
            "top5_per_position": [[[int(a), round(float(b), 5)] for a, b in zip(i, v)]
                                  for i, v in zip(t.indices, t.values)],
            "greedy_ids": g.tolist()})
    return res


def dequantized_state(gguf_path, model):
    """The model's state dict with every tensor the GGUF holds, dequantized by gguf-py and mapped
    back to HF names through the converter's own tensor-name map."""
    import gguf
    reader = gguf.GGUFReader(gguf_path)
    field = reader.fields["general.architecture"]
    arch = bytes(field.parts[field.data[0]]).decode()
    nmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], model.config.num_hidden_layers)
    # llama.cpp's converter permutes llama's q/k rows for its interleaved RoPE; undo it.
    permute = arch == "llama"
    by_gguf = {}
    for name in model.state_dict():
        base, suffix = name.rsplit(".", 1)
        g = nmap.get_name(base)
        if g is not None:
            by_gguf[f"{g}.{suffix}"] = name
    state = model.state_dict()
    cfg = model.config
    for t in reader.tensors:
        if t.name not in by_gguf:
            continue  # derived data such as llama3's rope_freqs, not a weight
        w = gguf.dequantize(t.data, t.tensor_type).astype(np.float32)
        hf = by_gguf[t.name]
        w = w.reshape(state[hf].shape)
        if permute and t.name.endswith(("attn_q.weight", "attn_k.weight")):
            heads = cfg.num_attention_heads if "attn_q" in t.name else cfg.num_key_value_heads
            w = w.reshape(heads, w.shape[0] // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2)
            w = w.reshape(state[hf].shape)
        if arch.startswith("gemma") and t.name.endswith("norm.weight"):
            w = w - 1  # the converter stores Gemma's norms as 1 + w; transformers adds the 1
        state[hf] = torch.from_numpy(w.copy())
    if model.config.tie_word_embeddings:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    return state


# Architectures whose converter wants a SentencePiece tokenizer.model: the HF tokenizer class
# made from it, and the chat template.
SENTENCEPIECE = {"gemma2": ("GemmaTokenizer", GEMMA_TEMPLATE),
                 "gemma3": ("GemmaTokenizer", GEMMA_TEMPLATE),
                 "phi3": ("LlamaTokenizer", PHI3_TEMPLATE)}
# Phi-3's chat tokens, after the SentencePiece pieces (ids 1024..).
PHI3_ADDED = ["<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"]


def sentencepiece_tokenizer(arch, hf):
    """Trains the tokenizer.model, saves transformers' tokenizer of it (tokenizer.json and
    tokenizer_config.json) beside it, checks that both split TOKENIZER_STRINGS alike, and writes
    transformers' ids of them as tokenizer-vectors.json."""
    cls, template = SENTENCEPIECE[arch]
    import tempfile
    spm_dir = tempfile.mkdtemp()
    sp = train_spm(spm_dir, gemma=cls == "GemmaTokenizer")
    # Converted in a folder of its own: with config.json beside it transformers may convert
    # differently. Checked against sentencepiece below.
    tok = getattr(transformers, cls).from_pretrained(spm_dir)
    if arch == "phi3":
        tok.add_special_tokens({"additional_special_tokens": PHI3_ADDED})
        tok.eos_token = "<|end|>"
        tok.pad_token = "<|endoftext|>"
    shutil.copy(os.path.join(spm_dir, "tokenizer.model"), hf)
    tok.chat_template = template
    tok.save_pretrained(hf)
    # As the released models' files say: a BOS in front (the converter copies this to the GGUF);
    # no path of this machine.
    tcfg_path = os.path.join(hf, "tokenizer_config.json")
    tcfg = json.load(open(tcfg_path))
    tcfg.pop("vocab_file", None)
    tcfg["add_bos_token"] = True
    # The added tokens as the released models list them (transformers 4's form, which the
    # converter reads for the token types): every one special, chat markers included.
    tj_path = os.path.join(hf, "tokenizer.json")
    tj = json.load(open(tj_path))
    for t in tj["added_tokens"]:
        t["special"] = True
    json.dump(tj, open(tj_path, "w"), ensure_ascii=False)
    tcfg["added_tokens_decoder"] = {str(t["id"]): {k: v for k, v in t.items() if k != "id"}
                                    for t in tj["added_tokens"]}
    json.dump(tcfg, open(tcfg_path, "w"), indent=2)
    tok = AutoTokenizer.from_pretrained(hf)
    vectors = []
    for text in TOKENIZER_STRINGS:
        ids = tok(text, add_special_tokens=False).input_ids
        # (transformers' Llama tokenizer splits some whitespace runs otherwise than
        # sentencepiece does; Phi-3's vocabulary is checked against llama.cpp's vectors.)
        if cls == "GemmaTokenizer" and "<start_of_turn>" not in text:
            assert ids == sp.encode(text), (text, ids, sp.encode(text))
        vectors.append({"text": text, "ids": ids})
    json.dump({"tokenizer": f"transformers {transformers.__version__} {cls}", "strings": vectors},
              open(os.path.join(hf, "..", "tokenizer-vectors.json"), "w"), indent=1,
              ensure_ascii=False)
    return tok


def make(arch, cfg, llama_cpp):
    out = os.path.join(HERE, f"tiny-{arch}")
    hf = os.path.join(out, "hf")
    os.makedirs(hf, exist_ok=True)
    m = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    randomize(m)
    m.to(torch.bfloat16).save_pretrained(hf, safe_serialization=True)
    if arch in SENTENCEPIECE:
        tok = sentencepiece_tokenizer(arch, hf)
    else:
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(TOKENIZER, f), hf)
        tok = AutoTokenizer.from_pretrained(hf)
    model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
    json.dump(reference(model, tok, f"tiny-{arch} folder (bf16 weights)"),
              open(os.path.join(out, "reference.json"), "w"), indent=1)
    if arch == "phi3":
        # The long factors, which llama.cpp takes for a context beyond the original one (and
        # transformers once a sequence grows past it).
        rotary = model.model.rotary_emb
        long_freq, _ = transformers.modeling_rope_utils.ROPE_INIT_FUNCTIONS["longrope"](
            model.config, seq_len=model.config.original_max_position_embeddings + 1)
        rotary.original_inv_freq.copy_(long_freq)
        json.dump(reference(model, tok, f"tiny-{arch} folder with the long rope factors"),
                  open(os.path.join(out, "reference-long.json"), "w"), indent=1)
    # The GGUF files as llama.cpp reads them: the same weights (F16 holds bf16 exactly).
    config = transformers.AutoConfig.from_pretrained(hf)
    for k, v in GGUF_READING.get(arch, {}).items():
        setattr(config, k, v)
    model = AutoModelForCausalLM.from_pretrained(hf, config=config, dtype=torch.float32).eval()
    json.dump(reference(model, tok, f"tiny-{arch}-F16.gguf as llama.cpp reads it"),
              open(os.path.join(out, "reference-F16.json"), "w"), indent=1)
    f16 = os.path.join(out, f"tiny-{arch}-F16.gguf")
    subprocess.run([sys.executable, os.path.join(llama_cpp, "convert_hf_to_gguf.py"), hf,
                    "--outtype", "f16", "--outfile", f16], check=True)
    q8 = os.path.join(out, f"tiny-{arch}-Q8_0.gguf")
    subprocess.run([os.path.join(llama_cpp, "build", "bin", "llama-quantize"), f16, q8, "Q8_0"],
                   check=True, capture_output=True)
    model.load_state_dict(dequantized_state(q8, model))
    json.dump(reference(model, tok, f"tiny-{arch}-Q8_0.gguf, dequantized by gguf-py"),
              open(os.path.join(out, "reference-Q8_0.json"), "w"), indent=1)
    print(arch, {f: os.path.getsize(os.path.join(out, f)) for f in os.listdir(out) if f != "hf"})


if __name__ == "__main__":
    llama_cpp = sys.argv[1]
    wanted = sys.argv[2:]
    for arch, cfg in configs().items():
        if not wanted or arch in wanted:
            make(arch, cfg, llama_cpp)
