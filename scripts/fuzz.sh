#!/usr/bin/env bash
# A long fuzz run of one target (tests/fuzz/main.rs): gguf, hf_folder, chat_template or
# openai_request. Usage: scripts/fuzz.sh TARGET MINUTES [SEED]. A fresh seed is drawn unless one
# is given; every failing input is listed with the command that replays it (and saves it, to be
# added under tests/data/fuzz/TARGET/ as a regression case).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET MINUTES [SEED]}
minutes=${2:?usage: scripts/fuzz.sh TARGET MINUTES [SEED]}
case "$target" in
  gguf|hf_folder|chat_template|openai_request) ;;
  *) echo "unknown target $target (gguf, hf_folder, chat_template, openai_request)" >&2; exit 2 ;;
esac
seed=${3:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "fuzzing $target for $minutes min, seed $seed"
EMBER_FUZZ_SEED=$seed EMBER_FUZZ_SECONDS=$((minutes * 60)) \
  cargo test --release --test fuzz -- --exact "$target" --nocapture
