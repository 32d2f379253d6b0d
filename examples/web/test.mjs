// Runs examples/web/index.html in headless Chromium (WebGPU on SwiftShader) and checks the page's
// prompt tokens and greedy continuation against the reference implementation's.
// Usage: node examples/web/test.mjs http://127.0.0.1:PORT   (serving the repository root)
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";

const base = process.argv[2];
const tokens = 8;
const reference = JSON.parse(
  readFileSync(new URL("../../tests/data/reference/smollm2-135m-instruct-q4_1.json", import.meta.url)),
).prompts[0];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  ignoreDefaultArgs: ["--headless"],
  args: [
    "--headless=new", "--no-sandbox", "--enable-unsafe-webgpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
let failed = false;
// Each decode mat-vec layout: whole rows per thread (the default on this software adapter) and
// rows split over threads (real GPUs' default).
for (const split of ["0", "1"]) {
  try {
    const page = await browser.newPage();
    page.on("console", (m) => console.log(`[page] ${m.text()}`));
    page.on("pageerror", (e) => console.log(`[page error] ${e.message}`));
    const query = `auto=1&split=${split}&n=${tokens}&prompt=${encodeURIComponent(reference.text)}`;
    await page.goto(`${base}/examples/web/index.html?${query}`);
    await page.waitForFunction(() => window.emberResult || window.emberError, null, { timeout: 15 * 60 * 1000 });
    const { result, error } = await page.evaluate(() => ({ result: window.emberResult, error: window.emberError }));
    if (error) throw new Error(`the page failed: ${error}`);
    console.log(`adapter: ${result.adapter}`);
    console.log(`prompt ids ${JSON.stringify(result.promptIds)}, greedy ids ${JSON.stringify(result.ids)}`);
    console.log(`text: ${JSON.stringify(result.text)}`);
    const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
    if (!same(result.promptIds, reference.prompt_ids)) {
      throw new Error(`prompt ids differ from the reference ${JSON.stringify(reference.prompt_ids)}`);
    }
    const want = reference.greedy_ids.slice(0, tokens);
    if (!same(result.ids, want)) throw new Error(`greedy ids differ from the reference ${JSON.stringify(want)}`);
    console.log(`ok: ${tokens} greedy tokens match the reference in the browser`);
    const shot = process.env.EMBER_WEB_SCREENSHOT;
    if (shot) await page.screenshot({ path: shot.replace(/\.png$/, `-split${split}.png`) });
    await page.close();
  } catch (e) {
    console.error(String(e.message ?? e));
    failed = true;
  }
}
await browser.close();
process.exit(failed ? 1 : 0);
