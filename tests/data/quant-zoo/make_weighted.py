"""Importance-weighted quantization references: the zoo's original rows (zoo_Q4_0.json)
quantized by the pinned llama.cpp's ggml_quantize_chunk (through ctypes on its
libggml-base.so, as llama-quantize --imatrix calls it) with a synthetic importance vector per
tensor (log-normal per column, seeded), for every type whose quantizer uses one. Writes
weighted.json: per tensor its importance vector, and per type the bytes llama.cpp wrote.

usage: python make_weighted.py LLAMA_CPP_DIR
Pinned: llama.cpp b11312 (commit 0c1e5709)."""
import json, os, sys

import numpy as np

import ggml_lib

HERE = os.path.dirname(os.path.abspath(__file__))
TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL",
         "IQ4_XS", "IQ3_XXS", "IQ3_S", "IQ2_XXS", "IQ2_XS", "IQ2_S",
         "IQ1_S", "IQ1_M"]


def main():
    llama = sys.argv[1]
    lib = ggml_lib.load(llama)
    from gguf.constants import GGMLQuantizationType as Q, GGML_QUANT_SIZES
    source = json.load(open(os.path.join(HERE, "zoo_Q4_0.json")))
    rng = np.random.default_rng(20261130)
    out = {"notes": __doc__, "tensors": []}
    for t in source["tensors"]:
        cols, rows = t["ne"]
        orig = np.array(t["original_f32"], dtype=np.float32)
        imp = rng.lognormal(0.0, 1.0, cols).astype(np.float32)
        entry = {"name": t["name"], "ne": t["ne"], "importance": [float(v) for v in imp],
                 "raw_hex": {}}
        for name in TYPES:
            block, size = GGML_QUANT_SIZES[Q[name]]
            buf = np.zeros(rows * cols // block * size, dtype=np.uint8)
            n = lib.ggml_quantize_chunk(int(Q[name]), orig.ctypes.data, buf.ctypes.data, 0, rows,
                                        cols, imp.ctypes.data)
            assert n == buf.size
            entry["raw_hex"][name] = buf.tobytes().hex()
        out["tensors"].append(entry)
    json.dump(out, open(os.path.join(HERE, "weighted.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
