#!/usr/bin/env bash
# Soak run (not CI): many optimizer steps with a small model, several seeds in one batch, the
# prefix cache, the sandbox worker (battleship runs every candidate there), and one crash in the
# middle (kill -9, then --resume). Every SAMPLE steps it records the resident memory and the open
# files of the opto process and of its sandbox workers; both must stay flat.
#
#   scripts/soak.sh                      # 1000 steps, battleship, 3 seeds, smollm2-135m-instruct
#   STEPS=200 SEEDS=2 scripts/soak.sh    # a shorter soak
#
# Output: $OUT/samples.tsv (step, opto RSS MiB, opto fds, workers RSS MiB, worker fds, workers)
# and a summary line per series (first sample after warm-up, last, max).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-1000}
SEEDS=${SEEDS:-3}
TASK=${TASK:-battleship}
MODEL=${MODEL:-smollm2-135m-instruct}
MAX_TOKENS=${MAX_TOKENS:-256}
THREADS=${THREADS:-2}
SAMPLE=${SAMPLE:-50}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/opto}
OUT=${OUT:-runs/soak-$(date -u +%Y%m%d-%H%M%S)}

[ -x "$BIN" ] || cargo build --release -q
[ -x "$(dirname "$BIN")/opto-sandbox" ] || cargo build --release -q --bin opto-sandbox
mkdir -p "$OUT"
RUN="$OUT/run"
SAMPLES="$OUT/samples.tsv"
printf 'step\topto_rss_mib\topto_fds\tworkers_rss_mib\tworkers_fds\tworkers\n' > "$SAMPLES"

next_step() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["next_step"])' "$RUN/checkpoint.json" 2>/dev/null || echo 0; }
rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
sample() {
    local pid=$1 step=$2 wrss=0 wfds=0 n=0
    for w in $(pgrep -P "$pid" 2>/dev/null || true); do
        wrss=$(python3 -c "print($wrss + $(rss_mib "$w"))"); wfds=$((wfds + $(fds "$w"))); n=$((n + 1))
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$step" "$(rss_mib "$pid")" "$(fds "$pid")" "$wrss" "$wfds" "$n" >> "$SAMPLES"
}
# Samples the run in process $1 every SAMPLE steps until it ends or reaches step $2 (then kill -9).
watch_run() {
    local pid=$1 stop_at=$2 last=-1 step
    while kill -0 "$pid" 2>/dev/null; do
        step=$(next_step)
        if [ "$step" -ne "$last" ] && [ $((step % SAMPLE)) -eq 0 ] && [ "$step" -gt 0 ]; then
            sample "$pid" "$step"; last=$step
        fi
        if [ "$stop_at" -gt 0 ] && [ "$step" -ge "$stop_at" ]; then
            echo "step $step: kill -9 $pid (a crash in the middle)"
            kill -9 "$pid"; wait "$pid" 2>/dev/null || true
            return
        fi
        sleep 0.5
    done
    wait "$pid" || { echo "the run failed: see $OUT/run*.log"; exit 1; }
}

COMMON=(--model "$MODEL" --seeds "$SEEDS" --threads "$THREADS" --max-tokens "$MAX_TOKENS" --temperature 0.7)
"$BIN" run "$TASK" "${COMMON[@]}" --steps "$STEPS" --no-stop-on-success --out "$RUN" > "$OUT/run1.log" 2>&1 &
watch_run $! $((STEPS / 2))
"$BIN" run "$TASK" --resume "$RUN" --threads "$THREADS" > "$OUT/run2.log" 2>&1 &
watch_run $! 0
tail -2 "$OUT/run2.log"

python3 - "$SAMPLES" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
if len(rows) < 3:
    sys.exit(f"only {len(rows)} samples")
print("step " + " ".join(r["step"] for r in rows))
for key in ("opto_rss_mib", "opto_fds", "workers_rss_mib", "workers_fds"):
    xs = [float(r[key]) for r in rows]
    # the first sample of each process is warm-up (the prefix cache fills); compare after it
    print(f"{key}: {' '.join(f'{x:g}' for x in xs)}  (second {xs[1]:g}, last {xs[-1]:g}, max {max(xs):g})")
PY
