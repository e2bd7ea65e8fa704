#!/usr/bin/env bash
# generate_cli.sh — `wick generate` conformance form against Hugging Face's generate
# (gen_greedy, gen_greedy_rep1.5 of the three golden models), --json output, errors.
set -u
WICK="$1"
export OMP_NUM_THREADS=1 # tiny models: threads only add spin-wait time on small CI machines
DIR="$(cd "$(dirname "$0")" && pwd)/golden"
fail=0
check() { if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: got [$2] want [$3]"; fail=1; fi; }

# every golden id list in one python call: lines "MODEL KEY ids..."
GOLD=$(python3 - "$DIR" <<'PY'
import json, struct, sys, array
for m in ("qwen2_tiny", "llama_tiny", "qwen3_tiny"):
    f = open(f"{sys.argv[1]}/{m}/golden.safetensors", "rb"); n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n))
    for k in ("gen_prompt", "gen_greedy", "gen_greedy_rep1.5", "gen_greedy_adapter1"):
        o = h[k]["data_offsets"]; f.seek(8 + n + o[0]); a = array.array("q"); a.frombytes(f.read(o[1] - o[0]))
        print(m, k, " ".join(map(str, a)))
PY
)
ids() { echo "$GOLD" | awk -v m="$1" -v k="$2" '$1 == m && $2 == k { $1 = ""; $2 = ""; sub(/^ +/, ""); print }'; }

for m in qwen2_tiny llama_tiny qwen3_tiny; do
  p=$(ids $m gen_prompt | tr ' ' ,)
  got=$("$WICK" generate --model "$DIR/$m/model" --prompt-ids "$p" --max-tokens 24 --temperature 0 --ignore-eos --print-ids)
  check "$m gen_greedy" "$got" "$(ids $m gen_greedy)"
  got=$("$WICK" generate --model "$DIR/$m/model" --prompt-ids "$p" --max-tokens 24 --temperature 0 \
        --repetition-penalty 1.5 --ignore-eos --print-ids)
  check "$m gen_greedy_rep1.5" "$got" "$(ids $m gen_greedy_rep1.5)"
  got=$("$WICK" generate --model "$DIR/$m/model" --adapter "$DIR/$m/adapter1" --prompt-ids "$p" --max-tokens 24 \
        --temperature 0 --ignore-eos --print-ids)
  check "$m gen_greedy_adapter1" "$got" "$(ids $m gen_greedy_adapter1)"
done

M="$DIR/qwen2_tiny/model"
# --json: one line per token + a summary; the ids equal --print-ids for the same seed
out=$("$WICK" generate --model "$M" --prompt-ids "1,2,3" --max-tokens 7 --seed 5 --temperature 0.9 --ignore-eos \
      --top-logprobs 3 --json)
check "json lines" "$(echo "$out" | wc -l)" "8"
jids=$(echo "$out" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
assert rows[-1]["done"] and rows[-1]["n_generated"] == 7 and rows[-1]["stop"] == "length"
assert all(len(r["top_logprobs"]) == 3 and r["logprob"] <= 0 for r in rows[:-1])
print(" ".join(str(r["id"]) for r in rows[:-1]))')
pids=$("$WICK" generate --model "$M" --prompt-ids "1,2,3" --max-tokens 7 --seed 5 --temperature 0.9 --ignore-eos --print-ids)
check "json ids == print-ids" "$jids" "$pids"
oids=$("$WICK" generate --model "$M" --prompt-ids "1,2,3" --max-tokens 7 --seed 6 --temperature 0.9 --ignore-eos --print-ids)
[ "$oids" != "$pids" ] && echo "ok   other seed differs" || { echo "FAIL other seed gave the same ids"; fail=1; }

# errors: one line on stderr, non-zero exit
"$WICK" generate --help >/dev/null; check "help exits 0" "$?" "0"
err=$("$WICK" generate --model "$M" --prompt-ids "1,999" --max-tokens 2 --print-ids 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && [ "$(echo "$err" | wc -l)" = 1 ] && echo "$err" | grep -q "999" && echo "ok   id outside vocab" \
  || { echo "FAIL id outside vocab: rc $rc [$err]"; fail=1; }
err=$("$WICK" generate --model "$M" --prompt-ids "1,2" --max-tokens 9 --max-context 6 --ignore-eos --print-ids 2>&1 >/dev/null); rc=$?
[ $rc -ne 0 ] && echo "$err" | grep -q "context" && echo "ok   context full" || { echo "FAIL context: rc $rc [$err]"; fail=1; }
"$WICK" generate --model "$M" --prompt-ids "1" --bogus 2>/dev/null; [ $? -eq 2 ] && echo "ok   unknown option" || { echo "FAIL unknown option"; fail=1; }
"$WICK" generate --model "$M" --prompt-ids "1" --top-p 2 --max-tokens 1 2>/dev/null; [ $? -ne 0 ] && echo "ok   bad top-p" || { echo "FAIL bad top-p accepted"; fail=1; }

# text prompts through the tokenizer: a random model with wick's byte-level tokenizer
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$WICK" init-model --arch qwen2 --preset tiny --dtype f32 --seed 3 --out "$T/m" --tokenizer bytes >/dev/null
plain=$("$WICK" generate --model "$T/m" --prompt "Once upon" --max-tokens 12 --seed 9 --ignore-eos)
jtext=$("$WICK" generate --model "$T/m" --prompt "Once upon" --max-tokens 12 --seed 9 --ignore-eos \
        --json | python3 -c '
import json, sys
print("".join(r.get("text", "") for r in map(json.loads, sys.stdin)))')
check "stream text == json text" "$plain" "$jtext"
stop=$(printf '%s' "$plain" | python3 -c 'import sys; t = sys.stdin.read(); print(t[2:4], end="")')
want=$(printf '%s' "$plain" | python3 -c 'import sys; t = sys.stdin.read(); s = t[2:4]; print(t[:t.find(s)], end="")')
got=$("$WICK" generate --model "$T/m" --prompt "Once upon" --max-tokens 12 --seed 9 --ignore-eos \
      --stop "$stop")
check "--stop cuts before the stop text" "$got" "$want"
"$WICK" generate --model "$T/m" --prompt "Hi" --system "Be brief." --max-tokens 4 >/dev/null
check "--chat --system" "$?" "0"
printf 'Hi\n/reset\nHello again\n/quit\n' | "$WICK" chat --model "$T/m" --system "Be brief." --max-tokens 3 >/dev/null
check "wick chat" "$?" "0"
exit $fail
