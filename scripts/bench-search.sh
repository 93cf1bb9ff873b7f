#!/usr/bin/env bash
# The search benchmark: the same problems, one seed each, under greedy (the paper's one
# candidate per step), each search, and the two baselines at the same evaluations per step,
# taking turns in one run; then one summary line per configuration (scripts/search_report.py).
#
#   scripts/bench-search.sh                      # numeric problems 0-29, 10 steps, K = 6
#   PROBLEMS=100-129 scripts/bench-search.sh     # the problems to tune on (not the reported ones)
#   MODEL=qwen2.5-coder-0.5b-instruct ONLY="best-of" scripts/bench-search.sh
#   TASK=numeric-easy scripts/bench-search.sh
#
# Each configuration runs all problems as one batch (`--problems`), so a step's model requests
# of every problem share one generate call and the system prompt in the prefix cache.
set -euo pipefail
cd "$(dirname "$0")/.."
TASK=${TASK:-numeric}
PROBLEMS=${PROBLEMS:-0-29}
STEPS=${STEPS:-10}
K=${K:-6}
MODEL=${MODEL:-qwen2.5-coder-1.5b-instruct}
THREADS=${THREADS:-2}
BIN=${BIN:-target/release/opto}
OUT=${OUT:-runs/bench-search-$(date -u +%Y%m%d-%H%M%S)}
ONLY=${ONLY:-}
mkdir -p "$OUT"
configs=(
    "random|--search random:$K"
    "section|--search section:$K"
    "greedy|--search greedy"
    "greedy-no-guard|--search greedy --no-line-guard"
    "best-of-model|--search best-of:$K --no-numeric-proposals"
    "best-of|--search best-of:$K"
    "priority|--search priority:$K"
    "beam|--search beam:2:$K"
)
for c in "${configs[@]}"; do
    name=${c%%|*}; flags=${c#*|}
    if [[ -n "$ONLY" && ! " $ONLY " =~ " $name " ]]; then continue; fi
    # shellcheck disable=SC2086
    /usr/bin/time -v "$BIN" run "$TASK" --problems "$PROBLEMS" --steps "$STEPS" --model "$MODEL" --threads "$THREADS" $flags --out "$OUT/$name" > "$OUT/$name.log" 2>&1 \
        || echo "$name: run failed (see $OUT/$name.log)"
    grep -E "Maximum resident" "$OUT/$name.log" | sed "s/^\s*/$name: /" || true
done
python3 scripts/search_report.py "$OUT"/*/ | tee "$OUT/summary.txt"
