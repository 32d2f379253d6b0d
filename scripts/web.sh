#!/usr/bin/env bash
# The browser package: `scripts/web.sh build` compiles its engine (examples/web.rs) for wasm32
# and generates the JavaScript bindings into web/pkg, next to the package's own modules
# (web/src); `scripts/web.sh serve` then serves the repository on http://127.0.0.1:8765 (open
# /examples/web/index.html, the chat page); `scripts/web.sh test` drives the chat page in
# headless Chromium (examples/web/test.mjs; needs target/release/ember for the native answer).
# Needs: rustup target wasm32-unknown-unknown, wasm-bindgen-cli 0.2.130 (the version in
# Cargo.lock), and for `test` Node.js and Chromium (/usr/bin/chromium or $CHROMIUM).
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-build}
port=${PORT:-8765}
case "$cmd" in
  build|serve|test) ;;
  *) echo "usage: scripts/web.sh [build|serve|test]" >&2; exit 2 ;;
esac

# SIMD128 (every browser with WebGPU has it): the CPU fallback's byte dot products and the
# float loops vectorize to 128-bit lanes.
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128" \
  cargo build --release --example web --target wasm32-unknown-unknown
wasm-bindgen --target web --no-typescript --out-dir web/pkg --out-name ember_web \
  "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/examples/web.wasm"

case "$cmd" in
  build) ;;
  serve)
    echo "http://127.0.0.1:$port/examples/web/index.html"
    exec python3 -m http.server --bind 127.0.0.1 "$port"
    ;;
  test)
    (cd examples/web && npm install --no-audit --no-fund --silent)
    python3 -m http.server --bind 127.0.0.1 "$port" >/dev/null 2>&1 &
    server=$!
    trap 'kill $server' EXIT
    for _ in $(seq 50); do
      curl -sf "http://127.0.0.1:$port/examples/web/index.html" >/dev/null && break
      sleep 0.2
    done
    node examples/web/test.mjs "http://127.0.0.1:$port"
    ;;
esac
