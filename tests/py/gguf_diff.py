"""Differential test of wick's GGUF writer/reader/quantizers against llama.cpp's own
Python package `gguf` (PyPI): their reader reads files wick writes, wick reads files
their writer writes. Usage: gguf_diff.py WICK_BIN GOLDEN_DIR WORK_DIR

A. `wick quantize` on the golden HF checkpoints: gguf.GGUFReader must parse the file;
   metadata must match config.json; every tensor must be, byte for byte, what
   gguf.quants.quantize (bit-exact with ggml's reference quantizers) makes of the
   safetensors weight after llama.cpp's q/k permutation (written here from
   convert_hf_to_gguf.py's formula); Q4_K (which the package cannot quantize) is
   checked through their dequantizer against the weight.
B. A file written by gguf.GGUFWriter (metadata of every type, nested string arrays,
   alignment 64, tensors of eleven ggml types) re-written by `wick quantize --type f32`
   must carry the same metadata and exactly their dequantized values.
"""
import json, os, struct, subprocess, sys
import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, GGUFValueType as V
from gguf.quants import quantize, dequantize

WICK, GOLDEN, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
fails = 0


def check(cond, msg):
    global fails
    if not cond:
        fails += 1
        print("FAIL:", msg, file=sys.stderr)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in hdr.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = np.frombuffer(data[a:b], dtype=np.uint8)
        if info["dtype"] == "F32":
            arr = raw.view(np.float32)
        elif info["dtype"] == "BF16":
            arr = (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] == "F16":
            arr = raw.view(np.float16).astype(np.float32)
        else:
            raise ValueError(info["dtype"])
        out[name] = arr.reshape(info["shape"])
    return out


LAYER = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
         "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.weight": "attn_k.weight",
         "self_attn.k_proj.bias": "attn_k.bias", "self_attn.v_proj.weight": "attn_v.weight",
         "self_attn.v_proj.bias": "attn_v.bias", "self_attn.o_proj.weight": "attn_output.weight",
         "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
         "post_attention_layernorm.weight": "ffn_norm.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
         "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}
GLOBAL = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
          "lm_head.weight": "output.weight"}


def gguf_name(hf):
    if hf in GLOBAL:
        return GLOBAL[hf]
    parts = hf.split(".")
    return "blk.%s.%s" % (parts[2], LAYER[".".join(parts[3:])])


def permute(w, n_head):  # convert_hf_to_gguf.py LlamaModel.permute
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def field(r, key):
    f = r.fields.get(key)
    return None if f is None else f.contents()


def part_a(model, types):
    d = os.path.join(GOLDEN, model, "model")
    cfg = json.load(open(os.path.join(d, "config.json")))
    weights = read_safetensors(os.path.join(d, "model.safetensors"))
    arch = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}[cfg["model_type"]]
    heads, kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    for t in types:
        out = os.path.join(WORK, "%s_%s.gguf" % (model, t))
        subprocess.run([WICK, "quantize", "--model", d, "--type", t, "--out", out], check=True)
        r = gguf.GGUFReader(out)
        check(field(r, "general.architecture") == arch, "%s: architecture" % out)
        ftype = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "q4_k": 14, "bf16": 32}[t]
        check(field(r, "general.file_type") == ftype, "%s: general.file_type %s" % (out, field(r, "general.file_type")))
        for key, hf in [("block_count", "num_hidden_layers"), ("embedding_length", "hidden_size"),
                        ("feed_forward_length", "intermediate_size"), ("attention.head_count", "num_attention_heads"),
                        ("vocab_size", "vocab_size")]:
            check(field(r, "%s.%s" % (arch, key)) == cfg[hf], "%s: %s.%s" % (out, arch, key))
        check(field(r, arch + ".attention.head_count_kv") == kv, out + ": head_count_kv")
        check(abs(field(r, arch + ".attention.layer_norm_rms_epsilon") - cfg["rms_norm_eps"]) < 1e-12, out + ": eps")
        tensors = {x.name: x for x in r.tensors}
        expect = {gguf_name(n) for n in weights if not (n == "lm_head.weight" and cfg.get("tie_word_embeddings"))}
        check(set(tensors) == expect, "%s: tensor names %s" % (out, sorted(set(tensors) ^ expect)))
        for hf, w in weights.items():
            g = gguf_name(hf)
            if g not in tensors:
                continue
            if arch == "llama" and (".q_proj." in hf or ".k_proj." in hf):
                w = permute(w, heads if ".q_proj." in hf else kv)
            ten = tensors[g]
            check(list(ten.shape) == list(reversed(w.shape)), "%s %s: shape %s" % (out, g, list(ten.shape)))
            if w.ndim == 1:
                check(ten.tensor_type == Q.F32 and np.array_equal(ten.data.reshape(-1), w), "%s %s: 1-D f32" % (out, g))
                continue
            want_t = Q[t.upper()]
            bs = gguf.GGML_QUANT_SIZES[want_t][0]
            if w.shape[1] % bs:
                want_t = Q.Q8_0 if w.shape[1] % 32 == 0 else Q.F16
            check(ten.tensor_type == want_t, "%s %s: type %s, want %s" % (out, g, ten.tensor_type.name, want_t.name))
            if want_t == Q.Q4_K:
                deq = dequantize(ten.data, want_t).reshape(w.shape)
                err = np.abs(deq - w).max() / np.abs(w).max()
                check(err < 0.2, "%s %s: Q4_K relative error %g" % (out, g, err))
            else:
                ref = w.astype(np.float16) if want_t == Q.F16 else w.copy() if want_t == Q.F32 else quantize(w, want_t)
                check(np.array_equal(np.asarray(ten.data).view(np.uint8).reshape(-1), ref.view(np.uint8).reshape(-1)),
                      "%s %s: %s bytes differ from gguf.quants.quantize" % (out, g, want_t.name))


