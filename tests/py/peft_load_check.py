#!/usr/bin/env python3
"""peft_load_check.py — PEFT loads adapters that wick wrote: for each DIR in .peftchk/ (made with
`wick train ... --out .peftchk/NAME` and `wick logits --adapter ... --out .peftchk/NAME/wick_logits.safetensors`
on the ids below), load the golden base with transformers, the adapter with PeftModel.from_pretrained,
and compare the logits. Needs torch, transformers, peft (the H200 machine has them; run it there)."""
import json, sys, torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from peft import PeftModel
import peft
worst = 0
for m, bm in [("qwen2_tiny","qwen2_tiny"), ("llama_tiny","llama_tiny"), ("qwen3_tiny","qwen3_tiny"), ("fresh","llama_tiny")]:
    base = AutoModelForCausalLM.from_pretrained(f"tests/golden/{bm}/model", torch_dtype=torch.float32, attn_implementation="eager")
    model = PeftModel.from_pretrained(base, f".peftchk/{m}")
    model.eval()
    ids = torch.tensor([[1,5,9,200,3,7,11],[4,8,15,16,23,42,99]])
    with torch.no_grad():
        out = model(input_ids=ids).logits.float()
    ref = load_file(f".peftchk/{m}/wick_logits.safetensors")["logits"]
    d = (out - ref).abs().max().item()
    worst = max(worst, d)
    print(m, "PEFT", peft.__version__, "loaded wick's adapter; max |PEFT logits - wick logits| =", d)
print("worst", worst)
