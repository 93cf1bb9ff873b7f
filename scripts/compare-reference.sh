#!/usr/bin/env bash
# Side by side with the reference Trace (pip package `trace-opt`) on the anchor workload:
# y = 0.0; y = y + p[i % K] N times; backward("make it bigger"); summarize + prompt.
# Prints the reference's line, opto's line and the ratio for each size, in one run.
#
#   scripts/compare-reference.sh            # sizes 1000:10 2000:50
#   scripts/compare-reference.sh 5000:10    # the reference needs minutes here
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("${@:-1000:10 2000:50}")
VENV=${VENV:-.venv-ref}
ANCHOR=${ANCHOR:-../shared/anchors/trace_graph_bench.py}

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q trace-opt
fi
cargo build --release -q
for size in ${SIZES[@]}; do
    n=${size%%:*}; k=${size##*:}
    ref=$("$VENV/bin/python" "$ANCHOR" "$size" 2>/dev/null | tail -1)
    ours=$(target/release/opto bench graph --ops "$n" --params "$k")
    echo "reference: $ref"
    echo "opto:      $ours"
    python3 - "$ref" "$ours" <<'PY'
import sys, re
def total(line):
    b = float(re.search(r"backward_s=([0-9.e-]+)", line).group(1))
    s = float(re.search(r"summarize_prompt_s=([0-9.e-]+)", line).group(1))
    return b + s
r, o = total(sys.argv[1]), total(sys.argv[2])
print(f"ratio (reference / opto, backward + summarize + prompt): {r / max(o, 1e-9):.0f}x")
PY
done
