// Drives the chat page (examples/web/index.html, on the package in web/) in headless Chromium:
// 1. with WebGPU (SwiftShader): sends a message, waits for the streamed answer and checks that
//    greedy decoding gives the text `ember run --chat --temp 0` gives natively; checks the page's
//    main thread kept answering (timer gaps, typed input) while the worker decoded; screenshot;
// 2. reloads: the model must come from the browser cache (no GET of the .gguf);
// 3. in a browser without WebGPU: the CPU (WebAssembly) fallback gives the same answer, on
//    several threads (the server makes pages cross-origin isolated, so the package takes the
//    build with threads);
// 4. the package's API from a plain ES module (web/test/api.mjs), with and without WebGPU:
//    streaming, interrupt(), a bad model URL, bad bytes, a refused request, unload(); without
//    WebGPU on a page that is not isolated (scripts/web_server.py's /plain/), so the
//    single-threaded build is tested too.
// Usage: node examples/web/test.mjs http://127.0.0.1:PORT   (serving the repository root)
// Env: CHROMIUM (default /usr/bin/chromium), EMBER_BIN (default target/release/ember),
//      EMBER_WEB_SCREENSHOT (a .png path).
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";

const base = process.argv[2];
const system = "You are a helpful assistant.";
const message = "What is the capital of France?";
const maxTokens = 16;

// The native answer, greedy, on the CPU.
const native = JSON.parse(
  execFileSync(process.env.EMBER_BIN ?? "target/release/ember", [
    "run", "--chat", "--system", system, "--temp", "0", "-n", String(maxTokens), "--backend", "cpu",
    "--json", message,
  ], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }),
);
console.log(`native: ${JSON.stringify(native.text)}`);

const flags = ["--headless=new", "--no-sandbox", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const launch = (webgpu) => chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  ignoreDefaultArgs: ["--headless"],
  args: webgpu ? [...flags, "--enable-unsafe-webgpu"] : [...flags, "--disable-features=WebGPU"],
});

// A short benchmark: SwiftShader's WebGPU decodes at well under a token per second.
const query = new URLSearchParams({
  send: message, system, temperature: "0", max_tokens: String(maxTokens), bench_prompt: "16", bench_gen: "8",
});
const url = (backend, threads) =>
  `${base}/examples/web/index.html?${query}&backend=${backend}` + (threads ? `&threads=${threads}` : "");

// Records, while the page is busy with an answer, the longest task its main thread ran (the
// Long Tasks API: what blocks input) and the longest gap between 10 ms timer ticks (which on this
// 2-core machine also counts the time the OS gave the worker and SwiftShader's GPU threads).
const watchMainThread = () => {
  window.__maxGap = 0;
  window.__longestTask = 0;
  let last = performance.now();
  setInterval(() => {
    const t = performance.now();
    if (window.emberPage?.busy) window.__maxGap = Math.max(window.__maxGap, t - last);
    last = t;
  }, 10);
  new PerformanceObserver((list) => {
    if (!window.emberPage?.busy) return;
    for (const e of list.getEntries()) window.__longestTask = Math.max(window.__longestTask, e.duration);
  }).observe({ type: "longtask" });
};

// Opens the page, waits for its answer (or error) and returns what it recorded.
async function chat(context, backend, { typeWhileBusy = false, threads = null } = {}) {
  const page = await context.newPage();
  page.on("console", (m) => console.log(`[page] ${m.text()}`));
  page.on("pageerror", (e) => console.log(`[page error] ${e.message}`));
  const gets = [];
  page.on("request", (r) => {
    if (r.url().endsWith(".gguf") && r.method() === "GET") gets.push(r.url());
  });
  await page.addInitScript(watchMainThread);
  await page.goto(url(backend, threads));
  let typedMs = null;
  if (typeWhileBusy) {
    await page.waitForFunction(() => window.emberPage?.busy || window.emberPage?.error, null, { timeout: 10 * 60e3 });
    const started = Date.now();
    await page.type("#input", "typed while decoding");
    typedMs = Date.now() - started;
    const typed = await page.inputValue("#input");
    if (typed !== "typed while decoding") throw new Error(`input while decoding read back as ${JSON.stringify(typed)}`);
  }
  await page.waitForFunction(() => window.emberPage?.answers.length || window.emberPage?.error, null, { timeout: 15 * 60e3 });
  const state = await page.evaluate(() => ({
    ...window.emberPage,
    maxGap: window.__maxGap,
    longestTask: window.__longestTask,
  }));
  if (state.error) throw new Error(`the page failed: ${state.error}`);
  return { page, state, gets, typedMs };
}

// Clicks "Benchmark this device" and returns the figures the page showed.
async function bench(page) {
  await page.click("summary");
  await page.click("#bench");
  await page.waitForFunction(() => window.emberPage?.bench || window.emberPage?.error, null, { timeout: 10 * 60e3 });
  return { result: await page.evaluate(() => window.emberPage.bench), shown: await page.textContent("#bench-out") };
}

