#!/usr/bin/env python3
"""Peer benchmark for bench/bench_embed.c: HF transformers BertModel with e5-small shapes
(12 layers, hidden 384, 12 heads, intermediate 1536, vocab 30522; random weights, seed 0),
mean pooling over real tokens + L2 normalisation, docs/s at 1 x 16 tokens, 100 x 32 and
1000 x 64 — fp32 on the CPU (all cores unless --threads) and fp16 on the GPU when present.
Same ids pattern ([CLS] random [SEP]), batches of --batch-size sequences (32, as wick's
default), best of --runs timed runs after one warm-up. Prints one JSON object.

usage: python3 bench/peer_embed_hf.py [--quick] [--runs 3] [--batch-size 32] [--threads N]
       [--devices cpu,cuda] [--model DIR] [--case NxT]   (DIR: a BertModel checkpoint instead of random
       weights; --case: only N docs of T tokens, e.g. 100x32)
"""
import argparse
import json
import time

import torch
from transformers import BertConfig, BertModel

E5_SMALL = dict(vocab_size=30522, hidden_size=384, intermediate_size=1536, num_hidden_layers=12,
                num_attention_heads=12, max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12,
                hidden_act="gelu", pad_token_id=0)


def make_batches(n, length, vocab, bs, device):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, vocab, (n, length), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    mask = torch.ones_like(ids)
    return [(ids[i:i + bs].to(device), mask[i:i + bs].to(device)) for i in range(0, n, bs)]


@torch.inference_mode()
def embed(model, batches):
    out = []
    for ids, mask in batches:
        h = model(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        out.append(torch.nn.functional.normalize(e, dim=-1))
    return torch.cat(out)


def time_case(model, n, length, bs, runs, device, vocab):
    batches = make_batches(n, length, vocab, bs, device)
    best = float("inf")
    for r in range(runs + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        e = embed(model, batches)
        e.cpu()
        dt = time.perf_counter() - t0
        if r > 0:
            best = min(best, dt)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="200 x 64 instead of 1000 x 64")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--model")
    ap.add_argument("--case", help="only this case, N docs x T tokens (e.g. 100x32)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.model:
        base = BertModel.from_pretrained(a.model, add_pooling_layer=False, attn_implementation="eager")
    else:
        base = BertModel(BertConfig(**E5_SMALL), add_pooling_layer=False)
    base.eval()
    vocab = base.config.vocab_size
    cases = [(1, 16), (100, 32), (200 if a.quick else 1000, 64)]
    if a.case:
        cases = [tuple(int(v) for v in a.case.split("x"))]
    report = {"bench": "embed_peer_hf", "torch": torch.__version__, "batch_size": a.batch_size,
              "model": a.model or "e5-small (random)", "results": []}
    for dev in a.devices.split(","):
        if dev == "cuda" and not torch.cuda.is_available():
            continue
        model = base.to(dev).to(torch.float16 if dev == "cuda" else torch.float32)
        entry = {"device": dev, "dtype": "fp16" if dev == "cuda" else "fp32",
                 "threads": torch.get_num_threads() if dev == "cpu" else None,
                 "gpu": torch.cuda.get_device_name(0) if dev == "cuda" else None, "cases": []}
        for n, length in cases:
            s = time_case(model, n, length, a.batch_size, a.runs, dev, vocab)
            entry["cases"].append({"docs": n, "tokens": length, "seconds": round(s, 6),
                                   "docs_per_s": round(n / s, 1), "ms_per_call": round(s * 1e3, 3)})
        report["results"].append(entry)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
