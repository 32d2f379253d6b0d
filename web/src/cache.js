// Model bytes for the engine: fetched once, then kept in the browser's Cache Storage keyed by
// URL, so the next load reads no model bytes from the network. A cached copy is used if its
// size and ETag still match what the server announces (a HEAD request, no body); if the server
// cannot be reached, the cached copy is used as it is.

const CACHE = "ember-models-v1";

// Reports progress as {phase, loaded, total, mbps}: phase is "download" or "cache".
function meter(phase, total, onProgress) {
  const started = performance.now();
  let last = 0;
  return (loaded, force = false) => {
    const now = performance.now();
    if (!onProgress || (!force && now - last < 100)) return;
    last = now;
    const secs = Math.max((now - started) / 1000, 1e-3);
    onProgress({ phase, loaded, total, mbps: loaded / secs / 1e6 });
  };
}

// Reads a response body into one Uint8Array, reporting progress.
async function readBody(response, phase, onProgress) {
  const total = Number(response.headers.get("content-length")) || 0;
  const report = meter(phase, total, onProgress);
  const reader = response.body.getReader();
  let bytes = new Uint8Array(total || 1 << 20);
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (loaded + value.length > bytes.length) {
      // No (or a wrong) Content-Length: grow by doubling.
      const grown = new Uint8Array(Math.max(bytes.length * 2, loaded + value.length));
      grown.set(bytes.subarray(0, loaded));
      bytes = grown;
    }
    bytes.set(value, loaded);
    loaded += value.length;
    report(loaded);
  }
  report(loaded, true);
  return loaded === bytes.length ? bytes : bytes.slice(0, loaded);
}

// Whether the cached response still describes what the server has at `url`.
async function stillCurrent(url, cached) {
  try {
    const head = await fetch(url, { method: "HEAD", cache: "no-store" });
    if (!head.ok) return true; // the server will not say: keep what we have
    const size = head.headers.get("content-length");
    const etag = head.headers.get("etag");
    const sameSize = !size || size === cached.headers.get("content-length");
    const sameTag = !etag || !cached.headers.get("etag") || etag === cached.headers.get("etag");
    return sameSize && sameTag;
  } catch {
    return true; // offline: the cached copy is all there is
  }
}

// The bytes of the model at `url`, from the cache when it holds a current copy, else from the
// network (then cached). Returns {bytes, fromCache}.
export async function fetchModel(url, { onProgress, useCache = true } = {}) {
  const absolute = new URL(url, globalThis.location?.href).href;
  const cache = useCache && globalThis.caches ? await caches.open(CACHE) : null;
  if (cache) {
    const cached = await cache.match(absolute);
    if (cached && (await stillCurrent(absolute, cached))) {
      return { bytes: await readBody(cached, "cache", onProgress), fromCache: true };
    }
  }
  const response = await fetch(absolute);
  if (!response.ok) throw new Error(`fetching ${absolute}: HTTP ${response.status}`);
  const bytes = await readBody(response, "download", onProgress);
  if (cache) {
    const headers = { "content-length": String(bytes.length) };
    const etag = response.headers.get("etag");
    if (etag) headers.etag = etag;
    try {
      await cache.put(absolute, new Response(bytes, { headers }));
    } catch (e) {
      // A full quota is not fatal: the model still runs, it is just fetched again next time.
      console.warn(`ember: could not cache ${absolute}: ${e.message ?? e}`);
    }
  }
  return { bytes, fromCache: false };
}

// Removes `url` from the cache (or every cached model when `url` is omitted).
export async function forgetModel(url) {
  if (!globalThis.caches) return;
  if (url === undefined) {
    await caches.delete(CACHE);
    return;
  }
  const cache = await caches.open(CACHE);
  await cache.delete(new URL(url, globalThis.location?.href).href);
}
