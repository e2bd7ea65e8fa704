#!/usr/bin/env python3
"""serve_load.py — aggregate decode throughput of `wick serve` vs concurrent streams.

  python3 bench/serve_load.py --wick build/wick [--model DIR] [--streams 1,4,16] [--max-tokens 32]
                              [--requests-per-stream 2] [--device cpu] [--threads N]

Starts the server on a random loopback port with 8 LoRA adapters (trained 2 steps with
`wick train` on a 4-line JSONL; without --model a random tiny qwen2 with a byte tokenizer is
made), then for each number of concurrent streams runs streamed completions (greedy,
ignore_eos, max_tokens each) on: the base alone, one adapter, and 8 different adapters mixed.
Prints one JSON object: per case the aggregate generated tok/s, p50/p99 request latency and
errors, plus the ratio of the mixed-8 throughput to the base throughput. Uses only the
standard library (http.client), so it runs without the openai package.
"""
import argparse, http.client, json, os, re, shutil, signal, subprocess, sys, tempfile, threading, time


def sh(*a):
    subprocess.run(a, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stream_once(port, model, prompt, max_tokens):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "ignore_eos": True, "stream": True})
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:200]!r}")
    n, done = 0, False
    for line in r:
        line = line.strip()
        if not line.startswith(b"data: "): continue
        if line == b"data: [DONE]": done = True; break
        d = json.loads(line[6:])
        if "error" in d: raise RuntimeError(d["error"]["message"])
        if d["choices"][0]["finish_reason"] is None: n += 1
    c.close()
    if not done: raise RuntimeError("stream ended without [DONE]")
    return n


def run_case(port, models, streams, per_stream, max_tokens):
    lat, errs, toks, lock = [], [], [0], threading.Lock()

    def worker(w):
        for k in range(per_stream):
            t0 = time.time()
            try:
                n = stream_once(port, models[(w + k) % len(models)], f"stream {w} request {k}:", max_tokens)
                with lock: lat.append(time.time() - t0); toks[0] += n
            except Exception as e:  # noqa: BLE001 -- counted and reported
                with lock: errs.append(repr(e))

    t0 = time.time()
    th = [threading.Thread(target=worker, args=(w,)) for w in range(streams)]
    for x in th: x.start()
    for x in th: x.join()
    wall = time.time() - t0
    lat.sort()
    q = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1) if lat else None
    return {"streams": streams, "requests": streams * per_stream, "tokens": toks[0], "wall_s": round(wall, 3),
            "tok_s": round(toks[0] / wall, 1), "p50_ms": q(0.5), "p99_ms": q(0.99), "errors": len(errs),
            "first_error": errs[0] if errs else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wick", required=True)
    ap.add_argument("--model")
    ap.add_argument("--streams", default="1,4,16")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--requests-per-stream", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    levels = [int(x) for x in a.streams.split(",")]
    tmp = tempfile.mkdtemp(prefix="wick_serve_load_")
    srv = None
    try:
        model = a.model
        if not model:
            model = os.path.join(tmp, "m")
            sh(a.wick, "init-model", "--arch", "qwen2", "--preset", "tiny", "--dtype", "f32", "--seed", "1", "--out",
               model, "--tokenizer", "bytes")
        data = os.path.join(tmp, "d.jsonl")
        with open(data, "w") as f:
            for t in ("hello world", "the cat sat", "on the mat", "abc abc abc"): f.write(json.dumps({"text": t}) + "\n")
        names = [f"ad{i}" for i in range(8)]
        for i, n in enumerate(names):
            sh(a.wick, "train", "--model", model, "--data", data, "--out", os.path.join(tmp, n), "--max-steps", "2",
               "--lr", "0.1", "--seed", str(i + 1))
        cmd = [a.wick, "serve", "--model", model, "--served-name", "base", "--port", "0", "--parallel",
               str(max(levels)), "--max-queue", "1024", "--device", a.device]
        if a.threads: cmd += ["--threads", str(a.threads)]
        for n in names: cmd += ["--adapter", f"{n}={os.path.join(tmp, n)}"]
        log = open(os.path.join(tmp, "log"), "w+")
        srv = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        port = None
        for _ in range(600):
            log.seek(0)
            m = re.search(r"listening on http://[0-9.]+:(\d+)", log.read())
            if m: port = int(m.group(1)); break
            if srv.poll() is not None: break
            time.sleep(0.1)
        if not port:
            log.seek(0); sys.exit("serve_load: the server did not start:\n" + log.read())
        stream_once(port, "base", "warm-up", 4)
        cases = {"base": ["base"], "1_adapter": names[:1], "8_adapters": names}
        out = {"bench": "serve_load", "model": model, "device": a.device, "max_tokens": a.max_tokens,
               "note": "continuous batching: the streams share decode steps (wick_decode_rows_total / wick_decode_steps_total)",
               "results": {}}
        for case, models in cases.items():
            out["results"][case] = [run_case(port, models, s, a.requests_per_stream, a.max_tokens) for s in levels]
        out["mixed8_vs_base"] = [round(m["tok_s"] / b["tok_s"], 3) if b["tok_s"] else None
                                 for m, b in zip(out["results"]["8_adapters"], out["results"]["base"])]
        print(json.dumps(out, indent=1))
    finally:
        if srv and srv.poll() is None:
            srv.send_signal(signal.SIGTERM)
            try: srv.wait(30)
            except subprocess.TimeoutExpired: srv.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
