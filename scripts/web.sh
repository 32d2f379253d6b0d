#!/usr/bin/env bash
# The browser example: `scripts/web.sh build` compiles examples/web.rs for wasm32 and generates
# its JavaScript bindings into examples/web/pkg; `scripts/web.sh serve` then serves the
# repository on http://127.0.0.1:8765 (open /examples/web/index.html in a WebGPU browser);
# `scripts/web.sh test` runs the page in headless Chromium and checks it against the reference.
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

cargo build --release --example web --target wasm32-unknown-unknown
wasm-bindgen --target web --no-typescript --out-dir examples/web/pkg \
  target/wasm32-unknown-unknown/release/examples/web.wasm

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
