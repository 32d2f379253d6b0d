#!/usr/bin/env python3
"""End-to-end checks of `ember serve` from a client's side (run by CI; needs `pip install openai`).

  serve_check.py client [--ember BIN]   the official openai client: chat (streamed and not),
                                        completions, models.list; greedy answers equal
                                        `ember run --temp 0`, with --parallel 1 and with
                                        --parallel 4 while three other streams run
  serve_check.py load [--requests 32]   32 concurrent streams against --parallel 4, every fourth
                                        cancelled mid-stream: each gets a complete, well-formed
                                        answer or a clean error, none lost or duplicated, and
                                        the server's memory returns to its idle level
  serve_check.py bench [--url URL]      aggregate generation throughput of 1 and of 4 concurrent
                                        requests (of ember serve -P 4, or of any OpenAI-compatible
                                        server at URL, e.g. llama-server -np 4), rounds
                                        interleaved

Exits non-zero with a message on the first failed check.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time

import httpx
import openai

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


class Server:
    """`ember serve` on a free loopback port, stopped on exit."""

    def __init__(self, ember, *args):
        env = dict(os.environ, EMBER_TUNE_CACHE="/nonexistent/tune.json")
        self.proc = subprocess.Popen(
            [ember, "serve", "--port", "0", "--backend", "cpu", *args],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        for line in self.proc.stderr:
            if line.startswith("ember serve: listening on "):
                self.url = line.split()[-1]
                break
        else:
            fail("ember serve did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        deadline = time.time() + 60
        while httpx.get(self.url + "/health").status_code != 200:
            check(time.time() < deadline, "the model never loaded")
            time.sleep(0.05)

    def rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def metrics(self):
        out = {}
        for line in httpx.get(self.url + "/metrics").text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def ember_run(ember, prompt, n, chat):
    args = [ember, "run", "--backend", "cpu", "--temp", "0", "-n", str(n), "--json", "-p", prompt]
    if chat:
        args.append("--chat")
    out = subprocess.run(args, capture_output=True, text=True, check=True,
                         env=dict(os.environ, EMBER_TUNE_CACHE="/nonexistent/tune.json"))
    return json.loads(out.stdout)["text"]


def client_checks(args):
    prompt, question, n = "Once upon a time", "What is the capital of France?", 16
    want_text = ember_run(args.ember, prompt, n, chat=False)
    want_chat = ember_run(args.ember, question, n, chat=True)
    for parallel in (1, 4):
        with Server(args.ember, "-P", str(parallel), "-c", "512") as s:
            client = openai.OpenAI(base_url=s.url + "/v1", api_key="unused")
            models = client.models.list()
            check(len(models.data) == 1 and models.data[0].object == "model", f"models: {models}")
            model = models.data[0].id
            others = []
            if parallel == 4:
                # Three other answers stream while the greedy ones are computed.
                def other(i):
                    stream = client.completions.create(
                        model=model, prompt=f"Story number {i}:", max_tokens=48,
                        temperature=0.9, seed=i, stream=True)
                    text = "".join(c.choices[0].text for c in stream if c.choices)
                    others.append(text)
                threads = [threading.Thread(target=other, args=(i,)) for i in range(3)]
                for t in threads:
                    t.start()
                time.sleep(0.3)
            got = client.completions.create(model=model, prompt=prompt, max_tokens=n,
                                            temperature=0)
            check(got.choices[0].text == want_text,
                  f"-P {parallel}: completion {got.choices[0].text!r} != ember run {want_text!r}")
            check(got.usage.completion_tokens <= n and got.usage.prompt_tokens > 0,
                  f"usage {got.usage}")
            chat = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": question}],
                max_tokens=n, temperature=0)
            answer = chat.choices[0].message.content
            check(answer == want_chat, f"-P {parallel}: chat {answer!r} != ember run {want_chat!r}")
            check(chat.choices[0].finish_reason in ("stop", "length"), f"{chat}")
            stream = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": question}],
                max_tokens=n, temperature=0, stream=True,
                stream_options={"include_usage": True})
            pieces, usage, finish = [], None, None
            for chunk in stream:
                if chunk.usage:
                    usage = chunk.usage
                for c in chunk.choices:
                    pieces.append(c.delta.content or "")
                    finish = c.finish_reason or finish
            check("".join(pieces) == want_chat, f"streamed chat {''.join(pieces)!r}")
            check(usage is not None and usage.total_tokens > 0, "no usage in the stream")
            check(finish in ("stop", "length"), f"finish reason {finish}")
            stream = client.completions.create(model=model, prompt=prompt, max_tokens=n,
                                               temperature=0, stream=True)
            text = "".join(c.choices[0].text for c in stream if c.choices)
            check(text == want_text, f"streamed completion {text!r}")
            try:
                client.chat.completions.create(model="no-such-model", messages=[
                    {"role": "user", "content": "hi"}])
                fail("an unknown model was accepted")
            except openai.NotFoundError:
                pass
            if parallel == 4:
                for t in threads:
                    t.join()
                check(len(others) == 3 and all(others), f"other streams: {others}")
            print(f"ok: openai client against --parallel {parallel}: greedy answers equal "
                  f"`ember run --temp 0` ({want_text!r}, {want_chat!r})")


async def stream_one(http, url, i, cancel, max_tokens):
    """One streamed completion: ('ok', id, tokens), ('cancelled', id) or ('rejected', None)."""
    body = {"prompt": f"Request {i}: tell me about the number {i}.", "max_tokens": max_tokens,
            "temperature": 0.8, "seed": i, "stream": True,
            "stream_options": {"include_usage": True}}
    async with http.stream("POST", url + "/v1/completions", json=body) as r:
        if r.status_code == 503:
            err = json.loads(await r.aread())
            check("error" in err and r.headers.get("retry-after"), f"bad 503: {err}")
            return ("rejected", None)
        check(r.status_code == 200, f"request {i}: status {r.status_code}")
        ids, chunks, done, usage, finish = set(), 0, False, None, None
        async for line in r.aiter_lines():
            if not line:
                continue
            check(line.startswith("data: "), f"request {i}: not an event: {line!r}")
            data = line[len("data: "):]
            if data == "[DONE]":
                done = True
                continue
            check(not done, f"request {i}: data after [DONE]")
            event = json.loads(data)
            check("error" not in event, f"request {i}: {event}")
            ids.add(event["id"])
            if event.get("usage"):
                usage = event["usage"]
            for c in event["choices"]:
                chunks += 1
                finish = c["finish_reason"] or finish
            if cancel and chunks >= 3:
                return ("cancelled", event["id"])
        check(done and finish in ("stop", "length"), f"request {i}: incomplete ({finish})")
        check(len(ids) == 1, f"request {i}: ids {ids}")
        check(usage and usage["completion_tokens"] >= 1, f"request {i}: usage {usage}")
        return ("ok", ids.pop(), usage["completion_tokens"])


async def run_load(url, n, cancel_every, max_tokens):
    limits = httpx.Limits(max_connections=n + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        return await asyncio.gather(*[
            stream_one(http, url, i, cancel_every and i % cancel_every == 0, max_tokens)
            for i in range(n)])


def load_checks(args):
    with Server(args.ember, "-P", "4", "-c", "512", "--queue", "64") as s:
        # Warm-up at full width, so the idle level includes every slot's grown cache.
        asyncio.run(run_load(s.url, 8, 0, args.max_tokens))
        time.sleep(0.5)
        idle = s.rss_mib()
        before = s.metrics()
        t0 = time.time()
        results = asyncio.run(run_load(s.url, args.requests, 4, args.max_tokens))
        took = time.time() - t0
        ok = [r for r in results if r[0] == "ok"]
        cancelled = [r for r in results if r[0] == "cancelled"]
        rejected = [r for r in results if r[0] == "rejected"]
        ids = [r[1] for r in ok + cancelled]
        check(len(set(ids)) == len(ids), "a response id came twice")
        check(len(results) == args.requests, "a request was lost")
        # The server counts every request once: finished, cancelled or rejected.
        deadline = time.time() + 10
        while True:
            m = s.metrics()
            delta = {k: m.get(k, 0) - before.get(k, 0) for k in m}
            counted = sum(delta.get(f'ember_requests_total{{outcome="{o}"}}', 0)
                          for o in ("finished", "cancelled", "rejected"))
            if counted == args.requests and m["ember_slots_busy"] == 0:
                break
            check(time.time() < deadline, f"server counted {counted} of {args.requests}: {delta}")
            time.sleep(0.2)
        check(m["ember_queue_depth"] == 0, "requests left in the queue")
        check(delta['ember_requests_total{outcome="failed"}'] == 0, "failed answers")
        time.sleep(0.5)
        after = s.rss_mib()
        check(after <= idle * 1.10 + 8, f"memory {after:.0f} MiB after the load, {idle:.0f} idle")
        tokens = sum(r[2] for r in ok)
        print(f"ok: {args.requests} concurrent streams on --parallel 4 in {took:.1f} s: "
              f"{len(ok)} complete ({tokens} tokens), {len(cancelled)} cancelled mid-stream, "
              f"{len(rejected)} rejected; RSS {idle:.0f} MiB idle, {after:.0f} MiB after")


async def one_completion(http, url, model, max_tokens):
    body = {"prompt": "The list of numbers from 1 to 1000: 1, 2, 3, 4, 5,", "max_tokens": max_tokens,
            "temperature": 0}
    if model:
        body["model"] = model
    r = await http.post(url + "/v1/completions", json=body)
    check(r.status_code == 200, f"status {r.status_code}: {r.text}")
    return r.json()["usage"]["completion_tokens"]


async def throughput(url, model, streams, max_tokens):
    """Generated tokens per second of `streams` concurrent requests, from sending them to the
    last answer (not streamed: the client, on the same cores, then costs nothing meanwhile)."""
    async with httpx.AsyncClient(timeout=600) as http:
        start = time.time()
        tokens = await asyncio.gather(*[one_completion(http, url, model, max_tokens)
                                        for _ in range(streams)])
        return sum(tokens) / (time.time() - start)


def bench(args):
    def measure(url, model):
        rows = []
        for rnd in range(args.rounds):
            for streams in (1, 4):
                rows.append((streams, asyncio.run(throughput(url, model, streams, args.max_tokens))))
        for streams in (1, 4):
            vals = sorted(v for s, v in rows if s == streams)
            print(f"  {streams} concurrent: " + ", ".join(f"{v:.1f}" for v in vals) + " tok/s")
        one = sorted(v for s, v in rows if s == 1)
        four = sorted(v for s, v in rows if s == 4)
        print(f"  aggregate 4 requests / 1 request (medians): {four[len(four)//2] / one[len(one)//2]:.2f}x")

    if args.url:
        print(f"bench: {args.url}, {args.max_tokens} tokens per stream, {args.rounds} rounds")
        measure(args.url, args.model)
        return
    with Server(args.ember, "-P", "4", "-c", "1024", "-t", str(args.threads)) as s:
        print(f"bench: ember serve -P 4 -t {args.threads} (CPU), {args.max_tokens} tokens per "
              f"stream, {args.rounds} rounds")
        measure(s.url, None)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["client", "load", "bench"])
    p.add_argument("--ember", default=os.path.join(ROOT, "target/release/ember"))
    p.add_argument("--requests", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=24)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--url", help="bench an already running server instead")
    p.add_argument("--model", help="model name to send (bench --url)")
    args = p.parse_args()
    {"client": client_checks, "load": load_checks, "bench": bench}[args.mode](args)


if __name__ == "__main__":
    main()
