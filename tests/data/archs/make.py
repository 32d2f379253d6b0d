"""Tiny random models of the architectures beyond llama/qwen2, with their references.

For each architecture: a Hugging Face folder made by transformers' own model code (random bf16
weights, SmolLM2's tokenizer), converted to GGUF by llama.cpp's convert_hf_to_gguf.py (F16) and
quantized by llama-quantize (Q8_0); references computed by transformers in float32 on the weights
each file holds (the quantized file's weights dequantized with gguf-py, never transformers' GGUF
loader): prompt ids, top-5 logits at every position, 16 greedy ids.

usage: python make.py LLAMA_CPP_DIR [ARCH ...]
  LLAMA_CPP_DIR: the pinned llama.cpp tree (scripts/bench_vs_llamacpp.sh builds it), with
  build/bin/llama-quantize; needs torch, transformers, safetensors and its gguf-py.
Pinned: transformers 5.24.0, torch 2.15.0, llama.cpp b11312."""
import json, os, shutil, subprocess, sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER = os.path.join(HERE, "..", "hf-tiny", "tiny-hf-llama")
PROMPTS = ["Once upon a time", "The capital of France is",
           "def add(a, b):\n    return a + b\n\nprint(add(2, 3))  # the sum of two and three is"]


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
        state[hf] = torch.from_numpy(w.copy())
    if model.config.tie_word_embeddings:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    return state


def make(arch, cfg, llama_cpp):
    out = os.path.join(HERE, f"tiny-{arch}")
    hf = os.path.join(out, "hf")
    os.makedirs(hf, exist_ok=True)
    m = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    randomize(m)
    m.to(torch.bfloat16).save_pretrained(hf, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOKENIZER, f), hf)
    tok = AutoTokenizer.from_pretrained(hf)
    model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
    json.dump(reference(model, tok, f"tiny-{arch} folder (bf16 weights)"),
              open(os.path.join(out, "reference.json"), "w"), indent=1)
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
