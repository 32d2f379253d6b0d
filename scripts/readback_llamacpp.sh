#!/usr/bin/env bash
# Every type and mixture `ember quantize` writes, read back by llama.cpp itself: the tiny i-quant
# Llama (source: its F16 file; rows of 256 and 768, so no type falls back) is quantized by Ember
# to each, with Ember's importance matrix of the calibration text, then every tensor is
# dequantized by gguf-py and the whole file evaluated by llama-perplexity (which must load it and
# print a finite perplexity). Prints one line per type; fails on the first file either reader
# refuses. Not part of CI (it builds llama.cpp); about two minutes here once llama.cpp is built.
#
# usage: scripts/readback_llamacpp.sh
# env:   PEER_DIR (default target/peer): where llama.cpp b11312 is built (scripts/llamacpp.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
# shellcheck source=scripts/llamacpp.sh
source scripts/llamacpp.sh
build_llamacpp llama-perplexity
cargo build --release --quiet --bin ember
ember=target/release/ember
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PYTHONPATH=$peer/llama.cpp/gguf-py
src=tests/data/iquants/tiny-llama-F16.gguf
calib=tests/data/iquants/calibration.txt
head -c 8192 /usr/share/common-licenses/GPL-3 > "$work/eval.txt"
"$ember" imatrix -m "$src" -f "$calib" -o "$work/imatrix.gguf" -c 128 2>/dev/null
# The list `ember quantize` prints for an unknown type is the list of what it writes.
types=$({ "$ember" quantize "$src" "$work/x.gguf" --type no-such-type 2>&1 || true; } |
  sed -n 's/.*use one of \(.*\))$/\1/p' | sed 's/([^)]*)//g; s/[,*]/ /g')
[ -n "$types" ] || { echo "could not read the writable types from ember" >&2; exit 1; }
for t in $types; do
  out="$work/$t.gguf"
  "$ember" quantize "$src" "$out" --type "$t" --imatrix "$work/imatrix.gguf" 2>/dev/null
  kinds=$(python3 - "$out" <<'PY'
import sys
import gguf
from gguf.quants import dequantize
kinds = set()
for t in gguf.GGUFReader(sys.argv[1]).tensors:
    dequantize(t.data, t.tensor_type)
    kinds.add(t.tensor_type.name)
print(" ".join(sorted(kinds)))
PY
  )
  ppl=$("$bin/llama-perplexity" -m "$out" -f "$work/eval.txt" -c 128 -t "$(nproc)" 2>&1 |
    sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
  [ -n "$ppl" ] || { echo "llama.cpp could not evaluate $t" >&2; exit 1; }
  printf '%-8s gguf-py ok, llama-perplexity %s  (tensor types: %s)\n' "$t" "$ppl" "$kinds"
done
