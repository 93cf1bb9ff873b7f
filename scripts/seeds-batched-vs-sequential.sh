#!/usr/bin/env bash
# Wall time of K seeds stepped together (one LLM batch per step) against the same K seeds run
# one after another, on the same problem and step count (no early stop, so the work is equal).
#
#   scripts/seeds-batched-vs-sequential.sh [K] [STEPS] [PROBLEM] [extra opto run flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
K=${1:-4}; STEPS=${2:-3}; PROBLEM=${3:-1}; shift 3 || true
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/opto}
OUT=${OUT:-runs/batched-vs-sequential-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
t0=$(date +%s.%N)
"$BIN" run numeric --problem "$PROBLEM" --seeds "$K" --steps "$STEPS" --no-stop-on-success --out "$OUT/batched" "$@" > "$OUT/batched.log" 2>&1
t1=$(date +%s.%N)
for s in $(seq 0 $((K - 1))); do
    "$BIN" run numeric --problem "$PROBLEM" --seeds 1 --first-seed "$s" --steps "$STEPS" --no-stop-on-success --out "$OUT/seed-$s" "$@" > "$OUT/seed-$s.log" 2>&1
done
t2=$(date +%s.%N)
python3 - "$t0" "$t1" "$t2" "$K" "$STEPS" <<'PY'
import sys
t0, t1, t2, k, steps = map(float, sys.argv[1:])
b, s = t1 - t0, t2 - t1
print(f"{int(k)} seeds x {int(steps)} steps: batched {b:.1f} s, sequential {s:.1f} s, sequential/batched = {s / b:.2f}x")
PY
