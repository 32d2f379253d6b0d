// One thread of the CPU backend in the build with shared memory: a module Web Worker that the
// engine's worker (src/worker.js) starts before it loads a model. It instantiates the same
// WebAssembly module on the same memory, registers as free, says it is ready and then serves
// the CPU pool's work until the engine's worker ends (threadServe never returns).
self.onmessage = async ({ data: { url, module, memory } }) => {
  let wasm;
  try {
    wasm = await import(url);
    await wasm.default({ module_or_path: module, memory });
    wasm.threadRegister();
  } catch (e) {
    self.postMessage({ error: String(e?.message ?? e) });
    return;
  }
  self.postMessage({ ready: true });
  wasm.threadServe();
};
