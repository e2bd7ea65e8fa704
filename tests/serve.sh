#!/usr/bin/env bash
# serve.sh — `wick serve` with real clients on loopback (random free port): curl for health,
# models, auth (401), malformed JSON (400), body limit (413), limits, adapter load/unload with
# path checks, metrics; greedy parity with `wick generate` and with the qwen2_tiny golden ids;
# then tests/py/serve_client.py (the official openai package: streaming chat, logprobs, model
# listing, concurrent streams on different adapters, disconnect, load test); graceful SIGTERM.
set -u
WICK="$1"
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib/serve_common.sh"
# adapters trained 2 steps (random, distinct)
mkdir -p "$T/root" "$T/outside"
for a in 1 2; do
  "$WICK" train --model "$T/m" --data "$T/d.jsonl" --out "$T/root/a$a" --max-steps 2 --lr 0.2 --seed $a \
    >/dev/null 2>&1 || { echo "FAIL train a$a"; exit 1; }
done
cp -r "$T/root/a1" "$T/outside/evil"
ln -s "$T/outside/evil" "$T/root/link"

start_server "$T/log" --model "$T/m" --served-name base --adapter a1="$T/root/a1" --adapter a2="$T/root/a2" \
  --adapter-root "$T/root" --api-key sekret --max-body 4096 --max-tokens 1000 --parallel 4
U="http://127.0.0.1:$PORT"
H="Authorization: Bearer sekret"
code() { curl -s -o "$T/body" -w '%{http_code}' "$@"; }

check "health" "$(code "$U/health")" "200"
check "models 401 without key" "$(code "$U/v1/models")" "401"
check "401 error shape" "$(jget 'd["error"]["code"]' <"$T/body")" "invalid_api_key"
check "models 401 wrong key" "$(code -H 'Authorization: Bearer nope' "$U/v1/models")" "401"
check "models" "$(code -H "$H" "$U/v1/models")" "200"
check "models ids" "$(jget '",".join(m["id"] for m in d["data"])' <"$T/body")" "base,a1,a2"

# greedy completions equal `wick generate` (base and adapter)
for m in base a1; do
  ad=""; [ $m = a1 ] && ad="--adapter $T/root/a1"
  want=$("$WICK" generate --model "$T/m" $ad --prompt "Hello" --max-tokens 12 --temperature 0 --ignore-eos)
  check "completion $m" "$(code -H "$H" "$U/v1/completions" -d "{\"model\":\"$m\",\"prompt\":\"Hello\",\"max_tokens\":12,\"temperature\":0,\"ignore_eos\":true}")" "200"
  check "completion $m text = wick generate" "$(jget 'd["choices"][0]["text"]' <"$T/body")" "$want"
  check "completion $m usage" "$(jget 'd["usage"]["completion_tokens"], d["choices"][0]["finish_reason"]' <"$T/body")" "12 length"
done

# errors in OpenAI's shape
check "malformed json 400" "$(code -H "$H" "$U/v1/completions" -d '{"model": "base", "prompt": ')" "400"
check "malformed json shape" "$(jget 'd["error"]["type"], d["error"]["code"]' <"$T/body")" "invalid_request_error invalid_json"
check "not an object 400" "$(code -H "$H" "$U/v1/chat/completions" -d '[1,2]')" "400"
check "binary body 400" "$(head -c 300 /dev/urandom | tr -d '\000' >"$T/bin"; code -H "$H" "$U/v1/completions" --data-binary @"$T/bin")" "400"
head -c 5000 /dev/zero | tr '\0' a >"$T/big"
check "body too large 413" "$(code -H "$H" "$U/v1/completions" --data-binary @"$T/big")" "413"
check "413 shape" "$(jget 'd["error"]["code"]' <"$T/body")" "body_too_large"
check "unknown model 404" "$(code -H "$H" "$U/v1/completions" -d '{"model":"nope","prompt":"x"}')" "404"
check "max_tokens over limit 400" "$(code -H "$H" "$U/v1/completions" -d '{"model":"base","prompt":"x","max_tokens":1001}')" "400"
check "bad temperature 400" "$(code -H "$H" "$U/v1/completions" -d '{"model":"base","prompt":"x","temperature":"hot"}')" "400"
check "bad messages 400" "$(code -H "$H" "$U/v1/chat/completions" -d '{"model":"base","messages":[{"role":1}]}')" "400"
check "unknown route 404" "$(code -H "$H" "$U/v1/nothing")" "404"
check "embeddings off 404" "$(code -H "$H" "$U/v1/embeddings" -d '{"input":"x"}')" "404"

# adapters: path checks, load, use, unload
check "adapter .. 400" "$(code -H "$H" "$U/v1/adapters" -d '{"name":"x","path":"../outside/evil"}')" "400"
check "adapter absolute 400" "$(code -H "$H" "$U/v1/adapters" -d "{\"name\":\"x\",\"path\":\"$T/root/a1\"}")" "400"
check "adapter symlink out 400" "$(code -H "$H" "$U/v1/adapters" -d '{"name":"x","path":"link"}')" "400"
check "adapter missing 404" "$(code -H "$H" "$U/v1/adapters" -d '{"name":"x","path":"nothere"}')" "404"
check "adapter bad name 400" "$(code -H "$H" "$U/v1/adapters" -d '{"name":"a/b","path":"a1"}')" "400"
check "adapter taken 409" "$(code -H "$H" "$U/v1/adapters" -d '{"name":"a1","path":"a1"}')" "409"
check "adapter load" "$(code -H "$H" "$U/v1/adapters" -d '{"name":"a3","path":"a2"}')" "200"
check "adapter listed" "$(code -H "$H" "$U/v1/models" >/dev/null; jget '",".join(m["id"] for m in d["data"])' <"$T/body")" "base,a1,a2,a3"
code -H "$H" "$U/v1/completions" -d '{"model":"a3","prompt":"Hello","max_tokens":12,"temperature":0,"ignore_eos":true}' >/dev/null
a3=$(jget 'd["choices"][0]["text"]' <"$T/body")
code -H "$H" "$U/v1/completions" -d '{"model":"a2","prompt":"Hello","max_tokens":12,"temperature":0,"ignore_eos":true}' >/dev/null
check "loaded adapter = same dir at start" "$a3" "$(jget 'd["choices"][0]["text"]' <"$T/body")"
check "adapter unload" "$(code -X DELETE -H "$H" "$U/v1/adapters/a3")" "200"
check "adapter unload again 404" "$(code -X DELETE -H "$H" "$U/v1/adapters/a3")" "404"
check "unloaded model 404" "$(code -H "$H" "$U/v1/completions" -d '{"model":"a3","prompt":"x"}')" "404"

