// The package's API, exercised as an application would use it (a plain ES module, no page code):
// a bad model URL and bad bytes reject clearly; load with progress; info; tokenize; a chat answer
// whole and streamed (the same greedy text, OpenAI-shaped objects and chunks, usage); a plain
// completion; a request the engine refuses; interrupt() ending a long answer at once; unload().
// `run` returns [{ok, what}] for the caller to report; web/test/api.html runs it in a browser and
// examples/web/test.mjs drives that page.
import { Ember } from "../src/index.js";

// Rejects if `promise` has not settled within `ms` (a hang is a failure, not a wait).
const within = (ms, promise, what) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms)),
  ]);

// The error a promise rejects with, or null if it resolves.
const rejection = (promise) => promise.then(() => null, (e) => e);

/**
 * Runs the checks against the model at `model` (a URL). `system`, `message` and `maxTokens`
 * make the greedy chat whose text the caller compares with the native engine's; `reference`
 * ({text, prompt_ids, greedy_text}, from an independent implementation) the prompt whose ids
 * and greedy continuation must match.
 */
export async function run({ model, backend = "auto", system, message, maxTokens, reference }) {
  const checks = [];
  const check = (ok, what) => checks.push({ ok: Boolean(ok), what });

  const missing = await within(60e3, rejection(Ember.load(new URL("no-such-model.gguf", model).href, { backend })), "a missing model");
  check(missing && /HTTP 404/.test(missing.message), `a missing model URL rejects: ${missing?.message}`);
  const junk = await within(60e3, rejection(Ember.load(new TextEncoder().encode("not a model at all"), { backend })), "bad bytes");
  check(junk && /GGUF|magic|model/i.test(junk.message), `bytes that are not a GGUF reject: ${junk?.message}`);

  const badThreads = await within(10e3, rejection(Ember.load(model, { backend, threads: 0 })), "threads: 0");
  check(badThreads && /threads/.test(badThreads.message), `threads: 0 rejects: ${badThreads?.message}`);

  const phases = new Set();
  const engine = await Ember.load(model, { backend, onProgress: (p) => phases.add(p.phase) });
  const info = engine.info();
  check(["webgpu", "cpu"].includes(info.backend) && info.model?.name, `info(): ${info.backend}, ${info.model?.name}`);
  check(info.backend === "webgpu" ? info.threads === null : info.threads >= 1, `info().threads: ${info.threads}`);
  check(phases.has("upload") && (phases.has("download") || phases.has("cache")), `progress phases: ${[...phases].join(", ")}`);

  const ids = await engine.tokenize("Hello world");
  check(Array.isArray(ids) && ids.length >= 2 && ids.every(Number.isInteger), `tokenize: ${JSON.stringify(ids)}`);

  const messages = [{ role: "system", content: system }, { role: "user", content: message }];
  const whole = await engine.chat.completions.create({ messages, temperature: 0, max_tokens: maxTokens });
  const answer = whole.choices[0].message.content;
  check(whole.object === "chat.completion" && whole.choices[0].message.role === "assistant", "a chat.completion object");
  check(whole.usage.completion_tokens > 0 && whole.usage.prompt_tokens > 0, `usage: ${JSON.stringify(whole.usage)}`);

  const stream = await engine.chat.completions.create({
    messages, temperature: 0, max_tokens: maxTokens, stream: true, stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  const streamed = chunks.filter((c) => c.choices.length).map((c) => c.choices[0].delta.content ?? "").join("");
  const finish = chunks.filter((c) => c.choices[0]?.finish_reason).map((c) => c.choices[0].finish_reason);
  check(chunks.every((c) => c.object === "chat.completion.chunk") && chunks[0].choices[0].delta.role === "assistant",
    `${chunks.length} chat.completion.chunk objects, the first with the role`);
  check(streamed === answer, `the streamed text equals the whole answer (${JSON.stringify(streamed)})`);
  check(finish.length === 1 && finish[0] === whole.choices[0].finish_reason, `one finish_reason (${finish})`);
  check(chunks.at(-1).usage?.completion_tokens === whole.usage.completion_tokens, "the last chunk carries the usage");

  if (reference) {
    const ids = await engine.tokenize(reference.text);
    check(JSON.stringify(ids) === JSON.stringify(reference.prompt_ids), `the reference prompt's ids: ${JSON.stringify(ids)}`);
    const greedy = await engine.completions.create({ prompt: reference.text, temperature: 0, max_tokens: 8 });
    const text = greedy.choices[0].text;
    check(text.length > 8 && reference.greedy_text.startsWith(text),
      `8 greedy tokens continue the reference's greedy text: ${JSON.stringify(text)}`);
  }

  const plain = await engine.completions.create({ prompt: "The capital of France is", temperature: 0, max_tokens: 4 });
  check(plain.object === "text_completion" && plain.choices[0].text.length > 0 && plain.choices[0].finish_reason === "length",
    `completions.create: ${JSON.stringify(plain.choices[0])}`);

  const refused = await rejection(engine.chat.completions.create({ messages, temperature: -1 }));
  check(refused && /temperature/.test(refused.message), `a bad request rejects: ${refused?.message}`);

  // interrupt(): a long sampled answer stops within a few tokens of the call (the worker checks
  // between tokens; the chunks already in flight still arrive).
  const long = await engine.chat.completions.create({
    messages: [{ role: "user", content: "Write a long story about a dragon." }],
    temperature: 0.8, seed: 7, max_tokens: 400, stream: true, stream_options: { include_usage: true },
  });
  let received = 0;
  let ended = null;
  let usage = null;
  const drained = (async () => {
    for await (const chunk of long) {
      if (chunk.choices[0]?.finish_reason) ended = chunk.choices[0].finish_reason;
      else if (chunk.choices.length) received += 1;
      if (chunk.usage) usage = chunk.usage;
      if (received === 3) engine.interrupt();
    }
  })();
  // (Generous: on a software GPU the prompt alone takes most of a minute.)
  await within(300e3, drained, "interrupt()");
  check(ended === "abort" && usage.completion_tokens <= 8, `interrupt() ended the answer: ${ended} after ${usage?.completion_tokens} tokens`);
  const after = await engine.chat.completions.create({ messages, temperature: 0, max_tokens: maxTokens });
  check(after.choices[0].message.content === answer, "the engine answers the same after an interrupt");

  await engine.unload();
  const gone = await rejection(within(10e3, engine.tokenize("x"), "a call after unload()"));
  check(gone !== null, `calls after unload() reject: ${gone?.message}`);
  return { checks, answer, backend: info.backend, threads: info.threads };
}
