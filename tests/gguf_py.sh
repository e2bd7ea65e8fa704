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