# the official openai client: streaming, logprobs, listing, concurrent adapters, disconnect, load
timeout 60 python3 "$HERE/py/serve_client.py" "$U" sekret || { echo "FAIL serve_client.py"; fail=1; }

check "metrics" "$(code "$U/metrics")" "200"
check "metrics fields" "$(grep -c '^wick_requests_total\|^wick_generation_tokens_total\|^wick_queue_length\|^wick_request_latency_seconds_count' "$T/body")" "4"
check "metrics cancelled" "$(awk '/^wick_requests_cancelled_total/ { print ($2 >= 1) }' "$T/body")" "1"

# graceful shutdown with a stream in flight: SIGTERM -> the stream ends with [DONE], exit 0
curl -sN -H "$H" "$U/v1/completions" -d '{"model":"base","prompt":"Hi","max_tokens":64,"temperature":0,"ignore_eos":true,"stream":true}' >"$T/stream" &
CPID=$!
sleep 0.3
kill -TERM "$SPID"
wait "$SPID"; rc=$?
wait "$CPID"
check "SIGTERM exit 0" "$rc" "0"
check "stream ended with [DONE]" "$(tail -n 2 "$T/stream" | head -n 1)" "data: [DONE]"

# a model without a tokenizer: prompts as ids; greedy ids equal the Hugging Face golden ids
G="$HERE/golden/qwen2_tiny"
ids=$(python3 - "$G/golden.safetensors" <<'PY'
import json, struct, sys, array
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n))
for k in ("gen_prompt", "gen_greedy"):
    o = h[k]["data_offsets"]; f.seek(8 + n + o[0]); a = array.array("q"); a.frombytes(f.read(o[1] - o[0]))
    print(",".join(map(str, a)))
PY
)
start_server "$T/log2" --model "$G/model" --served-name tiny --parallel 1 --embed-model "$HERE/golden/bert_tiny/model"
U="http://127.0.0.1:$PORT"
check "golden: text prompt without tokenizer 400" "$(code "$U/v1/completions" -d '{"model":"tiny","prompt":"x"}')" "400"
check "golden: ids completion" "$(code "$U/v1/completions" -d "{\"model\":\"tiny\",\"prompt\":[$(echo "$ids" | head -1)],\"max_tokens\":24,\"temperature\":0,\"ignore_eos\":true,\"return_token_ids\":true}")" "200"
check "golden: greedy ids = HF" "$(jget '",".join(map(str, d["choices"][0]["token_ids"]))' <"$T/body")" "$(echo "$ids" | tail -1)"
# /v1/embeddings on the bert_tiny golden (ids input; the encoder has no tokenizer)
python3 - "$HERE/golden/bert_tiny/golden.safetensors" "$U" <<'PY' || fail=1
import json, struct, sys, urllib.request, urllib.error, array, math
f = open(sys.argv[1], "rb"); n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n))
def get(k, tc):
    o = h[k]["data_offsets"]; f.seek(8 + n + o[0]); a = array.array(tc); a.frombytes(f.read(o[1] - o[0])); return a
ids, mask, emb = get("input_ids", "q"), get("attention_mask", "q"), get("embeddings", "f")
B, T = h["input_ids"]["shape"]; H = h["embeddings"]["shape"][1]
seqs = [[ids[b * T + t] for t in range(T) if mask[b * T + t]] for b in range(B)]
def post(body):
    req = urllib.request.Request(sys.argv[2] + "/v1/embeddings", json.dumps(body).encode(), {"Content-Type": "application/json"})
    try: return 200, json.load(urllib.request.urlopen(req, timeout=10))
    except urllib.error.HTTPError as e: return e.code, json.load(e)
code, r = post({"model": "bert", "input": seqs})
got = [d["embedding"] for d in r["data"]] if code == 200 else []
err = 0.0
for b, v in enumerate(got):
    nv = math.sqrt(sum(x * x for x in v)); ref = emb[b * H:(b + 1) * H]; nr = math.sqrt(sum(x * x for x in ref))
    err = max(err, max(abs(x / nv - y / nr) for x, y in zip(v, ref)))
ok = code == 200 and len(got) == B and err < 1e-4 and r["usage"]["prompt_tokens"] == sum(map(len, seqs))
print(("ok   " if ok else "FAIL ") + f"embeddings = bert_tiny golden (max |diff| {err:.2e}, status {code})")
code2, r2 = post({"model": "bert", "input": "text needs a tokenizer"})
print(("ok   " if code2 == 400 and "error" in r2 else "FAIL ") + f"embeddings text without tokenizer 400 ({code2})")
sys.exit(0 if ok and code2 == 400 else 1)
PY
kill -TERM "$SPID"; wait "$SPID"
check "golden server exit 0" "$?" "0"
exit $fail
