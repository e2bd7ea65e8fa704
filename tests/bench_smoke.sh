#!/usr/bin/env bash
# bench_smoke.sh — CI run of the benchmark suite: `wick bench --quick` writes a results
# document with the required fields, every listed benchmark reports, `wick bench compare`
# validates bench/budgets.json (exit 0 unless a claim fails), and a run compared with
# itself shows no regression. Usage: bash tests/bench_smoke.sh /path/to/wick
set -euo pipefail
WICK="$1"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$WICK" bench --help | grep -q "wick bench compare" || fail "bench --help"
if "$WICK" bench --suite nope 2>"$tmp/err" >/dev/null; then fail "a bad suite must fail"; fi
grep -q "suite 'nope'" "$tmp/err" || fail "bad suite message: $(cat "$tmp/err")"
if "$WICK" bench --runs 0 2>"$tmp/err" >/dev/null; then fail "--runs 0 must fail"; fi

"$WICK" bench list --quick > "$tmp/names.txt"
[ "$(wc -l < "$tmp/names.txt")" -ge 30 ] || fail "bench list: $(wc -l < "$tmp/names.txt") names"

# One thread: ctest runs other tests beside this one, and on a busy 2-core machine every
# OpenMP barrier can wait a whole scheduler slice (ops measured 1000x slower with 2 threads).
runs=(--threads 1)
if [ -n "${WICK_ASAN:-}" ]; then runs+=(--runs 3); fi   # the sanitizer build is slower; keep the smoke run short
start=$(date +%s)
WICK_BENCH_CACHE="$tmp/cache" "$WICK" bench --quick "${runs[@]}" --json "$tmp/r.json" > "$tmp/table.txt"
echo "bench --quick took $(( $(date +%s) - start )) s"

python3 - "$tmp/r.json" "$tmp/names.txt" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
names = open(sys.argv[2]).read().split()
assert doc["schema_version"] == 1 and doc["schema"] == "wick-bench", "schema"
for k in ("git", "build", "date", "machine", "config", "results"):
    assert k in doc, "missing " + k
assert doc["git"]["commit"], "git commit"
m = doc["machine"]
assert m["cpu"] and m["cores"] >= 1 and m["memory_bytes"] > 0 and isinstance(m["simd"], list), m
got = [r["name"] for r in doc["results"]]
assert got == names, "results %s != list %s" % (got, names)
for r in doc["results"]:
    assert r["samples"] == len(r["samples_s"]) >= 3, r["name"]
    assert r["ci"]["lo_s"] <= r["median_s"] <= r["ci"]["hi_s"], r["name"]
    assert r["min_s"] <= r["median_s"] <= r["max_s"] and r["mad_s"] >= 0, r["name"]
    if "throughput" in r:
        assert r["throughput"]["value"] > 0 and r["throughput"]["unit"], r["name"]
print("results document ok:", len(got), "benchmarks")
PY

# every benchmark name appears in the table
while read -r n; do grep -q "^$n " "$tmp/table.txt" || fail "table lacks $n"; done < "$tmp/names.txt"

if [ -z "${WICK_ASAN:-}" ]; then
  "$WICK" bench compare "$tmp/r.json" --budgets "$ROOT/bench/budgets.json" > "$tmp/claims.md" \
    || { cat "$tmp/claims.md"; fail "budgets failed"; }
  grep -q "Claims: 11 validated, 0 failed, 0 not measured" "$tmp/claims.md" || { cat "$tmp/claims.md"; fail "claims summary"; }
else
  # the sanitizer build distorts relative timings (ASan slows the streaming path's small
  # allocations and callbacks most) and runs 3 samples: every claim must be measured, and
  # a failed one must fail the compare, but whether it holds is the plain build's check
  rc=0
  "$WICK" bench compare "$tmp/r.json" --budgets "$ROOT/bench/budgets.json" > "$tmp/claims.md" || rc=$?
  line=$(grep -oE "Claims: [0-9]+ validated, [0-9]+ failed, 0 not measured" "$tmp/claims.md") \
    || { cat "$tmp/claims.md"; fail "claims summary (sanitizer build)"; }
  v=$(echo "$line" | awk '{print $2}'); f=$(echo "$line" | awk '{print $4}')
  [ $((v + f)) -eq 11 ] || fail "claims measured: $line"
  { [ "$f" -eq 0 ] && [ "$rc" -eq 0 ]; } || { [ "$f" -gt 0 ] && [ "$rc" -ne 0 ]; } || fail "compare exit $rc with $line"
fi

"$WICK" bench compare "$tmp/r.json" "$tmp/r.json" --format json > "$tmp/self.json" || fail "self compare"
python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['summary']; assert s['regressions']==0 and s['improvements']==0, s" "$tmp/self.json"
# profile: the tiny preset (2 layers, 7 projections each) gives 14 matmuls + 1 head per decode step
WICK_BENCH_CACHE="$tmp/cache" "$WICK" bench profile --threads 1 --preset tiny --prompt 16 --steps 4 --format json > "$tmp/prof.json"
python3 - "$tmp/prof.json" <<'PY'
import json, sys
rep = json.load(open(sys.argv[1]))
secs = {s["name"]: s for s in rep["sections"]}
assert set(secs) == {"prefill", "decode", "training"}, secs.keys()
trn = {(r["phase"], r["op"]): r for r in secs["training"]["rows"]}
assert trn[("forward", "matmul")]["calls_per_step"] == 14, trn[("forward", "matmul")]  # base weights, forward only
assert trn[("forward", "attention")]["calls_per_step"] == 4, trn[("forward", "attention")]  # 2 layers, fwd + bwd
assert trn[("forward", "loss")]["calls_per_step"] >= 1
clk = secs["training"]["trainer_clocks"]
assert clk["forward_s"] > 0 and clk["backward_s"] > 0 and clk["optimizer_s"] > 0, clk
dec = secs["decode"]
ops = {(r["phase"], r["op"]): r for r in dec["rows"]}
assert ops[("forward", "matmul")]["calls_per_step"] == 14, ops[("forward", "matmul")]
assert ops[("forward", "logits")]["calls_per_step"] == 1
assert ops[("forward", "attention")]["calls_per_step"] == 2
assert ops[("sample", "sample")]["calls_per_step"] == 1
total = sum(r["seconds_per_step"] for r in dec["rows"])
assert abs(total - dec["seconds_per_step"]) <= 1e-6 + 1e-3 * dec["seconds_per_step"], (total, dec["seconds_per_step"])
assert abs(sum(r["share"] for r in dec["rows"]) - 1) < 1e-3
print("profile ok: decode step %.1f us" % (dec["seconds_per_step"] * 1e6))
PY
echo "bench smoke ok"
