// Ember's JavaScript API: load a GGUF model into a Web Worker (WebGPU, or the CPU compiled to
// WebAssembly) and ask it OpenAI-style questions.
//
//   import { Ember } from "ember-llm";
//   const engine = await Ember.load("https://…/model.gguf", { onProgress: console.log });
//   const answer = await engine.chat.completions.create({ messages: [{ role: "user", content: "Hi" }] });
//   for await (const chunk of await engine.chat.completions.create({ messages, stream: true })) …
//
// Sampling, chat templates and request validation are Ember's Rust code, the same as natively.

let nextId = 1;

// The page's side of the worker: requests with ids, progress and stream callbacks.
class Channel {
  #worker;
  #pending = new Map();
  #closed = null;

  constructor(worker) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => {
      const call = this.#pending.get(data.id);
      if (!call) return;
      if ("progress" in data) call.onProgress?.(data.progress);
      else if ("chunk" in data) call.onChunk?.(data.chunk);
      else {
        this.#pending.delete(data.id);
        if ("error" in data) call.reject(new Error(data.error));
        else call.resolve(data.result);
      }
    };
    worker.onerror = (e) => {
      const error = new Error(`the Ember worker failed: ${e.message ?? e}`);
      for (const call of this.#pending.values()) call.reject(error);
      this.#pending.clear();
    };
  }

  call(op, args = {}, { onProgress, onChunk } = {}) {
    if (this.#closed) return Promise.reject(new Error(this.#closed));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onProgress, onChunk });
      this.#worker.postMessage({ id, op, ...args });
    });
  }

  interrupt() {
    this.#worker.postMessage({ op: "interrupt" });
  }

  // Ends the worker; calls still waiting, and any made later, reject with `reason`.
  terminate(reason = "the model was unloaded") {
    this.#closed = reason;
    this.#worker.terminate();
    for (const call of this.#pending.values()) call.reject(new Error(reason));
    this.#pending.clear();
  }
}

const now = () => Math.floor(Date.now() / 1000);
const completionId = (prefix) => `${prefix}-${Math.random().toString(36).slice(2, 14)}`;

// An async iterator over values pushed from callbacks, ending when `done` settles.
function pushIterator() {
  const items = [];
  let wake = null;
  let finished = false;
  let failure = null;
  return {
    push(item) {
      items.push(item);
      wake?.();
    },
    end(error = null) {
      finished = true;
      failure = error;
      wake?.();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (items.length) {
          yield items.shift();
        } else if (finished) {
          if (failure) throw failure;
          return;
        } else {
          await new Promise((resolve) => (wake = resolve));
          wake = null;
        }
      }
    },
  };
}

/** A loaded model. */
export class Engine {
  #channel;
  #info;

  constructor(channel, info) {
    this.#channel = channel;
    this.#info = info;
    this.chat = { completions: { create: (request) => this.#create("chat", request) } };
    this.completions = { create: (request) => this.#create("completion", request) };
  }

  /** The backend, adapter, its features and limits, and the model. */
  info() {
    return this.#info;
  }

  /** Token ids of `text`. */
  tokenize(text) {
    return this.#channel.call("tokenize", { text });
  }

  /** Ends the answer being generated at its next token (finish_reason "abort"). */
  interrupt() {
    this.#channel.interrupt();
  }

  /** Prompt processing and generation speed on this device. */
  bench({ promptTokens = 64, genTokens = 32 } = {}) {
    return this.#channel.call("bench", { promptTokens, genTokens });
  }

  /** Frees the model and ends the worker. */
  async unload() {
    await this.#channel.call("unload");
    this.#channel.terminate();
  }

  #create(kind, request) {
    const { stream = false, stream_options: streamOptions, ...rest } = request;
    const id = completionId(kind === "chat" ? "chatcmpl" : "cmpl");
    const created = now();
    const model = this.#info.model?.name ?? "ember";
    const object = kind === "chat" ? "chat.completion" : "text_completion";
    if (!stream) {
      let text = "";
      return this.#channel
        .call("generate", { kind, request: rest }, { onChunk: (c) => (text += c.text) })
        .then((done) => ({
          id,
          object,
          created,
          model,
          choices: [
            kind === "chat"
              ? { index: 0, message: { role: "assistant", content: text }, finish_reason: done.finish_reason }
              : { index: 0, text, finish_reason: done.finish_reason },
          ],
          usage: done.usage,
          timings: done.timings,
        }));
    }
    const chunks = pushIterator();
    const chunkObject = kind === "chat" ? "chat.completion.chunk" : "text_completion";
    const choice = (content, finish, first) =>
      kind === "chat"
        ? { index: 0, delta: first ? { role: "assistant", content } : { content }, finish_reason: finish }
        : { index: 0, text: content, finish_reason: finish };
    let first = true;
    const emit = (content, finish) => {
      chunks.push({ id, object: chunkObject, created, model, choices: [choice(content, finish, first)] });
      first = false;
    };
    this.#channel
      .call("generate", { kind, request: rest }, { onChunk: (c) => emit(c.text, null) })
      .then((done) => {
        emit("", done.finish_reason);
        if (streamOptions?.include_usage) {
          chunks.push({ id, object: chunkObject, created, model, choices: [], usage: done.usage, timings: done.timings });
        }
        chunks.end();
      })
      .catch((e) => chunks.end(e));
    return Promise.resolve(chunks);
  }
}

/** Entry point. */
export const Ember = {
  /**
   * Loads a GGUF model — a URL (cached in the browser after the first download), a File or the
   * bytes — into a new worker. Options: onProgress({phase, loaded, total, mbps}), backend
   * ("auto" | "webgpu" | "cpu"), contextLength, cache (false: always download), threads (of the
   * CPU backend where the page is cross-origin isolated; default navigator.hardwareConcurrency).
   */
  async load(source, { onProgress, backend = "auto", contextLength = 2048, cache = true, threads } = {}) {
    if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= 256)) {
      throw new Error(`threads must be a whole number from 1 to 256, not ${threads}`);
    }
    const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
    const channel = new Channel(worker);
    let message;
    if (typeof source === "string" || source instanceof URL) message = { url: String(source) };
    else if (typeof Blob !== "undefined" && source instanceof Blob) message = { file: source };
    else message = { bytes: source instanceof Uint8Array ? source : new Uint8Array(source) };
    try {
      const info = await channel.call(
        "load",
        { source: message, options: { backend, ctx: contextLength, cache, threads } },
        { onProgress },
      );
      return new Engine(channel, info);
    } catch (e) {
      channel.terminate();
      throw e;
    }
  },
};

export { forgetModel } from "./cache.js";
