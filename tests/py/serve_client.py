"""serve_client.py URL KEY — `wick serve` with the official openai client (run by tests/serve.sh).

Server set-up (serve.sh): base model "base" (byte tokenizer, ChatML), adapters "a1" and "a2",
--max-tokens 1000, --parallel 4. Checks: a streamed chat completion (chunks concatenate to the
non-streamed reply), a completion with logprobs, model listing, concurrent streams on different
adapters (greedy, seeded sampling, a long prompt prefilled in chunks) equal to the same requests
run alone, an adapter unloaded in the middle of its stream, a client disconnect that frees its
session, and a bounded load test (32 requests over 8 threads, mixed adapters, zero errors, decode
steps shared)."""
import json, sys, threading, time, urllib.error, urllib.request
import openai

URL, KEY = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=URL + "/v1", api_key=KEY, max_retries=0, timeout=30)
failed = 0


def check(name, ok, info=""):
    global failed
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {info}"))
    failed += 0 if ok else 1


MSG = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi"}]

# models
ids = [m.id for m in client.models.list().data]
check("openai models.list", ids[:3] == ["base", "a1", "a2"], ids)

# streamed chat == non-streamed chat (greedy)
full = client.chat.completions.create(model="base", messages=MSG, max_tokens=10, temperature=0)
parts, roles, finish = [], [], None
for ch in client.chat.completions.create(model="base", messages=MSG, max_tokens=10, temperature=0, stream=True):
    d = ch.choices[0].delta
    if d.role: roles.append(d.role)
    if d.content: parts.append(d.content)
    if ch.choices[0].finish_reason: finish = ch.choices[0].finish_reason
check("stream chat role first", roles == ["assistant"], roles)
check("stream chat = non-stream", "".join(parts) == full.choices[0].message.content, ("".join(parts), full.choices[0].message.content))
check("stream finish_reason", finish == full.choices[0].finish_reason and finish in ("stop", "length"), finish)
check("chat usage", full.usage.completion_tokens >= 1 and full.usage.prompt_tokens > 10, full.usage)

# chat logprobs
r = client.chat.completions.create(model="a1", messages=MSG, max_tokens=5, temperature=0, logprobs=True, top_logprobs=3)
c = r.choices[0].logprobs.content
check("chat logprobs entries", len(c) == r.usage.completion_tokens and all(len(e.top_logprobs) == 3 for e in c), len(c))
check("chat greedy token is top-1", all(abs(e.logprob - e.top_logprobs[0].logprob) < 1e-6 for e in c))

# completion with logprobs (greedy, ignore_eos through extra_body)
r = client.completions.create(model="a2", prompt="The cat", max_tokens=8, temperature=0, logprobs=2,
                              extra_body={"ignore_eos": True})
lp = r.choices[0].logprobs
check("completion logprobs count", len(lp.tokens) == 8 and len(lp.token_logprobs) == 8 and len(lp.top_logprobs) == 8)
check("completion logprobs <= 0", all(x <= 0 for x in lp.token_logprobs), lp.token_logprobs)
check("completion tokens join to text", "".join(lp.tokens) == r.choices[0].text, (lp.tokens, r.choices[0].text))
check("completion text_offset", lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(8)], lp.text_offset)
check("completion finish length", r.choices[0].finish_reason == "length")

# stop strings and seeds
r1 = client.completions.create(model="base", prompt="Hello", max_tokens=20, temperature=1.0, seed=7, extra_body={"ignore_eos": True})
r2 = client.completions.create(model="base", prompt="Hello", max_tokens=20, temperature=1.0, seed=7, extra_body={"ignore_eos": True})
check("same seed same sample", r1.choices[0].text == r2.choices[0].text)
t = r1.choices[0].text
if len(t) > 4:
    stop = t[3:5]
    r3 = client.completions.create(model="base", prompt="Hello", max_tokens=20, temperature=1.0, seed=7, stop=[stop],
                                   extra_body={"ignore_eos": True})
    check("stop string", r3.choices[0].text == t[:t.index(stop)] and r3.choices[0].finish_reason == "stop",
          (r3.choices[0].text, t, stop))

# errors come back as openai exceptions
try:
    client.completions.create(model="nope", prompt="x", max_tokens=2)
    check("unknown model raises", False)
except openai.NotFoundError as e:
    check("unknown model raises NotFoundError", e.body.get("code") == "model_not_found" if isinstance(e.body, dict) else True, e.body)
try:
    openai.OpenAI(base_url=URL + "/v1", api_key="bad", max_retries=0).models.list()
    check("bad key raises", False)
except openai.AuthenticationError:
    check("bad key raises AuthenticationError", True)


def stream_text(model, prompt, n=24, temperature=0, seed=None, on_first=None):
    out = []
    s = client.completions.create(model=model, prompt=prompt, max_tokens=n, temperature=temperature, seed=seed,
                                  stream=True, extra_body={"ignore_eos": True})
    for ch in s:
        if on_first and not out: on_first()
        out.append(ch.choices[0].text)
    return "".join(out)


# two concurrent streams on different adapters == the same requests alone
alone = {m: stream_text(m, "Once upon") for m in ("a1", "a2")}
base_alone = stream_text("base", "Once upon")
check("adapters change the output", len({alone["a1"], alone["a2"], base_alone}) >= 2, (alone, base_alone))
alone["base"] = base_alone
got = {}
th = [threading.Thread(target=lambda m=m: got.__setitem__(m, stream_text(m, "Once upon"))) for m in ("a1", "a2", "base")]
for x in th: x.start()
for x in th: x.join()
check("concurrent streams (a1, a2, base) = alone", got == alone, (got, alone))

