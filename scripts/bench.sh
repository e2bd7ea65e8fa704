#!/usr/bin/env bash
# bench.sh — `make bench`: a full `wick bench` run, written to BUILD/bench-results.json, and
# its report against the project's claims (bench/claims.json) and, when a baseline is given,
# against that run: BENCH_BASE=path/to/old-results.json make bench.
# Usage: bash scripts/bench.sh BUILD_DIR [extra wick bench options, e.g. --suite lora]
set -euo pipefail
BUILD="${1:-build}"
shift || true
out="$BUILD/bench-results.json"
report="$BUILD/bench-report.md"
"$BUILD/wick" bench --json "$out" "$@"
args=("$out")
if [ -n "${BENCH_BASE:-}" ]; then args=("$BENCH_BASE" "$out"); fi
rc=0
"$BUILD/wick" bench compare "${args[@]}" --budgets bench/claims.json --out "$report" || rc=$?
echo "results: $out"
echo "report:  $report"
sed -n '/^## Summary/,/^## Claims/p' "$report" | sed '$d'
exit $rc
