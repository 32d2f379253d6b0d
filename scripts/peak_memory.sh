#!/usr/bin/env bash
# Peak resident memory of CPU runs against the budget "model file + KV cache + 10%".
# Usage: scripts/peak_memory.sh [MODEL.gguf ...]   (default: the shipped model)
# Each model runs `ember run --backend cpu` with contexts $CTXS (default "256 1024"), generating
# until the context is full, so the whole KV cache is in use. The peak is GNU time's maximum
# resident set size; the KV cache's size comes from `ember info` (f32 on the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
ctxs=${CTXS:-256 1024}
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(assets/SmolLM2-135M-Instruct.Q4_1.gguf)
cargo build --release --quiet --bin ember
ember=target/release/ember
command -v /usr/bin/time >/dev/null || { echo "needs GNU time (/usr/bin/time)" >&2; exit 1; }
prompt="Once upon a time"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
printf '| model | context | file MiB | KV cache MiB | budget MiB | peak MiB | peak / (file + KV) |\n'
printf '|---|---:|---:|---:|---:|---:|---:|\n'
for m in "${models[@]}"; do
  file=$(stat -c %s "$m")
  # "kv cache: 360.00 MiB f32 / ... at the full context of 8192 (...)"
  read -r kv_full full < <("$ember" info -m "$m" | sed -n 's/^kv cache: *\([0-9.]*\) MiB f32.*full context of \([0-9]*\).*/\1 \2/p')
  for c in $ctxs; do
    n=$((c - 8))
    /usr/bin/time -o "$out" -f '%M' "$ember" run -m "$m" --backend cpu -c "$c" -n "$n" -p "$prompt" --temp 0 >/dev/null 2>&1
    peak_kib=$(tail -1 "$out")
    python3 - "$m" "$c" "$file" "$kv_full" "$full" "$peak_kib" <<'PY'
import sys
m, c, file, kv_full, full, peak_kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
mib = 1024 * 1024
kv = kv_full * mib * c / full
budget = (file + kv) * 1.1
peak = peak_kib * 1024
print(f"| {m.split('/')[-1]} | {c} | {file / mib:.1f} | {kv / mib:.1f} | {budget / mib:.1f} | {peak / mib:.1f} | {peak / (file + kv):.3f} |")
PY
  done
done
