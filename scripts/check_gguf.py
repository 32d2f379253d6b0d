#!/usr/bin/env python3
"""Reads GGUF files written by `ember quantize` with an independent reader (the `gguf` package
from PyPI, llama.cpp's own Python library) and checks them against their source: same tensors,
declared types and shapes, offsets aligned, and dequantized values close to the source's.

usage: check_gguf.py SOURCE.gguf OUT.gguf [OUT.gguf ...]
"""
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def tensors(reader):
    return {t.name: t for t in reader.tensors}


def main():
    source = GGUFReader(sys.argv[1])
    src = tensors(source)
    for path in sys.argv[2:]:
        out = GGUFReader(path)
        got = tensors(out)
        assert set(got) == set(src), f"{path}: tensor names differ"
        align = int(out.fields["general.alignment"].parts[-1][0]) if "general.alignment" in out.fields else 32
        for key in ("general.architecture", "tokenizer.ggml.model", "tokenizer.ggml.tokens"):
            assert key in out.fields, f"{path}: {key} missing"
        worst = 0.0
        for name, t in got.items():
            s = src[name]
            assert list(t.shape) == list(s.shape), f"{path} {name}: shape {t.shape} vs {s.shape}"
            assert t.data_offset % align == 0, f"{path} {name}: offset {t.data_offset} not aligned to {align}"
            a = dequantize(t.data, t.tensor_type).astype(np.float64).ravel()
            b = dequantize(s.data, s.tensor_type).astype(np.float64).ravel()
            rel = np.sqrt(np.mean((a - b) ** 2)) / max(np.sqrt(np.mean(b ** 2)), 1e-12)
            worst = max(worst, rel)
            # Ternary types only suit models trained ternary: on others they keep the signs and
            # little else, so for them the check is that the values read, not that they are close.
            # The 2-bit types lose a quarter to a third of the signal on this model, the 1.5-bit
            # ones up to half (more where an importance matrix pushes their error to the columns
            # that matter less); 3 bits and up a fifth or less.
            kind = t.tensor_type.name
            if kind in ("TQ1_0", "TQ2_0"):
                bound = 1.0
            elif kind.startswith("IQ1"):
                bound = 0.7
            elif kind.startswith("IQ2") or kind == "Q2_K":
                bound = 0.5
            else:
                bound = 0.25
            assert rel < bound, f"{path} {name}: {kind} relative RMS error {rel:.3g}"
        print(f"{path}: {len(got)} tensors read by gguf-py, worst relative RMS error {worst:.3g}")


if __name__ == "__main__":
    main()
