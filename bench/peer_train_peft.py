#!/usr/bin/env python3
"""Peer benchmark for bench_train's model_training: LoRA training tok/s with torch + PEFT, same shapes
as wick (qwen2.5-0.5b shapes, seq 256, batch 4, r16 / alpha 32 on all seven linear projections, AdamW,
clipping at 1.0). Loads the model wick made (`wick init-model --arch qwen2 --preset qwen2.5-0.5b --dtype
f32|bf16 --seed 1 --out DIR`, or bench_train's own) so both train the same weights. CPU: fp32, eager
attention. CUDA: --dtype bf16 (the base in bf16, PEFT's default fp32 adapter weights, sdpa attention),
timed with torch.cuda.synchronize. Prints JSON.

usage: python3 bench/peer_train_peft.py --model DIR [--seq 256] [--batch 4] [--steps 3] [--threads N]
                                        [--device cpu|cuda] [--dtype f32|bf16]
"""
import argparse, json, os, time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cuda = a.device.startswith("cuda")
    dt = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    base = AutoModelForCausalLM.from_pretrained(a.model, dtype=dt, attn_implementation="sdpa" if cuda else "eager")
    base.to(a.device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    cfg = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(base, cfg)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    V = base.config.vocab_size
    tf = tb = to = 0.0
    t_start = None
    for s in range(a.steps + 1):  # step 0 warms up
        sync()
        if s == 1:
            t_start = time.perf_counter()
            tf = tb = to = 0.0
        ids = torch.randint(0, V, (a.batch, a.seq), device=a.device)
        t0 = time.perf_counter()
        out = model(input_ids=ids, labels=ids)
        sync()
        t1 = time.perf_counter()
        out.loss.backward()
        sync()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        t3 = time.perf_counter()
        tf, tb, to = tf + t1 - t0, tb + t2 - t1, to + t3 - t2
    sync()
    wall = time.perf_counter() - t_start
    mem = torch.cuda.max_memory_allocated() if cuda else 0
    print(json.dumps({"peer": "torch+peft", "torch": torch.__version__, "device": a.device, "dtype": a.dtype,
                      "threads": a.threads, "seq": a.seq, "max_memory_allocated": mem,
                      "batch": a.batch, "r": 16, "steps": a.steps,
                      "tokens_per_s": round(a.batch * a.seq * a.steps / wall, 1), "loss": round(out.loss.item(), 4),
                      "seconds": {"total": round(wall, 3), "forward": round(tf, 3), "backward": round(tb, 3),
                                  "optimizer": round(to, 3)}}))


if __name__ == "__main__":
    main()
