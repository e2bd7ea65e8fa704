#!/usr/bin/env python3
"""Peer benchmark: Hugging Face `tokenizers` (Rust) single-threaded on the corpus that
bench_tok wrote with --corpus-out (documents separated by 0x1E). Prints JSON.
usage: python3 bench/peer_tok.py TOKENIZER_JSON CORPUS_FILE"""
import json, os, sys, time
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_CPUS"] = "1"
from tokenizers import Tokenizer  # noqa: E402

path, corpus = sys.argv[1], sys.argv[2]
load_ms = load_cpu_ms = 1e9
for _ in range(3):
    t0, c0 = time.perf_counter(), time.thread_time()
    tok = Tokenizer.from_file(path)
    load_ms = min(load_ms, (time.perf_counter() - t0) * 1e3)
    load_cpu_ms = min(load_cpu_ms, (time.thread_time() - c0) * 1e3)
data = open(corpus, "rb").read()
docs = [d.decode("utf-8") for d in data.split(b"\x1e") if d]
best = best_cpu = 1e9
tokens = 0
for _ in range(3):
    t0, c0 = time.perf_counter(), time.thread_time()
    tokens = 0
    for d in docs:  # one call per document, in this thread (no rayon batch parallelism)
        tokens += len(tok.encode(d, add_special_tokens=False).ids)
    best = min(best, time.perf_counter() - t0)
    best_cpu = min(best_cpu, time.thread_time() - c0)
print(json.dumps({"bench": "tokenizer-peer", "impl": "hf-tokenizers", "tokenizer": path, "load_ms": round(load_ms, 1), "load_cpu_ms": round(load_cpu_ms, 1),
                  "corpus_bytes": len(data), "tokens": tokens, "encode_s": round(best, 4),
                  "encode_mb_s": round(len(data) / 1e6 / best, 2),
                  "encode_cpu_mb_s": round(len(data) / 1e6 / best_cpu, 2), "threads": 1}))
