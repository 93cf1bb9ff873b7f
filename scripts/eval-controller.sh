#!/usr/bin/env bash
# Runs `opto run controller-<variant>` for each variant and memory size given, 3 seeds in one
# batch, under /usr/bin/time -v, and prints one line per run: held-out success before → after
# (per seed and summed), steps to solve, seconds per step (LLM batch), peak RSS.
#
#   scripts/eval-controller.sh "reach-gains reach-code" "0 5" --steps 20 --threads 2
#   MODEL=qwen2.5-coder-0.5b-instruct scripts/eval-controller.sh reach-gains 5 --steps 20 --threads 2
set -euo pipefail
cd "$(dirname "$0")/.."
VARIANTS=${1:-"reach-gains reach-code"}; shift || true
MEMORIES=${1:-"0 5"}; shift || true
MODEL=${MODEL:-qwen2.5-coder-1.5b-instruct}
SEEDS=${SEEDS:-3}
OUT=${OUT:-runs/eval-controller-$(date -u +%Y%m%d-%H%M%S)}
BIN=${BIN:-target/release/opto}
mkdir -p "$OUT"
for v in $VARIANTS; do
    for m in $MEMORIES; do
        dir="$OUT/$v-m$m-$MODEL"
        /usr/bin/time -v "$BIN" run "controller-$v" --model "$MODEL" --seeds "$SEEDS" --memory "$m" --out "$dir" "$@" > "$dir.log" 2>&1 || echo "$v memory $m: run failed (see $dir.log)"
        python3 - "$dir" "$dir.log" "$v" "$m" "$MODEL" <<'PY'
import json, os, re, sys
d, log, v, m, model = sys.argv[1:]
try:
    held = json.load(open(os.path.join(d, "held_out.json")))
except OSError:
    print(f"{v} memory {m} {model}: no held_out.json"); sys.exit(0)
events = [json.loads(l) for l in open(os.path.join(d, "events.jsonl")) if l.strip()]
batch = {}
for e in events:
    if e.get("batch_s") is not None:
        batch[e["step"]] = e["batch_s"]
solved = {}
for e in events:
    if e["success"] and e["kind"] == "step":
        solved.setdefault(e["seed"], e["step"])
text = open(log).read()
rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
rss = f"{int(rss.group(1)) / 1024:.0f} MiB" if rss else "?"
before = sum(h["before"]["successes"] for h in held); after = sum(h["after"]["successes"] for h in held)
best = sum(h["best"]["successes"] for h in held); trials = sum(h["after"]["trials"] for h in held)
per_seed = " ".join(f"{h['before']['successes']}->{h['after']['successes']}" for h in held)
sps = sum(batch.values()) / len(batch) if batch else 0.0
print(f"{v} memory {m} {model}: held-out {before}/{trials} -> {after}/{trials} ({100*after/trials:.0f} %; per seed {per_seed}; best-score params {best}/{trials}); "
      f"solved on training at steps {[solved.get(h['seed']) for h in held]}; {sps:.1f} s per step over {len(batch)} steps; peak RSS {rss}")
PY
    done
done
