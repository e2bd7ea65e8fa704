#!/usr/bin/env bash
# serve_replicas.sh — `wick serve` with two replicas of the base (the CPU form of --gpus 2):
# start-up adapters placed round-robin (a1 on replica 0, a2 on replica 1, seen in /metrics);
# greedy completions on the base and on each adapter equal `wick generate`; concurrent
# requests for one adapter with one slot per replica: every answer equals the one run alone,
# and when the second replica decoded some of them it copied the adapter there first (copies
# and residency in /metrics); POST /v1/adapters places a new adapter, DELETE removes it from
# every replica; --gpus argument errors. Optional args: a device ("cuda") and its GPU count:
# with 2 GPUs the server runs with --gpus 2, with one GPU as two replicas on it.
set -u
WICK="$1"
DEV="${2:-}"
. "$(cd "$(dirname "$0")" && pwd)/lib/serve_common.sh"
mkdir -p "$T/root"
for a in 1 2 3; do
  "$WICK" train --model "$T/m" --data "$T/d.jsonl" --out "$T/root/a$a" --max-steps 2 --lr 0.2 --seed $a \
    >/dev/null 2>&1 || { echo "FAIL train a$a"; exit 1; }
done

# on a device: --gpus 2 when two GPUs are there (arg 3 = GPU count), else two replicas on the one GPU
if [ -n "$DEV" ] && [ "${3:-1}" -ge 2 ]; then REP=(--gpus 2); GEN=(--device "$DEV")
elif [ -n "$DEV" ]; then REP=(--replicas 2 --device "$DEV"); GEN=(--device "$DEV")
else REP=(--replicas 2); GEN=(); fi
start_server "$T/log" --model "$T/m" --served-name base --adapter a1="$T/root/a1" --adapter a2="$T/root/a2" \
  --adapter-root "$T/root" --parallel 1 --max-tokens 1000 "${REP[@]}"
U="http://127.0.0.1:$PORT"
code() { curl -s -o "$T/body" -w '%{http_code}' "$@"; }
metric() { curl -s "$U/metrics" | sed -n "s/^$1 //p"; }

check "replicas" "$(metric wick_replicas)" "2"
check "a1 on replica 0" "$(metric 'wick_replica_adapters{replica="0",device="[a-z0-9:]*"}')" "1"
check "a2 on replica 1" "$(metric 'wick_replica_adapters{replica="1",device="[a-z0-9:]*"}')" "1"
check "models" "$(code "$U/v1/models")" "200"
check "models ids" "$(jget '",".join(m["id"] for m in d["data"])' <"$T/body")" "base,a1,a2"

req() { echo "{\"model\":\"$1\",\"prompt\":\"Hello\",\"max_tokens\":$2,\"temperature\":0,\"ignore_eos\":true}"; }
for m in base a1 a2; do
  ad=""; [ $m != base ] && ad="--adapter $T/root/$m"
  want=$("$WICK" generate --model "$T/m" "${GEN[@]}" $ad --prompt "Hello" --max-tokens 12 --temperature 0 --ignore-eos)
  check "completion $m" "$(code "$U/v1/completions" -d "$(req $m 12)")" "200"
  check "completion $m = wick generate" "$(jget 'd["choices"][0]["text"]' <"$T/body")" "$want"
done
check "no copies while idle" "$(metric 'wick_replica_adapter_copies_total{replica="1",device="[a-z0-9:]*"}')" "0"

# four concurrent requests for a1 (one slot per replica): the second replica runs some of them
curl -s "$U/v1/completions" -d "$(req a1 200)" >"$T/alone.json"
rows1=$(metric 'wick_replica_decode_rows_total{replica="1",device="[a-z0-9:]*"}')
CP=""
for i in 1 2 3 4; do curl -s "$U/v1/completions" -d "$(req a1 200)" >"$T/c$i.json" & CP="$CP $!"; done
wait $CP
same=1
for i in 1 2 3 4; do
  [ "$(jget 'd["choices"][0]["text"]' <"$T/c$i.json")" = "$(jget 'd["choices"][0]["text"]' <"$T/alone.json")" ] || same=0
done
check "concurrent a1 answers = alone" "$same" "1"
rows1b=$(metric 'wick_replica_decode_rows_total{replica="1",device="[a-z0-9:]*"}')
copies=$(metric 'wick_replica_adapter_copies_total{replica="1",device="[a-z0-9:]*"}')
res1=$(metric 'wick_replica_adapters{replica="1",device="[a-z0-9:]*"}')
if [ "$rows1b" -gt "$rows1" ]; then
  check "replica 1 copied a1 once" "$copies $res1" "1 2"
else
  echo "note: the four requests did not overlap; replica 1 ran none of them"
  check "no copy without a request there" "$copies $res1" "0 1"
fi

# a new adapter goes to a replica with the fewest adapters; DELETE removes it from all
check "load a3" "$(code "$U/v1/adapters" -d '{"name":"a3","path":"a3"}')" "200"
check "a3 serves" "$(code "$U/v1/completions" -d "$(req a3 4)")" "200"
check "adapters loaded" "$(metric wick_adapters_loaded)" "3"
check "unload a1" "$(code -X DELETE "$U/v1/adapters/a1")" "200"
check "a1 gone" "$(code "$U/v1/completions" -d "$(req a1 4)")" "404"
r0=$(metric 'wick_replica_adapters{replica="0",device="[a-z0-9:]*"}'); r1=$(metric 'wick_replica_adapters{replica="1",device="[a-z0-9:]*"}')
check "a1 off every replica (a2 and a3 left, one each)" "$(metric wick_adapters_loaded) $r0 $r1" "2 1 1"
kill -TERM "$SPID"; wait "$SPID" 2>/dev/null

# argument errors
"$WICK" serve --model "$T/m" --gpus 0 >/dev/null 2>"$T/err"; check "--gpus 0 refused" "$?" "2"
"$WICK" serve --model "$T/m" --gpus 2 --device cpu >/dev/null 2>"$T/err"; check "--gpus with --device cpu refused" "$?" "2"
grep -q "gpus" "$T/err"; check "--gpus error names the option" "$?" "0"
exit $fail
