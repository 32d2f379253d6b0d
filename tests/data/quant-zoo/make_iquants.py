"""The i-quant members of the quant zoo: the zoo's own original f32 rows (the values
llama-quantize read for the other types) quantized by llama.cpp's ggml_quantize_chunk (what
llama-quantize calls), through ctypes on the pinned build's libggml-base.so, and dequantized by
gguf-py. Writes zoo_<TYPE>.gguf and zoo_<TYPE>.json in the schema of the other zoo files.

The 2-bit and 1-bit types (which llama.cpp refuses to make without an importance matrix) get a
synthetic one: each column's mean square over the tensor's rows plus a small floor, which is
what a calibration run measures when the weights' inputs are about unit-scale.

usage: python make_iquants.py LLAMA_CPP_DIR [TYPE ...]   (default: every i-quant and ternary type)
Pinned: llama.cpp b11312 (commit 0c1e5709)."""
import hashlib, json, os, sys

import numpy as np

import ggml_lib

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    llama = sys.argv[1]
    types = sys.argv[2:] or ["IQ4_NL", "IQ4_XS", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS",
                             "IQ3_S", "IQ1_S", "IQ1_M", "TQ1_0", "TQ2_0"]
    lib = ggml_lib.load(llama)
    import gguf
    from gguf.quants import dequantize
    from gguf.constants import GGMLQuantizationType as Q, GGML_QUANT_SIZES
    source = json.load(open(os.path.join(HERE, "zoo_Q4_0.json")))
    for name in types:
        qt = Q[name]
        needs_imatrix = lib.ggml_quantize_requires_imatrix(int(qt))
        block, size = GGML_QUANT_SIZES[qt]
        tensors, writer = [], gguf.GGUFWriter(os.path.join(HERE, f"zoo_{name}.gguf"), "zoo")
        for t in source["tensors"]:
            orig = np.array(t["original_f32"], dtype=np.float32)
            cols, rows = t["ne"]
            out = np.zeros(rows * cols // block * size, dtype=np.uint8)
            imatrix = None
            if needs_imatrix:
                sq = orig.reshape(rows, cols).astype(np.float64) ** 2
                imatrix = (sq.mean(axis=0) + 1e-3).astype(np.float32)
            n = lib.ggml_quantize_chunk(int(qt), orig.ctypes.data, out.ctypes.data, 0, rows,
                                        cols, None if imatrix is None else imatrix.ctypes.data)
            assert n == out.size, (name, n, out.size)
            raw = out.tobytes()
            deq = dequantize(out.reshape(rows, -1), qt).astype(np.float32).reshape(-1)
            err = deq.astype(np.float64) - orig.astype(np.float64)
            writer.add_tensor(t["name"], out.reshape(rows, cols // block * size), raw_dtype=qt)
            tensors.append({
                "name": t["name"], "ggml_type": name, "ggml_type_id": int(qt),
                "block_size": block, "type_size": size, "ne": t["ne"],
                "numpy_shape": t["numpy_shape"], "n_bytes": len(raw),
                "bytes_per_row": len(raw) // rows, "source_tensor": t["source_tensor"],
                "source_rows": t["source_rows"], "raw_sha256": hashlib.sha256(raw).hexdigest(),
                "raw_hex": raw.hex(),
                "dequant_f32le_sha256": hashlib.sha256(deq.astype("<f4").tobytes()).hexdigest(),
                "rms_error": float(np.sqrt(np.mean(err ** 2))),
                "max_abs_error": float(np.max(np.abs(err))),
                "original_rms": float(np.sqrt(np.mean(orig.astype(np.float64) ** 2))),
                "dequant": [float(f"{v:.6g}") for v in deq],
                "original_f32": t["original_f32"],
            })
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        gguf_bytes = open(os.path.join(HERE, f"zoo_{name}.gguf"), "rb").read()
        json.dump({
            "file": f"zoo_{name}.gguf", "ggml_type": name,
            "gguf_sha256": hashlib.sha256(gguf_bytes).hexdigest(),
            "notes": source["notes"] + " Made by make_iquants.py: the original_f32 rows of the "
                     "Q4_0 zoo quantized by ggml_quantize_chunk ("
                     + ("with the synthetic importance matrix in make_iquants.py)." if needs_imatrix
                        else "no importance matrix)."),
            "llama_cpp_commit": source["llama_cpp_commit"],
            "quantizer": "ggml_quantize_chunk (libggml-base, as llama-quantize)",
            "gguf_py": source["gguf_py"], "tensors": tensors,
        }, open(os.path.join(HERE, f"zoo_{name}.json"), "w"), indent=1)
        print(name, [(t["name"], round(t["rms_error"] / t["original_rms"], 4)) for t in tensors])


if __name__ == "__main__":
    main()
