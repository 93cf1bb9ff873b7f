#!/usr/bin/env bash
# Runs `opto run numeric` on problems 0..N-1 and prints one line per problem plus a summary:
# problems solved, steps to solve, seconds per step, replies that gave no usable update.
#
#   scripts/eval-numeric.sh 10 --steps 10 --threads 2            # default model, 1 seed
#   MODEL=qwen2.5-coder-0.5b-instruct scripts/eval-numeric.sh 5 --steps 10
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10}; shift || true
MODEL=${MODEL:-qwen2.5-coder-1.5b-instruct}
OUT=${OUT:-runs/eval-numeric-$(date -u +%Y%m%d-%H%M%S)}
BIN=${BIN:-target/release/opto}
mkdir -p "$OUT"
for p in $(seq 0 $((N - 1))); do
    "$BIN" run numeric --model "$MODEL" --problem "$p" --out "$OUT/problem-$p" "$@" > "$OUT/problem-$p.log" 2>&1 || echo "problem $p: run failed (see $OUT/problem-$p.log)"
    tail -2 "$OUT/problem-$p.log" | head -1 | sed "s/^/problem $p: /"
done
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
solved, steps_to_solve, step_s, replies, unusable = 0, [], [], 0, 0
for d in sorted(os.listdir(out)):
    ev = os.path.join(out, d, "events.jsonl")
    if not os.path.isfile(ev):
        continue
    events = [json.loads(l) for l in open(ev) if l.strip()]
    hit = [e["step"] for e in events if e["success"]]
    if hit:
        solved += 1
        steps_to_solve.append(min(hit))
    for e in events:
        o = e.get("optimizer")
        if not o:
            continue
        replies += 1
        if e.get("batch_s") is not None:
            step_s.append(e["batch_s"] + e.get("forward_s", 0))
        changed = [u for u in o.get("updates", []) if u.get("outcome") == "updated"]
        if o.get("error") or not changed:
            unusable += 1
n = len([d for d in os.listdir(out) if os.path.isdir(os.path.join(out, d))])
mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
print(f"solved {solved}/{n} problems; steps to solve {steps_to_solve} (mean {mean(steps_to_solve):.1f}); "
      f"{mean(step_s):.1f} s per step; {unusable}/{replies} replies gave no usable update")
PY
