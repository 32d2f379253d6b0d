#!/usr/bin/env bash
# The browser package: `scripts/web.sh build` compiles its engine (examples/web.rs) for wasm32
# twice and generates the JavaScript bindings next to the package's own modules (web/src):
# web/pkg (one thread) and web/pkg/threads (shared memory: the CPU backend on several threads,
# used where the page is cross-origin isolated). `scripts/web.sh serve` then serves the
# repository on http://127.0.0.1:8765 with the isolation headers (open
# /examples/web/index.html, the chat page; /plain/… serves the same without them);
# `scripts/web.sh test` drives the chat page in headless Chromium (examples/web/test.mjs; needs
# target/release/ember for the native answer).
# Needs: rustup target wasm32-unknown-unknown and component rust-src, wasm-bindgen-cli 0.2.130
# (the version in Cargo.lock), and for `test` Node.js and Chromium (/usr/bin/chromium or
# $CHROMIUM).
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-build}
port=${PORT:-8765}
case "$cmd" in
  build|serve|test) ;;
  *) echo "usage: scripts/web.sh [build|serve|test]" >&2; exit 2 ;;
esac

# No debug info: wasm-bindgen drops it from the output anyway, so it would only cost build time.
export CARGO_PROFILE_RELEASE_DEBUG=false

# SIMD128 (every browser with WebGPU has it): the CPU fallback's byte dot products and the
# float loops vectorize to 128-bit lanes.
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128" \
  cargo build --release --example web --target wasm32-unknown-unknown
wasm-bindgen --target web --no-typescript --out-dir web/pkg --out-name ember_web \
  "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/examples/web.wasm"

# With threads: shared memory needs atomics, and so a standard library built with them
# (-Z build-std, which stable cargo accepts under RUSTC_BOOTSTRAP=1; rust-src supplies the
# source). The memory is shared and imported (each thread's worker instantiates the module on
# it), at most 4 GiB (wasm-ld's default for a shared memory is 1 GiB), and wasm-bindgen sets up
# each thread's stack and thread-locals through the __tls exports. Its own target directory
# keeps the two builds from invalidating each other.
threads_target="${CARGO_TARGET_DIR:-target}/wasm-threads"
threads_flags="-C target-feature=+simd128,+atomics,+bulk-memory,+mutable-globals"
for arg in --shared-memory --import-memory --max-memory=4294967296 --export=__wasm_init_tls \
  --export=__tls_size --export=__tls_align --export=__tls_base; do
  threads_flags+=" -C link-arg=$arg"
done
RUSTC_BOOTSTRAP=1 CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$threads_flags" \
  cargo build --release --example web --target wasm32-unknown-unknown \
  -Z build-std=std,panic_abort --target-dir "$threads_target"
wasm-bindgen --target web --no-typescript --out-dir web/pkg/threads --out-name ember_web \
  "$threads_target/wasm32-unknown-unknown/release/examples/web.wasm"

case "$cmd" in
  build) ;;
  serve)
    echo "http://127.0.0.1:$port/examples/web/index.html"
    exec python3 scripts/web_server.py "$port"
    ;;
  test)
    (cd examples/web && npm install --no-audit --no-fund --silent)
    python3 scripts/web_server.py "$port" >/dev/null 2>&1 &
    server=$!
    trap 'kill $server' EXIT
    for _ in $(seq 50); do
      curl -sf "http://127.0.0.1:$port/examples/web/index.html" >/dev/null && break
      sleep 0.2
    done
    node examples/web/test.mjs "http://127.0.0.1:$port"
    ;;
esac
