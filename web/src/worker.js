// The engine's home: a module Web Worker that owns the WebAssembly instance, the WebGPU device
// and the model, so the page's main thread never runs model code. The page (src/index.js) sends
// {id, op, ...} messages and gets back {id, progress}, {id, chunk} and finally {id, result} or
// {id, error}; {op: "interrupt"} ends the answer being generated at its next token.
//
// Where the page is cross-origin isolated (it can share memory with workers), the engine is the
// build with threads (pkg/threads/): the CPU backend then runs on this worker and on helper
// workers (src/thread.js) started before the first model is loaded.

import { fetchModel } from "./cache.js";

const threaded = self.crossOriginIsolated === true && typeof SharedArrayBuffer === "function";
const build = new URL(threaded ? "../pkg/threads/ember_web.js" : "../pkg/ember_web.js", import.meta.url).href;
const ready = import(build).then(async (wasm) => {
  await wasm.default();
  return wasm;
});
// Resolves to the number of helper threads started (once per worker; later loads reuse them).
let helpers = null;
let engine = null;
let interrupted = false;
// Operations run one after another (an answer streams while the next request waits).
let queue = Promise.resolve();

const post = (message) => self.postMessage(message);

// Starts `count` helper threads and waits until each has registered with the engine; a thread
// that fails or does not answer within a minute fails the load (the pool never waits on it).
function startHelpers(wasm, count) {
  const one = () =>
    new Promise((resolve, reject) => {
      const worker = new Worker(new URL("./thread.js", import.meta.url), { type: "module" });
      const timer = setTimeout(() => reject(new Error("a CPU thread did not start within 60 s")), 60e3);
      worker.onmessage = ({ data }) => {
        clearTimeout(timer);
        if (data.ready) resolve();
        else reject(new Error(`a CPU thread failed to start: ${data.error}`));
      };
      worker.onerror = (e) => {
        clearTimeout(timer);
        reject(new Error(`a CPU thread failed to start: ${e.message ?? e}`));
      };
      worker.postMessage({ url: build, module: wasm.engineModule(), memory: wasm.engineMemory() });
    });
  return Promise.all(Array.from({ length: count }, one)).then(() => count);
}
const yieldToEvents = () => new Promise((resolve) => setTimeout(resolve, 0));

// Reads a File (or Blob) chosen on the page, reporting progress.
async function readFile(file, onProgress) {
  const bytes = new Uint8Array(file.size);
  const reader = file.stream().getReader();
  const started = performance.now();
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes.set(value, loaded);
    loaded += value.length;
    const secs = Math.max((performance.now() - started) / 1000, 1e-3);
    onProgress({ phase: "file", loaded, total: file.size, mbps: loaded / secs / 1e6 });
  }
  return bytes;
}

const ops = {
  async load({ source, options }, report) {
    if (engine) engine.free();
    engine = null;
    let bytes;
    let name;
    let fromCache = false;
    if (source.url) {
      name = source.url.split("/").pop().split("?")[0];
      ({ bytes, fromCache } = await fetchModel(source.url, {
        onProgress: report,
        useCache: options.cache !== false,
      }));
    } else if (source.file) {
      name = source.file.name;
      bytes = await readFile(source.file, report);
    } else {
      name = source.name ?? "model.gguf";
      bytes = source.bytes;
    }
    report({ phase: "upload", loaded: 0, total: bytes.length, mbps: 0 });
    const started = performance.now();
    // WebGPU is only tried where the worker has it; "auto" falls back to the CPU build.
    const gpu = "gpu" in navigator && navigator.gpu !== undefined;
    const wanted = options.backend ?? "auto";
    if (wanted === "webgpu" && !gpu) throw new Error("this browser has no WebGPU in workers");
    const settings = { ...options, backend: wanted === "auto" && !gpu ? "cpu" : wanted };
    const wasm = await ready;
    if (threaded) {
      const threads = options.threads ?? Math.min(navigator.hardwareConcurrency || 1, 256);
      helpers ??= startHelpers(wasm, threads - 1);
      await helpers;
    }
    engine = await wasm.Engine.load(name, bytes, JSON.stringify(settings));
    const secs = (performance.now() - started) / 1000;
    report({ phase: "upload", loaded: bytes.length, total: bytes.length, mbps: bytes.length / secs / 1e6 });
    return { ...JSON.parse(engine.info()), fromCache, loadSeconds: secs };
  },

  async info() {
    return JSON.parse(needEngine().info());
  },

  async tokenize({ text }) {
    return Array.from(needEngine().tokenize(text));
  },

  // One answer: prefill, then a token at a time, streamed as {chunk} messages.
  async generate({ kind, request }, report, chunk) {
    const e = needEngine();
    interrupted = false;
    const started = performance.now();
    const plan = JSON.parse(e.start(JSON.stringify({ kind, request })));
    let first = null;
    let tokens = 0;
    let finish = null;
    while (finish === null) {
      if (interrupted) {
        e.cancel();
        finish = "abort";
        break;
      }
      const step = JSON.parse(await e.next());
      tokens += 1;
      first ??= performance.now();
      if (step.text) chunk({ text: step.text });
      finish = step.finish_reason;
      // Let an interrupt (or anything else the page sent) in between tokens.
      await yieldToEvents();
    }
    const ended = performance.now();
    const decodeSecs = first === null ? 0 : (ended - first) / 1000;
    return {
      finish_reason: finish,
      usage: {
        prompt_tokens: plan.prompt_tokens,
        completion_tokens: tokens,
        total_tokens: plan.prompt_tokens + tokens,
      },
      timings: {
        time_to_first_token_ms: first === null ? null : first - started,
        decode_tokens_per_second: tokens > 1 && decodeSecs > 0 ? (tokens - 1) / decodeSecs : null,
        prompt_tokens_evaluated: plan.prompt_evaluated,
      },
    };
  },

  // Prompt processing and generation speed, as `ember bench` measures them.
  async bench({ promptTokens = 64, genTokens = 32 }) {
    return JSON.parse(await needEngine().bench(promptTokens, genTokens));
  },

  async unload() {
    if (engine) engine.free();
    engine = null;
    return null;
  },
};

function needEngine() {
  if (!engine) throw new Error("no model is loaded (call Ember.load first)");
  return engine;
}

self.onmessage = ({ data }) => {
  if (data.op === "interrupt") {
    interrupted = true;
    return;
  }
  const { id, op } = data;
  queue = queue.then(async () => {
    try {
      await ready;
      if (!(op in ops)) throw new Error(`unknown operation ${op}`);
      const result = await ops[op](
        data,
        (progress) => post({ id, progress }),
        (chunk) => post({ id, chunk }),
      );
      post({ id, result });
    } catch (e) {
      post({ id, error: String(e?.message ?? e) });
    }
  });
};
