"""Independent reference forward for llama-architecture GGUF files, written from
llama.cpp's semantics with numpy: weights dequantized by llama.cpp's own Python
package (gguf.quants), q/k kept in the file's permuted row order and rotated with
llama.cpp's "normal" RoPE (adjacent pairs), float64 throughout. Compares the logits
of `wick logits --model FILE.gguf` for a sequence of >= 16 ids (wick's prefill path:
dequantized weights, fp32) and of 6 ids (decode path: 8-bit activations).
Usage: gguf_llama_ref.py WICK FILE.gguf WORK_DIR"""
import json, struct, subprocess, sys
import numpy as np
import gguf
from gguf.quants import dequantize

WICK, PATH, WORK = sys.argv[1:4]
r = gguf.GGUFReader(PATH)
f = lambda k, d=None: r.fields[k].contents() if k in r.fields else d
assert f("general.architecture") == "llama", "reference covers llama only"
L, C = f("llama.block_count"), f("llama.embedding_length")
H, Hk = f("llama.attention.head_count"), f("llama.attention.head_count_kv", f("llama.attention.head_count"))
D = f("llama.attention.key_length", C // H)
theta, eps = f("llama.rope.freq_base", 10000.0), f("llama.attention.layer_norm_rms_epsilon")
T = {t.name: t for t in r.tensors}
W = lambda n: dequantize(T[n].data, T[n].tensor_type).astype(np.float64).reshape(
    [int(x) for x in reversed(T[n].shape)] if len(T[n].shape) > 1 else -1)


def rmsnorm(x, w):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope_normal(x, pos):  # x [T, heads, D]; llama.cpp GGML_ROPE_TYPE_NORM: pairs (2i, 2i+1)
    inv = theta ** (-np.arange(0, D, 2) / D)
    ang = pos[:, None] * inv[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2], out[..., 1::2] = x0 * c - x1 * s, x0 * s + x1 * c
    return out


def forward(ids):
    n = len(ids)
    x = W("token_embd.weight")[ids]
    pos = np.arange(n, dtype=np.float64)
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(L):
        p = "blk.%d." % l
        h = rmsnorm(x, W(p + "attn_norm.weight"))
        q = rope_normal((h @ W(p + "attn_q.weight").T).reshape(n, H, D), pos)
        k = rope_normal((h @ W(p + "attn_k.weight").T).reshape(n, Hk, D), pos)
        v = (h @ W(p + "attn_v.weight").T).reshape(n, Hk, D)
        o = np.empty((n, H, D))
        for hh in range(H):
            kv = hh // (H // Hk)
            a = q[:, hh] @ k[:, kv].T / np.sqrt(D) + mask
            a = np.exp(a - a.max(-1, keepdims=True))
            o[:, hh] = (a / a.sum(-1, keepdims=True)) @ v[:, kv]
        x = x + o.reshape(n, H * D) @ W(p + "attn_output.weight").T
        h = rmsnorm(x, W(p + "ffn_norm.weight"))
        g = h @ W(p + "ffn_gate.weight").T
        x = x + ((g / (1 + np.exp(-g))) * (h @ W(p + "ffn_up.weight").T)) @ W(p + "ffn_down.weight").T
    head = W("output.weight") if "output.weight" in T else W("token_embd.weight")
    return rmsnorm(x, W("output_norm.weight")) @ head.T


def wick_logits(ids):
    out = WORK + "/logits.safetensors"
    subprocess.run([WICK, "logits", "--model", PATH, "--ids", ",".join(map(str, ids)), "--out", out], check=True)
    with open(out, "rb") as fh:
        hn = struct.unpack("<Q", fh.read(8))[0]
        info = json.loads(fh.read(hn))["logits"]
        data = fh.read()
    a, b = info["data_offsets"]
    return np.frombuffer(data[a:b], np.float32).reshape(info["shape"])[0].astype(np.float64)


V = f("llama.vocab_size", int(T["token_embd.weight"].shape[1]))
rng = np.random.default_rng(0)
fails = 0
for n, tol in ((20, 2e-4), (6, 3e-2)):
    ids = [int(i) for i in rng.integers(3, V, n)]
    ref, got = forward(ids), wick_logits(ids)
    rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    same = (got.argmax(-1) == ref.argmax(-1)).mean()
    ok = rel < tol and same >= 0.8
    fails += not ok
    print("%s: %d ids: relative L2 error %.2e (tolerance %.0e), argmax agreement %.0f%%%s" %
          (PATH.split("/")[-1], n, rel, tol, 100 * same, "" if ok else "  FAIL"))
sys.exit(1 if fails else 0)
