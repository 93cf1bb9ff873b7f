#!/usr/bin/env bash
# A real OpenAI-compatible server behind `--remote` (not CI): llama.cpp's server from
# llama-cpp-python[server] (PyPI, built from source in a venv the way compare-llama-cpp.sh builds
# it) on the same GGUF as the local engine, on 127.0.0.1. Runs `opto run numeric` for a few steps
# against it and then with the local engine, and compares: replies parsed and their format (the
# server gets each request's reply schema as `response_format`), usable updates, tokens, seconds.
#
#   scripts/remote-llama-server.sh [MODEL] [STEPS] [PROBLEM]
#   scripts/remote-llama-server.sh qwen2.5-coder-0.5b-instruct 5 0
#
# The first run builds llama-cpp-python (10+ minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-qwen2.5-coder-1.5b-instruct}
STEPS=${2:-5}
PROBLEM=${3:-0}
THREADS=${THREADS:-2}
PORT=${PORT:-8765}
VENV=${VENV:-.venv-llama-server}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/opto}
OUT=${OUT:-runs/remote-vs-local-$(date -u +%Y%m%d-%H%M%S)}

[ -x "$BIN" ] || cargo build --release -q
GGUF=$("$BIN" models pull "$MODEL" | tail -1)
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import llama_cpp.server' 2>/dev/null; then
    python3 -m venv "$VENV"
    CMAKE_ARGS="-DGGML_NATIVE=ON" "$VENV/bin/pip" install -q 'llama-cpp-python[server]'
fi
mkdir -p "$OUT"
"$VENV/bin/python" -m llama_cpp.server --model "$GGUF" --host 127.0.0.1 --port "$PORT" \
    --n_threads "$THREADS" --n_ctx 8192 > "$OUT/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
    curl -sf "http://127.0.0.1:$PORT/v1/models" > /dev/null && break
    kill -0 $SERVER 2>/dev/null || { echo "the server died: $OUT/server.log"; exit 1; }
    sleep 1
done

COMMON=(--problem "$PROBLEM" --steps "$STEPS" --no-stop-on-success)
echo "remote: llama.cpp server on $GGUF"
/usr/bin/time -f "%e s wall" "$BIN" run numeric --remote "http://127.0.0.1:$PORT/v1" --remote-model "$MODEL" "${COMMON[@]}" --out "$OUT/remote" 2>&1 | tail -3
echo "local: opto's engine on the same file"
/usr/bin/time -f "%e s wall" "$BIN" run numeric --model "$GGUF" --threads "$THREADS" "${COMMON[@]}" --out "$OUT/local" 2>&1 | tail -3

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
print(f"{'':8} {'replies':>7} {'strict JSON':>11} {'usable':>6} {'errors':>6} {'gen tok/reply':>13} {'s/step':>7}")
for side in ("remote", "local"):
    events = [json.loads(l) for l in open(os.path.join(out, side, "events.jsonl")) if l.strip()]
    steps = [e for e in events if e["kind"] == "step" and e.get("optimizer")]
    opt = [e["optimizer"] for e in steps]
    replies = [o for o in opt if o.get("reply") is not None]
    strict = 0
    for o in replies:
        try:
            json.loads(o["reply"]); strict += 1
        except Exception:
            pass
    usable = sum(1 for o in opt if any(u.get("outcome") == "updated" for u in o.get("updates", [])))
    errors = sum(1 for o in opt if o.get("error"))
    gen = [o.get("usage", {}).get("generated_tokens", 0) for o in replies]
    secs = [e["batch_s"] for e in steps if e.get("batch_s") is not None]
    print(f"{side:8} {len(replies):7} {strict:11} {usable:6} {errors:6} {sum(gen) / max(len(gen), 1):13.1f} {sum(secs) / max(len(secs), 1):7.2f}")
PY
