#!/usr/bin/env bash
# Ember against llama.cpp on the CPU, same GGUF files, same threads, runs interleaved; writes the
# CPU speed table of README.md (between the cpu-speed-table markers). Not part of CI: it builds
# llama.cpp (~12 minutes on 2 cores) and runs for several minutes more. Run it on an idle machine.
#
# usage: scripts/bench_vs_llamacpp.sh [ROUNDS]   (default 2 rounds of both engines per case)
# env:   PEER_DIR (default target/peer): where llama.cpp is built and kept between runs
#        THREADS (default "1 2"), REPS (default 3, repetitions per run)
#
# llama.cpp is the release the issue pins, b11312, from the sdist of llama-cpp-python 0.3.36
# on PyPI (which vendors exactly that llama.cpp; its checksum is verified below).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
threads=${THREADS:-1 2}
reps=${REPS:-3}
peer=$(mkdir -p "${PEER_DIR:-target/peer}" && cd "${PEER_DIR:-target/peer}" && pwd)
bin=$peer/llama.cpp/build/bin

build_llamacpp() {
  [ -x "$bin/llama-bench" ] && [ -x "$bin/llama-quantize" ] && return
  command -v cmake >/dev/null || { apt-get update -qq; apt-get install -y -qq cmake build-essential >/dev/null; }
  mkdir -p "$peer/sdist"
  local sdist=$peer/sdist/llama_cpp_python-0.3.36.tar.gz
  if [ ! -f "$sdist" ]; then
    # scikit-build-core lets pip read the sdist's metadata without building it.
    python3 -m pip install -q scikit-build-core
    python3 -m pip download -q --no-deps --no-binary llama-cpp-python --no-build-isolation \
      -d "$peer/sdist" llama-cpp-python==0.3.36
  fi
  echo "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e  $sdist" | sha256sum -c --quiet -
  if [ ! -d "$peer/llama.cpp" ]; then
    tar xzf "$sdist" -C "$peer/sdist"
    cp -a "$peer/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp" "$peer/llama.cpp"
    rm -f "$peer/llama.cpp/.git"
  fi
  # The sdist has no git metadata: build number and commit are given by hand.
  (cd "$peer/llama.cpp" &&
    cmake -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_OPENSSL=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
      -DLLAMA_BUILD_NUMBER=11312 -DLLAMA_BUILD_COMMIT=0c1e5709 >/dev/null &&
    cmake --build build -j"$(nproc)" --target llama-bench llama-quantize >/dev/null)
}

echo "== building llama.cpp b11312 (once) and Ember" >&2
build_llamacpp
cargo build --release --quiet --bin ember --example read_bandwidth
ember=target/release/ember
work=$peer/models
mkdir -p "$work"
src=assets/SmolLM2-135M-Instruct.Q4_1.gguf
cp -f "$src" "$work/Q4_1.gguf"
for t in Q4_0 Q8_0 Q4_K_M; do
  [ -f "$work/$t.gguf" ] || "$bin/llama-quantize" --allow-requantize "$src" "$work/$t.gguf" "$t" >/dev/null 2>&1
done

echo "== read bandwidth" >&2
declare -A bw
for t in $threads; do bw[$t]=$(target/release/examples/read_bandwidth "$t"); echo "  $t threads: ${bw[$t]} GB/s" >&2; done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for round in $(seq "$rounds"); do
  for t in $threads; do
    for q in Q4_0 Q4_1 Q4_K_M Q8_0; do
      f=$work/$q.gguf
      echo "== round $round: $q, $t threads" >&2
      "$bin/llama-bench" -m "$f" -t "$t" -p 128 -n 64 -r "$reps" -o json > "$out/llama-$q-$t-$round.json" 2>/dev/null
      for p in i16 i8; do
        "$ember" bench -m "$f" --backend cpu -t "$t" -p 128 -n 64 -r "$reps" --precision "$p" --format json \
          > "$out/ember-$p-$q-$t-$round.json" 2>/dev/null
      done
    done
  done
done

bws=$(for t in $threads; do printf '%s=%s ' "$t" "${bw[$t]}"; done)
python3 - "$out" "$bws" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$(nproc)" <<'PY' > "$out/table.md"
import glob, json, os, statistics, sys, datetime
out, bws, cpu, cores = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
bw = {int(k): float(v) for k, v in (kv.split("=") for kv in bws.split())}
runs = {}
for path in glob.glob(os.path.join(out, "*.json")):
    name = os.path.basename(path)[:-5].split("-")
    engine = name[0] if name[0] == "llama" else f"ember-{name[1]}"
    q, t = (name[1], name[2]) if name[0] == "llama" else (name[2], name[3])
    for rec in json.load(open(path)):
        test = "pp" if rec["n_prompt"] > 0 else "tg"
        runs.setdefault((q, int(t), test, engine), []).append(rec["avg_ts"])
        if test == "tg":
            runs.setdefault((q, "bytes"), []).append(rec["model_size"])
med = lambda v: statistics.median(v)
rows = []
for t in sorted(bw):
    for q in ["Q4_0", "Q4_1", "Q4_K_M", "Q8_0"]:
        for test, label in [("tg", "decode tg64"), ("pp", "prompt pp128")]:
            l = runs.get((q, t, test, "llama"))
            e16 = runs.get((q, t, test, "ember-i16"))
            e8 = runs.get((q, t, test, "ember-i8"))
            if not (l and e16 and e8):
                continue
            L, E16, E8 = med(l), med(e16), med(e8)
            seen = lambda v: "–".join(f"{x:.0f}" for x in (min(v), max(v)))
            roof = ""
            if test == "tg":
                gb = med(runs[(q, "bytes")]) / 1e9
                share = lambda r: f"{100 * r * gb / bw[t]:.0f}%"
                roof = f"{share(L)} / {share(E16)} / {share(E8)}"
            rows.append(f"| {q} | {t} | {label} | {seen(l)} | {seen(e16)} | {E16 / L:.2f}x | {seen(e8)} | {E8 / L:.2f}x | {roof} |")
print(f"<!-- cpu-speed-table:start (generated by scripts/bench_vs_llamacpp.sh; do not edit by hand) -->")
print(f"Measured {datetime.date.today()} on {cores} cores ({cpu}); read bandwidth "
      + ", ".join(f"{bw[t]:.1f} GB/s with {t} thread{'s' if t > 1 else ''}" for t in sorted(bw))
      + ". The default model re-quantized by llama.cpp b11312's `llama-quantize`; tokens/s as min–max over the interleaved runs, ratios of medians.")
print("Roofline: a decode's tokens/s × the model's weight bytes ÷ the read bandwidth (llama.cpp / Ember i16 / Ember i8).")
print()
print("| file | threads | test | llama.cpp t/s | Ember (i16, default) t/s | ratio | Ember (i8) t/s | ratio | roofline share |")
print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
print("\n".join(rows))
print("<!-- cpu-speed-table:end -->")
PY
cat "$out/table.md"
python3 - "$out/table.md" <<'PY'
import re, sys
table = open(sys.argv[1]).read().strip()
readme = open("README.md").read()
pattern = re.compile(r"<!-- cpu-speed-table:start.*?<!-- cpu-speed-table:end -->", re.S)
if pattern.search(readme):
    readme = pattern.sub(lambda _: table, readme)
else:
    readme = readme.rstrip() + "\n\n" + table + "\n"
open("README.md", "w").write(readme)
PY
echo "README.md updated" >&2