// Runs the package's API test page (web/test/api.html) and returns its result; `isolated`
// false serves it without the cross-origin isolation headers.
async function api(context, what, { isolated = true } = {}) {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.log(`[api page error] ${e.message}`));
  const q = new URLSearchParams({ system, message, max_tokens: String(maxTokens) });
  await page.goto(`${base}${isolated ? "" : "/plain"}/web/test/api.html?${q}`);
  await page.waitForFunction(() => window.apiTest, null, { timeout: 15 * 60e3 });
  const result = await page.evaluate(() => window.apiTest);
  await page.close();
  if (result.error) throw new Error(`the API test (${what}) failed: ${result.error}`);
  for (const c of result.checks) check(c.ok, `api (${result.backend}): ${c.what}`);
  check(result.answer === native.text, `api (${result.backend}): the greedy answer equals ember run's`);
  return result;
}

let failed = false;
const check = (ok, what) => {
  console.log(`${ok ? "ok" : "FAIL"}: ${what}`);
  if (!ok) failed = true;
};

try {
  const browser = await launch(true);
  const context = await browser.newContext();
  const first = await chat(context, "auto", { typeWhileBusy: true });
  const a = first.state.answers[0];
  console.log(`webgpu: ${JSON.stringify(a.text)} on ${first.state.info.device.adapter} (${first.state.info.backend})`);
  check(first.state.info.backend === "webgpu", "the page ran on WebGPU");
  check(await first.page.evaluate(() => crossOriginIsolated), "the page is cross-origin isolated");
  check(a.text === native.text, `the greedy answer equals ember run's (${JSON.stringify(native.text)})`);
  check(first.state.longestTask < 100, `no main-thread task ran 100 ms while decoding (longest ` +
    `${first.state.longestTask.toFixed(0)} ms; longest timer gap ${first.state.maxGap.toFixed(0)} ms)`);
  check(first.typedMs < 2000, `typing while decoding took ${first.typedMs} ms`);
  check(first.gets.length === 1, `the first load fetched the model once (${first.gets.length} GETs)`);
  const b = await bench(first.page);
  check(b.result && b.result.prompt_tokens_per_second > 0 && b.result.gen_tokens_per_second > 0 && /tokens\/s/.test(b.shown),
    `the benchmark button showed ${JSON.stringify(b.shown)}`);
  const shot = process.env.EMBER_WEB_SCREENSHOT;
  if (shot) await first.page.screenshot({ path: shot });
  await first.page.close();

  const again = await chat(context, "auto");
  check(again.gets.length === 0 && again.state.info.fromCache, `the reload read the model from the cache (${again.gets.length} GETs)`);
  check(again.state.answers[0].text === native.text, "the reloaded page gives the same answer");
  await again.page.close();
  check((await api(context, "WebGPU")).backend === "webgpu", "the API test ran on WebGPU");
  await browser.close();

  const plain = await launch(false);
  const cpu = await chat(await plain.newContext(), "auto", { threads: 2 });
  console.log(`cpu: ${JSON.stringify(cpu.state.answers[0].text)} (${cpu.state.info.backend}; ${cpu.state.info.fallback_reason ?? ""})`);
  check(cpu.state.info.backend === "cpu", "without WebGPU the page ran on the CPU (WebAssembly)");
  check(cpu.state.info.threads === 2, `the CPU fallback ran on ${cpu.state.info.threads} threads (asked for 2)`);
  check(cpu.state.answers[0].text === native.text, "the CPU fallback's greedy answer equals ember run's");
  const cb = await bench(cpu.page);
  check(cb.result?.gen_tokens_per_second > 0, `the CPU fallback's benchmark showed ${JSON.stringify(cb.shown)}`);
  // A model chosen as a local file (the picker's third source).
  await cpu.page.selectOption("#model-kind", "file");
  await cpu.page.setInputFiles("#model-file", "assets/SmolLM2-135M-Instruct.Q4_1.gguf");
  await cpu.page.evaluate(() => (window.emberPage.info = null));
  await cpu.page.click("#load");
  await cpu.page.waitForFunction(() => window.emberPage.info || window.emberPage.error, null, { timeout: 5 * 60e3 });
  const fromFile = await cpu.page.evaluate(() => window.emberPage.info);
  check(fromFile?.model.name === "SmolLM2-135M-Instruct.Q4_1.gguf" && !fromFile.fromCache, "the page loaded a model from a local file");
  await cpu.page.close();
  const single = await api(await plain.newContext(), "no WebGPU, not isolated", { isolated: false });
  check(single.backend === "cpu" && single.threads === 1, `the API test ran on the single-threaded CPU build (${single.threads} thread)`);
  await plain.close();
} catch (e) {
  console.error(String(e.message ?? e));
  failed = true;
}
process.exit(failed ? 1 : 0);
