#!/usr/bin/env python3
"""Makes tests/data/fuzz/seeds/tiny-bpe-llama.gguf: a one-layer Llama (hidden size 32) with a
byte-level BPE vocabulary (GPT-2's first 600 tokens and the merges among them, from
tests/data/vocab/ggml-vocab-gpt-2.gguf) — a small seed for the GGUF fuzz target covering the
`gpt2` tokenizer path (the other seeds are SentencePiece vocabularies). Weights are random.

Needs gguf-py (llama.cpp's gguf-py on PYTHONPATH) and numpy."""
import os

import numpy as np
from gguf import GGUFReader, GGUFWriter, GGMLQuantizationType
from gguf.quants import quantize

HERE = os.path.dirname(os.path.abspath(__file__))
N_VOCAB = 600
HIDDEN, FFN, HEADS, KV_HEADS = 32, 64, 4, 2

vocab = GGUFReader(os.path.join(HERE, "..", "vocab", "ggml-vocab-gpt-2.gguf"))


def strings(key):
    field = vocab.fields[key]
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


tokens = strings("tokenizer.ggml.tokens")[:N_VOCAB]
kept = set(tokens)
merges = [m for m in strings("tokenizer.ggml.merges")
          if all(p in kept for p in m.split(" ")) and m.replace(" ", "") in kept]

rng = np.random.default_rng(7)
w = GGUFWriter(os.path.join(HERE, "seeds", "tiny-bpe-llama.gguf"), "llama")
w.add_name("tiny-bpe-llama (fuzz seed)")
w.add_context_length(256)
w.add_embedding_length(HIDDEN)
w.add_feed_forward_length(FFN)
w.add_block_count(1)
w.add_head_count(HEADS)
w.add_head_count_kv(KV_HEADS)
w.add_layer_norm_rms_eps(1e-5)
w.add_rope_freq_base(10000.0)
w.add_tokenizer_model("gpt2")
w.add_tokenizer_pre("gpt-2")
w.add_token_list(tokens)
w.add_token_types([1] * len(tokens))
w.add_token_merges(merges)
w.add_bos_token_id(0)
w.add_eos_token_id(1)
w.add_chat_template("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
                    "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def tensor(name, cols, rows, qtype=GGMLQuantizationType.F32):
    data = rng.standard_normal((rows, cols)).astype(np.float32) * 0.1
    if qtype != GGMLQuantizationType.F32:
        data = quantize(data, qtype)
    w.add_tensor(name, data, raw_dtype=qtype)


q8 = GGMLQuantizationType.Q8_0
tensor("token_embd.weight", HIDDEN, N_VOCAB, q8)
w.add_tensor("output_norm.weight", np.ones(HIDDEN, dtype=np.float32))
w.add_tensor("blk.0.attn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
w.add_tensor("blk.0.ffn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
tensor("blk.0.attn_q.weight", HIDDEN, HIDDEN, q8)
tensor("blk.0.attn_k.weight", HIDDEN, HIDDEN * KV_HEADS // HEADS, q8)
tensor("blk.0.attn_v.weight", HIDDEN, HIDDEN * KV_HEADS // HEADS)
tensor("blk.0.attn_output.weight", HIDDEN, HIDDEN, q8)
tensor("blk.0.ffn_gate.weight", HIDDEN, FFN, q8)
tensor("blk.0.ffn_up.weight", HIDDEN, FFN)
tensor("blk.0.ffn_down.weight", FFN, HIDDEN, q8)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(f"{len(tokens)} tokens, {len(merges)} merges")
