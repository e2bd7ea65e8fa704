#!/usr/bin/env python3
"""peer_hf_gpu.py — the Hugging Face peer for bench_cuda: transformers (+ PEFT when
--lora R is given: an unmerged rank-R adapter on all linear layers, alpha 2R, A and B
both random as `bench_cuda --adapter-rank R` makes them) in bf16 with sdpa
attention on one GPU, on the same model directory (e.g. made by `wick init-model
--preset qwen2.5-0.5b --dtype bf16`). Measures prefill tok/s of a P-token prompt (one
forward, logits of the last position only) and greedy decode tok/s at batch 1 after
that prompt: (generate P+N  -  generate P+1) over N-1 tokens. Prints one JSON line.

usage: peer_hf_gpu.py MODEL_DIR [--prompt 2048] [--decode 256] [--runs 3] [--lora 0]
"""
import argparse
import json
import statistics
import time

import torch
from transformers import AutoModelForCausalLM


def timed(fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--prompt", type=int, default=2048)
    ap.add_argument("--decode", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--lora", type=int, default=0, help="rank of an unmerged PEFT adapter (0: none)")
    a = ap.parse_args()
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16, attn_implementation="sdpa")
    model = model.cuda().eval()
    if a.lora:
        from peft import LoraConfig, get_peft_model
        cfg = LoraConfig(r=a.lora, lora_alpha=2 * a.lora, target_modules="all-linear", init_lora_weights=False)
        model = get_peft_model(model, cfg).eval()
    load_s = time.perf_counter() - t0
    V = model.config.vocab_size
    ids = torch.tensor([[(i * 7919 + 13) % V for i in range(a.prompt)]], device="cuda")
    gen = dict(do_sample=False, use_cache=True, pad_token_id=0)
    with torch.inference_mode():
        model(input_ids=ids[:, :64], logits_to_keep=1)  # warm-up
        model.generate(ids[:, :16], max_new_tokens=8, min_new_tokens=8, **gen)
        pre, dec = [], []
        for _ in range(a.runs):
            pre.append(a.prompt / timed(lambda: model(input_ids=ids, use_cache=False, logits_to_keep=1)))
            t1 = timed(lambda: model.generate(ids, max_new_tokens=1, min_new_tokens=1, **gen))
            tn = timed(lambda: model.generate(ids, max_new_tokens=a.decode, min_new_tokens=a.decode, **gen))
            dec.append((a.decode - 1) / (tn - t1))
    print(json.dumps({
        "bench": "hf_gpu", "model": a.model, "torch": torch.__version__,
        "transformers": __import__("transformers").__version__, "lora_rank": a.lora, "dtype": "bf16",
        "attn": "sdpa", "load_s": round(load_s, 3), "prompt": a.prompt, "decode": a.decode, "runs": a.runs,
        "prefill_tok_s": round(statistics.median(pre), 1), "decode_tok_s": round(statistics.median(dec), 1),
        "max_memory_gb": round(torch.cuda.max_memory_allocated() / 1e9, 3),
    }))


if __name__ == "__main__":
    main()