# batched with sampling and a long prompt (prefilled in chunks between decode steps) == alone
LONG = "the quick brown fox jumps over the lazy dog. " * 7  # 315 ids with the byte tokenizer
reqs = {"s1": ("a1", "Once upon", 24, 0.9, 5), "s2": ("base", "Once upon", 24, 0.9, 6), "long": ("a2", LONG, 8, 0, None),
        "g": ("a1", "abc", 40, 0, None)}
alone = {k: stream_text(*v) for k, v in reqs.items()}
got = {}
th = [threading.Thread(target=lambda k=k, v=v: got.__setitem__(k, stream_text(*v))) for k, v in reqs.items()]
for x in th: x.start()
for x in th: x.join()
check("concurrent seeded samples and a chunked long prompt = alone", got == alone, (got, alone))

# adapter admin in the middle of a stream does not disturb it: loading another one succeeds, unloading
# the stream's own adapter is refused while the stream holds it (409 adapter_in_use), then succeeds
def admin(method, path, body=None):
    req = urllib.request.Request(URL + path, data=body and json.dumps(body).encode(), method=method,
                                 headers={"Authorization": "Bearer " + KEY, "Content-Type": "application/json"})
    try:
        return urllib.request.urlopen(req, timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code


want = stream_text("a2", "Twice", 64)
check("load a5", admin("POST", "/v1/adapters", {"name": "a5", "path": "a2"}) == 200)
codes = []
got = stream_text("a5", "Twice", 64, on_first=lambda: codes.extend(
    [admin("POST", "/v1/adapters", {"name": "a6", "path": "a1"}), admin("DELETE", "/v1/adapters/a5")]))
# 409 while the server still generates the stream; 200 when it had already finished (the client reads
# behind the server by the socket's buffer) -- either way the stream's text is unchanged
check("load / unload during a stream: 200, then 409 (or 200 once generated); stream = alone",
      codes[0] == 200 and codes[1] in (200, 409) and got == want, (codes, got, want))
check("unload after the stream", (codes[1] == 200 or admin("DELETE", "/v1/adapters/a5") == 200)
      and admin("DELETE", "/v1/adapters/a6") == 200)


def metric(name):
    for line in urllib.request.urlopen(URL + "/metrics", timeout=5).read().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])


# a client that goes away mid-stream cancels its generation and frees its session
before = metric("wick_requests_cancelled_total")
s = client.completions.create(model="a1", prompt="abc", max_tokens=1000, temperature=0, stream=True,
                              extra_body={"ignore_eos": True})
next(iter(s))
s.response.close()
deadline = time.time() + 5
while time.time() < deadline and (metric("wick_requests_cancelled_total") < before + 1 or metric("wick_sessions_busy") != 0):
    time.sleep(0.05)
check("stream disconnect cancels and frees the session",
      metric("wick_requests_cancelled_total") == before + 1 and metric("wick_sessions_busy") == 0)

# the same for a non-streamed request: the server notices the hang-up between tokens
import http.client, json as _json
before, gen_before = metric("wick_requests_cancelled_total"), metric("wick_generation_tokens_total")
hc = http.client.HTTPConnection(URL.split("//")[1].split(":")[0], int(URL.rsplit(":", 1)[1]), timeout=10)
hc.request("POST", "/v1/completions", _json.dumps({"model": "base", "prompt": "x", "max_tokens": 1000, "temperature": 0,
           "ignore_eos": True}), {"Authorization": "Bearer " + KEY, "Content-Type": "application/json"})
time.sleep(0.03)
hc.close()
deadline = time.time() + 10
while time.time() < deadline and (metric("wick_requests_cancelled_total") < before + 1 or metric("wick_sessions_busy") != 0):
    time.sleep(0.05)
check("non-stream disconnect cancels", metric("wick_requests_cancelled_total") == before + 1 and metric("wick_sessions_busy") == 0
      and metric("wick_generation_tokens_total") - gen_before < 1000,
      (metric("wick_requests_cancelled_total"), before, metric("wick_generation_tokens_total") - gen_before))

# load test: 32 requests over 8 threads, mixed adapters and streaming
models = ["base", "a1", "a2"]
lat, errs, toks, lock = [], [], [0], threading.Lock()
jobs = list(range(32))


def worker():
    while True:
        with lock:
            if not jobs: return
            i = jobs.pop()
        t0 = time.time()
        try:
            m = models[i % 3]
            if i % 2:
                n = len(stream_text(m, f"req {i}", 16))  # byte tokenizer: <= 1 char per token
                n = 16
            else:
                r = client.completions.create(model=m, prompt=f"req {i}", max_tokens=16, temperature=0.8, seed=i,
                                              extra_body={"ignore_eos": True})
                n = r.usage.completion_tokens
            with lock:
                lat.append(time.time() - t0); toks[0] += n
        except Exception as e:  # noqa: BLE001 -- every failure is counted and reported
            with lock: errs.append(repr(e))


steps0, rows0 = metric("wick_decode_steps_total"), metric("wick_decode_rows_total")
t0 = time.time()
th = [threading.Thread(target=worker) for _ in range(8)]
for x in th: x.start()
for x in th: x.join()
wall = time.time() - t0
lat.sort()
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")
print(f"load: 32 requests / 8 threads in {wall:.2f} s, {toks[0] / wall:.1f} tok/s, p50 {p(0.5):.0f} ms, p99 {p(0.99):.0f} ms, errors {len(errs)}")
check("load test zero errors", not errs, errs[:3])
check("load test bounded", wall < 20, wall)
steps, rows = metric("wick_decode_steps_total") - steps0, metric("wick_decode_rows_total") - rows0
check("load test shares decode steps (mean batch > 1.5)", steps > 0 and rows / steps > 1.5, (rows, steps))
sys.exit(1 if failed else 0)
