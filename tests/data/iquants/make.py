"""A tiny random Llama whose weights use every i-quant and ternary type, with its reference.

The model: hidden 256, FFN 768 (every row a whole number of 256-value blocks), 2 layers, 4 heads
of 64, 2 KV heads, the 1032-piece SentencePiece vocabulary of tests/data/archs/tiny-phi3, random
weights seeded as the other tiny models'. Made by llama.cpp as a user makes such a file:
convert_hf_to_gguf.py (F16), llama-imatrix over calibration.txt (its importance matrix is kept as
imatrix-llama.cpp.gguf; the F16 file is kept as tiny-llama-F16.gguf), then llama-quantize --imatrix with one type per tensor (TYPES); and
llama-imatrix of the quantized file over the same text (imatrix-of-iquants.gguf). The
reference is transformers in float32 on the quantized file's weights dequantized by gguf-py
(tests/data/archs/make.py's `reference` and `dequantized_state`).

usage: python make.py LLAMA_CPP_DIR   (the venv of tests/data/archs/make.py)
Pinned: transformers 5.24.0, torch 2.15.0, llama.cpp b11312."""
import json, os, shutil, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "archs"))
import make as archs  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

TOKENIZER = os.path.join(HERE, "..", "archs", "tiny-phi3", "hf")
# Every tensor's type: each i-quant and ternary type at least once, the embedding and output
# head included (the GPU's embedding lookup and the last product read them).
TYPES = {
    "token_embd": "iq4_xs", "output": "iq3_s",
    "blk.0.attn_q": "iq2_xxs", "blk.0.attn_k": "iq2_xs", "blk.0.attn_v": "iq2_s",
    "blk.0.attn_output": "iq3_xxs", "blk.0.ffn_gate": "iq3_s", "blk.0.ffn_up": "iq1_s",
    "blk.0.ffn_down": "iq1_m",
    "blk.1.attn_q": "iq4_nl", "blk.1.attn_k": "iq4_xs", "blk.1.attn_v": "tq1_0",
    "blk.1.attn_output": "tq2_0", "blk.1.ffn_gate": "iq2_xxs", "blk.1.ffn_up": "iq3_xxs",
    "blk.1.ffn_down": "iq2_s",
}


def main():
    llama = sys.argv[1]
    sys.path.insert(0, os.path.join(llama, "gguf-py"))
    work = tempfile.mkdtemp()
    hf = os.path.join(work, "hf")
    cfg = transformers.LlamaConfig(
        vocab_size=1032, hidden_size=256, intermediate_size=768, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=512,
        bos_token_id=1, eos_token_id=1027, pad_token_id=1024, rope_theta=1e4, rms_norm_eps=1e-5,
        tie_word_embeddings=False)
    m = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    archs.randomize(m)
    m.to(torch.bfloat16).save_pretrained(hf, safe_serialization=True)
    for f in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(os.path.join(TOKENIZER, f), hf)
    tok = AutoTokenizer.from_pretrained(hf)
    # The F16 file is kept: the source the importance-matrix measurements quantize from.
    f16 = os.path.join(HERE, "tiny-llama-F16.gguf")
    subprocess.run([sys.executable, os.path.join(llama, "convert_hf_to_gguf.py"), hf,
                    "--outtype", "f16", "--outfile", f16], check=True, capture_output=True)
    bin_dir = os.path.join(llama, "build", "bin")
    imatrix = os.path.join(HERE, "imatrix-llama.cpp.gguf")
    subprocess.run([os.path.join(bin_dir, "llama-imatrix"), "-m", f16, "-f",
                    os.path.join(HERE, "calibration.txt"), "-o", imatrix, "-c", "128",
                    "--process-output", "-t", "2"], check=True, capture_output=True)
    out = os.path.join(HERE, "tiny-llama-iquants.gguf")
    # (Patterns are searched for, so "output" would also match every attn_output: the two
    # outer tensors have their own flags.)
    overrides = [a for name, t in TYPES.items() if name.startswith("blk.")
                 for a in ("--tensor-type", f"{name}={t}")]
    # The file type (IQ2_XXS) only names the file; every tensor's type comes from TYPES.
    subprocess.run([os.path.join(bin_dir, "llama-quantize"), "--imatrix", imatrix,
                    "--token-embedding-type", TYPES["token_embd"],
                    "--output-tensor-type", TYPES["output"], *overrides, f16, out, "IQ2_XXS"],
                   check=True, capture_output=True)
    import gguf
    got = {t.name.removesuffix(".weight"): t.tensor_type.name
           for t in gguf.GGUFReader(out).tensors if t.name.endswith(".weight")}
    for name, t in TYPES.items():
        assert got[name] == t.upper(), (name, got[name], t)
    # llama.cpp's importance matrix of the quantized file itself: what `ember imatrix` of the
    # same file and text must reproduce.
    subprocess.run([os.path.join(bin_dir, "llama-imatrix"), "-m", out, "-f",
                    os.path.join(HERE, "calibration.txt"), "-o",
                    os.path.join(HERE, "imatrix-of-iquants.gguf"), "-c", "128",
                    "--process-output", "-t", "2"], check=True, capture_output=True)
    model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
    model.load_state_dict(archs.dequantized_state(out, model))
    ref = archs.reference(model, tok, "tiny-llama-iquants.gguf, dequantized by gguf-py")
    ref["tensor_types"] = got
    json.dump(ref, open(os.path.join(HERE, "reference.json"), "w"), indent=1)
    print({f: os.path.getsize(os.path.join(HERE, f)) for f in os.listdir(HERE)})


if __name__ == "__main__":
    main()