def rand_blocks(rng, t, rows, cols):
    bs, ts = gguf.GGML_QUANT_SIZES[t]
    raw = rng.integers(0, 256, size=(rows, cols // bs, ts), dtype=np.uint8)
    h = lambda v: np.frombuffer(np.float16(v).tobytes(), np.uint8)
    if t == Q.Q6_K:
        raw[:, :, 208:210] = h(0.01)
    else:
        raw[:, :, 0:2] = h(0.02)
        raw[:, :, 2:4] = h(0.005)
    return raw.reshape(rows, -1)


def part_b():
    rng = np.random.default_rng(7)
    theirs, mine = os.path.join(WORK, "theirs.gguf"), os.path.join(WORK, "mine.gguf")
    w = gguf.GGUFWriter(theirs, "llama")
    w.data_alignment = 64
    w.add_custom_alignment(64)
    w.add_uint8("v.u8", 250); w.add_int8("v.i8", -7); w.add_uint16("v.u16", 65000); w.add_int16("v.i16", -32000)
    w.add_uint32("v.u32", 4000000000); w.add_int32("v.i32", -5); w.add_float32("v.f32", 0.125)
    w.add_uint64("v.u64", 2**63 + 5); w.add_int64("v.i64", -2**62); w.add_float64("v.f64", 1 / 3)
    w.add_bool("v.bool", True); w.add_string("v.str", "héllo wörld")
    w.add_array("a.i32", [1, -2, 3]); w.add_array("a.f32", [0.5, 1.5]); w.add_array("a.str", ["Ġa", "", "<s>"])
    w.add_array("a.nested", [["x", "yy"], ["zzz"]]); w.add_array("a.bool", [True, False])
    specs = [(Q.F32, (6, 64)), (Q.F16, (5, 64)), (Q.BF16, (4, 64)), (Q.Q8_0, (3, 64)), (Q.Q4_0, (3, 96)),
             (Q.Q4_1, (2, 64)), (Q.Q5_0, (2, 64)), (Q.Q5_1, (2, 64)), (Q.Q4_K, (2, 256)), (Q.Q5_K, (2, 512)),
             (Q.Q6_K, (3, 256))]
    theirs_deq = {}
    for t, shape in specs:
        name = "t.%s" % t.name
        if t in (Q.Q4_K, Q.Q5_K, Q.Q6_K):
            q = rand_blocks(rng, t, *shape)
        else:
            f = rng.standard_normal(shape).astype(np.float32)
            q = f if t == Q.F32 else f.astype(np.float16) if t == Q.F16 else quantize(f, t)
        w.add_tensor(name, q, raw_dtype=t if t not in (Q.F32, Q.F16) else None)
        theirs_deq[name] = dequantize(q.view(np.uint8) if t not in (Q.F32, Q.F16) else q, t).reshape(shape)
    norm = rng.standard_normal(64).astype(np.float32)
    w.add_tensor("t.norm", norm)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    subprocess.run([WICK, "quantize", "--model", theirs, "--type", "f32", "--out", mine], check=True)
    a, b = gguf.GGUFReader(theirs), gguf.GGUFReader(mine)
    for key, f in a.fields.items():
        if key.startswith("GGUF.") or key in ("general.alignment", "general.file_type"):
            continue
        g = b.fields.get(key)
        check(g is not None and g.types == f.types, "metadata key %s missing or retyped" % key)
        if g is not None and key != "a.nested":
            check(g.contents() == f.contents(), "metadata %s: %r != %r" % (key, g.contents(), f.contents()))
        if g is not None:
            check(all(np.array_equal(g.parts[i], f.parts[i]) for i in range(1, len(f.parts))), "metadata %s bytes" % key)
    tb = {x.name: x for x in b.tensors}
    for name, ref in theirs_deq.items():
        x = tb.get(name)
        check(x is not None and x.tensor_type == Q.F32, "%s: missing or not F32" % name)
        if x is not None:
            check(np.array_equal(np.asarray(x.data).reshape(ref.shape), ref), "%s: wick's dequantization differs" % name)
    check(np.array_equal(np.asarray(tb["t.norm"].data), norm), "1-D tensor copied")
    mine8 = os.path.join(WORK, "mine8.gguf")
    subprocess.run([WICK, "quantize", "--model", theirs, "--type", "q8_0", "--out", mine8], check=True)
    t8 = {x.name: x for x in gguf.GGUFReader(mine8).tensors}
    for name, ref in theirs_deq.items():
        want = quantize(ref.astype(np.float32), Q.Q8_0)
        check(np.array_equal(np.asarray(t8[name].data).view(np.uint8).reshape(-1), want.reshape(-1)), "%s: q8_0 bytes" % name)


part_a("llama_tiny", ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k"])
part_a("qwen2_tiny", ["q8_0"])
part_a("qwen3_tiny", ["q4_1"])
part_b()
print("gguf_diff: %s" % ("ok" if not fails else "%d failures" % fails))
sys.exit(1 if fails else 0)
