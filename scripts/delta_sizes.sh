#!/usr/bin/env bash
# Model deltas against zstd: for the default model (a) with three tensors re-quantized to
# another type and (b) with 10% of its tensors slightly perturbed (a stand-in for a fine-tune,
# examples/perturb.rs), prints the size of `ember diff`'s patch beside `zstd --patch-from`
# (level 19, long mode) of the same pair, checks that `ember patch` rebuilds NEW byte for byte
# (SHA-256) and reports its peak memory. Needs zstd and GNU time. Takes a few minutes (level-19
# compression on both sides). Usage: scripts/delta_sizes.sh [MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-assets/SmolLM2-135M-Instruct.Q4_1.gguf}
cargo build --release --quiet --bin ember --example perturb
ember=target/release/ember
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$ember" quantize --type q4_1 --tensor-type blk.3.ffn_down=q8_0 \
  --tensor-type blk.10.attn_q=q5_0 --tensor-type blk.20.ffn_up=q8_0 "$model" "$work/a.gguf" 2>/dev/null
target/release/examples/perturb "$model" "$work/b.gguf" 0.1 0.02 2>/dev/null

echo "| NEW | NEW size | ember diff | zstd -19 --long --patch-from | ember / zstd | patch peak RSS | rebuilt |"
echo "|---|---|---|---|---|---|---|"
for case in a b; do
  new="$work/$case.gguf"
  "$ember" diff "$model" "$new" -o "$work/$case.patch" 2>/dev/null
  zstd -19 --long=27 -q -f --patch-from="$model" "$new" -o "$work/$case.zst" 2>/dev/null
  rss=$( { /usr/bin/time -f "%M" "$ember" patch "$model" "$work/$case.patch" -o "$work/$case.out" 2>&1 >/dev/null; } | tail -1)
  same=$([ "$(sha256sum < "$new")" = "$(sha256sum < "$work/$case.out")" ] && echo "SHA-256 equal" || echo "DIFFERENT")
  ours=$(stat -c %s "$work/$case.patch")
  theirs=$(stat -c %s "$work/$case.zst")
  label=$([ $case = a ] && echo "(a) 3 tensors re-quantized" || echo "(b) 10% of tensors perturbed")
  printf "| %s | %s | %s | %s | %.3f | %s MiB | %s |\n" "$label" "$(stat -c %s "$new")" "$ours" "$theirs" \
    "$(echo "$ours / $theirs" | bc -l)" "$((rss / 1024))" "$same"
done
