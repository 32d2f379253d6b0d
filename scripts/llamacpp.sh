# Builds the llama.cpp release Ember is compared with, b11312, from the sdist of
# llama-cpp-python 0.3.36 on PyPI (which vendors exactly that llama.cpp; its checksum is
# verified), into $peer/llama.cpp. Sourced by the comparison scripts (from the project's root):
# sets `peer` ($PEER_DIR, default target/peer, made absolute) and `bin`
# ($peer/llama.cpp/build/bin).
#
# usage: build_llamacpp TARGET...   (llama-bench, llama-quantize, llama-imatrix, ...)
peer=$(mkdir -p "${PEER_DIR:-target/peer}" && cd "${PEER_DIR:-target/peer}" && pwd)
bin=$peer/llama.cpp/build/bin

build_llamacpp() {
  local missing=0 t
  for t in "$@"; do [ -x "$bin/$t" ] || missing=1; done
  [ "$missing" = 0 ] && return
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
    cmake --build build -j"$(nproc)" --target "$@" >/dev/null)
}
