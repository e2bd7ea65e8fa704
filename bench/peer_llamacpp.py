#!/usr/bin/env python3
"""peer_llamacpp.py — llama.cpp (through llama-cpp-python, built from source by pip) on the
same weights as a wick model directory, for side-by-side CPU benchmarks.

Converts DIR (config.json + model.safetensors, Qwen2 or Llama layout, f32/bf16) to a GGUF of
the chosen type with the `gguf` package, then times prompt processing (pp) and decoding (tg)
with llama.cpp's C API at the given thread count. Prints one JSON line.

usage: peer_llamacpp.py MODEL_DIR [--type bf16|f32|q8_0] [--threads 2] [--prompt 512]
                        [--decode 64] [--tokenizer tokenizer.json] [--gguf OUT.gguf]
pip install llama-cpp-python gguf numpy
"""
import argparse, ctypes, json, os, struct, sys, tempfile, time

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        base = 8 + n
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        raw = mm[base + b: base + e]
        dt = v["dtype"]
        if dt == "F32":
            a = raw.view(np.float32)
        elif dt == "BF16":
            a = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif dt == "F16":
            a = raw.view(np.float16).astype(np.float32)
        else:
            raise SystemExit(f"{path}: tensor {k}: dtype {dt} not handled")
        out[k] = a.reshape(v["shape"])
    return out


def permute(w, n_head):  # llama.cpp's converter layout for llama q/k
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
         "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
         "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
         "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm"}


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    p = hf.split(".")
    l, rest, kind = p[2], ".".join(p[3:-1]), p[-1]
    return f"blk.{l}.{NAMES[rest]}.{kind}"


def add_vocab(w, vocab_size, tokenizer_json):
    import gguf
    tokens, types, merges = [], [], []
    if tokenizer_json and os.path.exists(tokenizer_json):
        tj = json.load(open(tokenizer_json, encoding="utf-8"))
        vocab = tj["model"]["vocab"]
        inv = {i: t for t, i in vocab.items()}
        for a in tj.get("added_tokens", []):
            inv[a["id"]] = a["content"]
        merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    else:
        inv = {}
    for i in range(vocab_size):
        tokens.append(inv.get(i, f"[PAD{i}]"))
        types.append(gguf.TokenType.NORMAL if i in inv else gguf.TokenType.UNUSED)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges or ["a b"])


def convert(model_dir, out, qtype, tokenizer_json):
    import gguf
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    arch = cfg["model_type"]
    T = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    w = gguf.GGUFWriter(out, arch)
    H, Hk = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    C = cfg["hidden_size"]
    w.add_context_length(cfg.get("max_position_embeddings", 4096))
    w.add_embedding_length(C)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(H)
    w.add_head_count_kv(Hk)
    w.add_rope_freq_base(float(cfg.get("rope_theta", cfg.get("rope_parameters", {}).get("rope_theta", 10000.0))))
    w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
    if "head_dim" in cfg:
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
    w.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "bf16": gguf.LlamaFileType.MOSTLY_BF16,
                     "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[qtype])
    add_vocab(w, cfg["vocab_size"], tokenizer_json)
    for name, a in T.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        if arch in ("llama", "mistral") and name.endswith(("q_proj.weight", "q_proj.bias")):
            a = permute(a, H)
        if arch in ("llama", "mistral") and name.endswith(("k_proj.weight", "k_proj.bias")):
            a = permute(a, Hk)
        gname = gguf_name(name)
        if a.ndim == 1 or qtype == "f32":
            w.add_tensor(gname, a)
        elif qtype == "bf16":
            b = (a.view(np.uint32) + 0x7FFF + ((a.view(np.uint32) >> 16) & 1)) >> 16
            w.add_tensor(gname, b.astype(np.uint16).view(np.uint8), raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            q = gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(gname, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def bench(path, threads, n_prompt, n_decode, runs):
    import llama_cpp as L
    L.llama_backend_init()
    mp = L.llama_model_default_params()
    model = L.llama_model_load_from_file(path.encode(), mp)
    if not model:
        raise SystemExit("llama.cpp could not load " + path)
    cp = L.llama_context_default_params()
    cp.n_ctx = n_prompt + n_decode + 8
    cp.n_batch = n_prompt
    cp.n_ubatch = n_prompt
    cp.n_threads = threads
    cp.n_threads_batch = threads
    ctx = L.llama_init_from_model(model, cp)
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    toks = [(i * 7919 + 13) % min(n_vocab, 100000) for i in range(n_prompt)]
    pp, tg = [], []
    for _ in range(runs):
        mem = L.llama_get_memory(ctx)
        L.llama_memory_clear(mem, True)
        arr = (L.llama_token * n_prompt)(*toks)
        t0 = time.perf_counter()
        if L.llama_decode(ctx, L.llama_batch_get_one(arr, n_prompt)) != 0:
            raise SystemExit("llama_decode failed (prompt)")
        pp.append(n_prompt / (time.perf_counter() - t0))
        one = (L.llama_token * 1)(1)
        L.llama_decode(ctx, L.llama_batch_get_one(one, 1))  # first decode token not timed
        t0 = time.perf_counter()
        for i in range(n_decode):
            one[0] = (i * 31 + 7) % min(n_vocab, 100000)
            if L.llama_decode(ctx, L.llama_batch_get_one(one, 1)) != 0:
                raise SystemExit("llama_decode failed (decode)")
        tg.append(n_decode / (time.perf_counter() - t0))
    L.llama_free(ctx)
    L.llama_model_free(model)
    pp.sort(), tg.sort()
    return pp[len(pp) // 2], tg[len(tg) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--type", default="bf16", choices=["bf16", "f32", "q8_0"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tokenizer", default=None, help="a tokenizer.json to embed (default: placeholder vocab)")
    ap.add_argument("--gguf", default=None, help="where to write the GGUF (default: a temp file)")
    a = ap.parse_args()
    out = a.gguf or os.path.join(tempfile.gettempdir(), f"peer-{os.path.basename(a.model_dir.rstrip('/'))}-{a.type}.gguf")
    ftype = a.type
    if not os.path.exists(out):
        convert(a.model_dir, out, a.type, a.tokenizer)
    elif a.gguf:
        ftype = "as in " + os.path.basename(out)  # an existing file is used as it is
    pp, tg = bench(out, a.threads, a.prompt, a.decode, a.runs)
    print(json.dumps({"peer": "llama.cpp", "gguf": out, "type": ftype, "threads": a.threads, "prompt": a.prompt,
                      "decode": a.decode, "prefill_tok_s": round(pp, 2), "decode_tok_s": round(tg, 2)}))


if __name__ == "__main__":
    main()
