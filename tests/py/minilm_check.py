#!/usr/bin/env python3
"""wick embed on all-MiniLM-L6-v2 (tests/minilm.sh).

1. Tokenizes tests/minilm/sentences.json with the model's tokenizer.json (HF tokenizers),
   embeds with `wick embed --ids`, and checks that every paraphrase pair scores a higher
   cosine similarity than every unrelated pair.
2. When tests/golden/minilm/ref.safetensors exists (sentence-transformers' vectors, made by
   tests/minilm_ref.py): the ids there equal ours, and wick's vectors for those ids are
   within 1e-4 of sentence-transformers'. Skipped with a message when the file is absent.
3. When this wick build tokenizes text itself, `--file` with the plain sentences gives the
   same vectors as the --ids path (1e-6).

usage: minilm_check.py WICK MODEL_DIR SENTENCES.json GOLDEN.safetensors WORKDIR
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np
from tokenizers import Tokenizer


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    dts = {"F32": np.float32, "I64": np.int64, "I32": np.int32}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=dts[v["dtype"]]).reshape(v["shape"])
    return out


def wick_embed(wick, model, args, out):
    r = subprocess.run([wick, "embed", "--model", model, *args, "--out", out], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"minilm: wick embed failed ({r.returncode}): {r.stderr.strip()}")
    return read_safetensors(out)["embeddings"]


def ids_arg(seqs):
    return ";".join(",".join(str(int(i)) for i in s) for s in seqs)


def main():
    wick, model, sent_path, golden, work = sys.argv[1:6]
    spec = json.load(open(sent_path))
    sentences = spec["sentences"]
    tok = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)
    ids = [e.ids for e in tok.encode_batch(sentences)]
    emb = wick_embed(wick, model, ["--ids", ids_arg(ids), "--batch-size", "16"], os.path.join(work, "ids.safetensors"))
    fails = 0
    norms = np.linalg.norm(emb, axis=1)
    if not np.allclose(norms, 1, atol=1e-5):
        print(f"FAIL: vectors not unit length: {norms.min()}..{norms.max()}")
        fails += 1
    cos = lambda i, j: float(emb[i] @ emb[j])
    para = [cos(i, j) for i, j in spec["paraphrase_pairs"]]
    unrel = [cos(i, j) for i, j in spec["unrelated_pairs"]]
    print(f"paraphrase cosine min {min(para):.3f} mean {np.mean(para):.3f}; unrelated max {max(unrel):.3f} mean {np.mean(unrel):.3f}")
    if min(para) <= max(unrel):
        print("FAIL: a paraphrase pair scores no higher than an unrelated pair")
        fails += 1

    if os.path.exists(golden):
        g = read_safetensors(golden)
        gids = [row[m.astype(bool)].tolist() for row, m in zip(g["input_ids"], g["attention_mask"])]
        if gids != ids:
            bad = [i for i in range(len(ids)) if gids[i] != ids[i]]
            print(f"FAIL: tokenizer ids differ from sentence-transformers' for sentences {bad[:5]}")
            fails += 1
        ge = wick_embed(wick, model, ["--ids", ids_arg(gids)], os.path.join(work, "golden_ids.safetensors"))
        d = float(np.abs(ge - g["embeddings"]).max())
        print(f"vs sentence-transformers: max |diff| {d:.3g} over {ge.shape}")
        if not d <= 1e-4:
            print("FAIL: embeddings differ from sentence-transformers by more than 1e-4")
            fails += 1
    else:
        print(f"SKIP golden comparison: {golden} is absent (make it with tests/minilm_ref.py where "
              "sentence-transformers is installed)")

    probe = subprocess.run([wick, "embed", "--model", model, "--text", "probe", "--out", os.path.join(work, "p.jsonl")],
                           capture_output=True, text=True)
    if probe.returncode == 0:
        lines = os.path.join(work, "sentences.txt")
        with open(lines, "w") as f:
            f.write("\n".join(sentences) + "\n")
        te = wick_embed(wick, model, ["--file", lines], os.path.join(work, "text.safetensors"))
        d = float(np.abs(te - emb).max())
        print(f"--file text vs --ids: max |diff| {d:.3g}")
        if not d <= 1e-6:
            print("FAIL: wick's own tokenization gives different vectors than HF tokenizers' ids")
            fails += 1
    else:
        print(f"SKIP text input: {probe.stderr.strip()}")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
