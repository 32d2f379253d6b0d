// The chat page's "benchmark this device" button in headless Chromium without WebGPU, for each
// thread count given, in interleaved rounds: the browser's CPU fallback, single-threaded build
// (a page that is not cross-origin isolated, "plain") against the threaded build at N threads.
// Usage: node examples/web/bench.mjs http://127.0.0.1:PORT [ROUNDS] [plain,1,2 …]
//   (scripts/web_server.py serving the repository root; BENCH_PROMPT/BENCH_GEN set the sizes)
import { chromium } from "playwright-core";

const [base, rounds = "3", variants = "plain,1,2"] = process.argv.slice(2);
const sizes = { bench_prompt: process.env.BENCH_PROMPT ?? "64", bench_gen: process.env.BENCH_GEN ?? "32" };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  ignoreDefaultArgs: ["--headless"],
  args: ["--headless=new", "--no-sandbox", "--disable-features=WebGPU"],
});

async function once(variant) {
  const plain = variant === "plain";
  const q = new URLSearchParams({ backend: "cpu", ...sizes, ...(plain ? {} : { threads: variant }) });
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${base}${plain ? "/plain" : ""}/examples/web/index.html?${q}`);
  await page.waitForFunction(() => window.emberPage?.info || window.emberPage?.error, null, { timeout: 10 * 60e3 });
  await page.click("summary");
  await page.click("#bench");
  await page.waitForFunction(() => window.emberPage?.bench || window.emberPage?.error, null, { timeout: 30 * 60e3 });
  const { bench, info, error } = await page.evaluate(() => window.emberPage);
  await page.context().close();
  if (error) throw new Error(error);
  return { threads: info.threads, ...bench };
}

for (let r = 1; r <= Number(rounds); r++) {
  for (const v of variants.split(",")) {
    const b = await once(v);
    console.log(`round ${r} ${v === "plain" ? "single-threaded build" : `threaded build, ${v} threads`}` +
      ` (info.threads ${b.threads}): pp${b.prompt_tokens} ${b.prompt_tokens_per_second.toFixed(2)} tokens/s,` +
      ` tg${b.gen_tokens} ${b.gen_tokens_per_second.toFixed(2)} tokens/s`);
  }
}
await browser.close();
