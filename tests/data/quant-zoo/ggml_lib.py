"""The pinned llama.cpp's quantizers through ctypes, for the zoo scripts: `load(LLAMA_CPP_DIR)`
puts its gguf-py on the import path and returns libggml-base.so with `ggml_quantize_chunk`
(what llama-quantize calls) and `ggml_quantize_requires_imatrix` declared."""
import ctypes
import os
import sys


def load(llama):
    sys.path.insert(0, os.path.join(llama, "gguf-py"))
    lib = ctypes.CDLL(os.path.join(llama, "build", "bin", "libggml-base.so"))
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                                        ctypes.c_void_p]
    lib.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
    return lib
