#!/usr/bin/env bash
# Differential test of the tokenizer against Hugging Face tokenizers/transformers (tests/tok_diff.py).
# usage: bash tests/tok_diff.sh /path/to/wick   (the Python packages come from tests/requirements.txt)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
wick="${1:?usage: tok_diff.sh /path/to/wick}"
py="${WICK_PYTHON:-python3}"
if ! "$py" -c "import tokenizers, transformers" 2>/dev/null; then
  echo "tok_diff: python packages tokenizers/transformers missing (run scripts/install-deps.sh)" >&2
  exit 1
fi
quick=""
[ -n "${WICK_ASAN:-}" ] && quick="--quick"   # fewer cases under the sanitizers
export TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
exec "$py" "$here/tok_diff.py" "$wick" $quick
