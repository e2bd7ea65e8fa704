# serve_common.sh — sourced by the `wick serve` tests (tests/serve*.sh): a temp dir $T removed at exit
# with every server started, check NAME GOT WANT (sets fail=1 on a mismatch), jget (JSON field on
# stdin), start_server LOG ARGS... (wick serve --port 0; waits for its port: PORT, SPID), and the
# tiny model ($T/m, byte tokenizer + ChatML) with its training data ($T/d.jsonl). Needs WICK set.
export OMP_NUM_THREADS=1
T=$(mktemp -d)
PIDS=""
cleanup() { for p in $PIDS; do kill -9 "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
fail=0
check() { if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: got [$2] want [$3]"; fail=1; fi; }
# jq-free JSON field access: jget 'expr on d' < json
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# start_server LOG args...: runs wick serve --port 0, waits for its port (60 s: a GPU start), sets PORT and SPID
start_server() {
  local log="$1"; shift
  "$WICK" serve --port 0 "$@" >"$log" 2>&1 &
  SPID=$!; PIDS="$PIDS $SPID"; PORT=""
  for _ in $(seq 1 600); do
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$PORT" ] && return 0
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.1
  done
  echo "FAIL server did not start:"; cat "$log"; exit 1
}

# model with a byte tokenizer + ChatML template, and a few lines to train adapters on
"$WICK" init-model --arch qwen2 --preset tiny --dtype f32 --seed 1 --out "$T/m" --tokenizer bytes >/dev/null || exit 1
printf '{"text":"hello world"}\n{"text":"the cat sat"}\n{"text":"on the mat"}\n{"text":"abc abc abc"}\n' >"$T/d.jsonl"
