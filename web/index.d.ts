// Types of Ember's JavaScript API (src/index.js).

export interface Progress {
  /** "download" (network), "cache" (browser cache), "file" (a local File), "upload" (to the engine). */
  phase: "download" | "cache" | "file" | "upload";
  loaded: number;
  /** 0 when the size is not known. */
  total: number;
  /** Megabytes per second so far. */
  mbps: number;
}

export interface LoadOptions {
  onProgress?: (p: Progress) => void;
  /** "auto" (WebGPU where the worker has it, else the CPU), "webgpu" or "cpu". */
  backend?: "auto" | "webgpu" | "cpu";
  /** Positions of the KV cache (default 2048). */
  contextLength?: number;
  /** false: download every time, never cache. */
  cache?: boolean;
  /**
   * Threads of the CPU backend, 1 to 256 (default navigator.hardwareConcurrency). Only where
   * the page is cross-origin isolated (COOP same-origin, COEP require-corp): elsewhere the CPU
   * runs on one.
   */
  threads?: number;
}

export interface EngineInfo {
  backend: "webgpu" | "cpu";
  /** Why "auto" did not use WebGPU, when it did not. */
  fallback_reason: string | null;
  device: {
    /** The WebGPU adapter's name, or "CPU (WebAssembly)". */
    adapter: string;
    device_type?: string;
    features: string[];
    limits: Record<string, number>;
  };
  model: { name: string; architecture: string; layers: number; hidden: number; vocab: number };
  context_length: number;
  /** Threads of the CPU backend (null on WebGPU). */
  threads: number | null;
  fromCache?: boolean;
  loadSeconds?: number;
}

export interface ChatMessage {
  role: "system" | "developer" | "user" | "assistant";
  content: string | { type: "text"; text: string }[];
}

export interface SamplingParams {
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  repeat_penalty?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  seed?: number;
  stop?: string | string[];
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface Timings {
  time_to_first_token_ms: number | null;
  decode_tokens_per_second: number | null;
  prompt_tokens_evaluated: number;
}

export type FinishReason = "stop" | "length" | "abort";

export interface ChatCompletion {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: { index: 0; message: { role: "assistant"; content: string }; finish_reason: FinishReason }[];
  usage: Usage;
  timings: Timings;
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: { index: 0; delta: { role?: "assistant"; content: string }; finish_reason: FinishReason | null }[];
  usage?: Usage;
  timings?: Timings;
}

export interface Completion {
  id: string;
  object: "text_completion";
  created: number;
  model: string;
  choices: { index: 0; text: string; finish_reason: FinishReason | null }[];
  usage?: Usage;
  timings?: Timings;
}

export interface ChatRequest extends SamplingParams {
  messages: ChatMessage[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
}

export interface CompletionRequest extends SamplingParams {
  prompt: string;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
}

export interface BenchResult {
  prompt_tokens: number;
  prompt_tokens_per_second: number;
  gen_tokens: number;
  gen_tokens_per_second: number;
}

export declare class Engine {
  chat: {
    completions: {
      create(request: ChatRequest & { stream: true }): Promise<AsyncIterable<ChatCompletionChunk>>;
      create(request: ChatRequest & { stream?: false }): Promise<ChatCompletion>;
    };
  };
  completions: {
    create(request: CompletionRequest & { stream: true }): Promise<AsyncIterable<Completion>>;
    create(request: CompletionRequest & { stream?: false }): Promise<Completion>;
  };
  info(): EngineInfo;
  tokenize(text: string): Promise<number[]>;
  interrupt(): void;
  bench(options?: { promptTokens?: number; genTokens?: number }): Promise<BenchResult>;
  unload(): Promise<void>;
}

export declare const Ember: {
  load(source: string | URL | Blob | Uint8Array | ArrayBuffer, options?: LoadOptions): Promise<Engine>;
};

/** Removes a model (or, without a URL, every model) from the browser cache. */
export declare function forgetModel(url?: string): Promise<void>;
