#!/usr/bin/env bash
# Side by side with llama.cpp (through llama-cpp-python, built from source in a venv) on the same
# GGUF file and thread count, alternating runs: prefill tok/s and single-sequence decode tok/s.
#
#   scripts/compare-llama-cpp.sh [MODEL] [THREADS] [PROMPT_TOKENS] [GEN] [ROUNDS]
#   scripts/compare-llama-cpp.sh qwen2.5-coder-1.5b-instruct 2 1200 200 2
#
# The first run builds llama-cpp-python (about 10 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-qwen2.5-coder-1.5b-instruct}
THREADS=${2:-2}
P=${3:-1200}
G=${4:-200}
ROUNDS=${5:-2}
VENV=${VENV:-.venv-llama}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/opto}

[ -x "$BIN" ] || cargo build --release -q
GGUF=$("$BIN" models pull "$MODEL" | tail -1)
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    CMAKE_ARGS="-DGGML_NATIVE=ON" "$VENV/bin/pip" install -q llama-cpp-python
fi

llama_cpp() {
    "$VENV/bin/python" - "$GGUF" "$THREADS" "$P" "$G" <<'PY'
import sys, time
from llama_cpp import Llama
path, threads, p, g = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=p + g + 64, n_batch=512, verbose=False)
words = "the optimizer reads feedback and updates each parameter with care numbers matter keep answers short ".split()
text, i = "You improve programs. Background notes follow.\n", 0
while len(llm.tokenize(text.encode())) < p:
    text += words[i % len(words)] + " "; i += 1
tokens = llm.tokenize(text.encode())[:p]
llm.reset()
t0 = time.perf_counter(); llm.eval(tokens); t1 = time.perf_counter()
# Greedy decode of exactly g tokens (end-of-turn ignored, as opto's bench does).
for n in range(1, g + 1):
    tok = llm.sample(temp=0.0)
    llm.eval([tok])
t2 = time.perf_counter()
print(f"llama.cpp prefill {len(tokens) / (t1 - t0):.1f} tok/s decode {n / (t2 - t1):.1f} tok/s")
PY
}

opto() {
    "$BIN" bench llm --model "$GGUF" --prompt-tokens "$P" --gen "$G" --batch 1,4 --threads "$THREADS" \
        | awk '/^prefill/ {p=$2} /^decode b=1 +[0-9]/ {d=$3} /^decode b=4 +[0-9]/ {d4=$3} /^TTFT/ {t=$0} /^RSS/ {r=$0}
               END {printf "opto      prefill %s tok/s decode %s tok/s (b=4: %s tok/s total)\n  %s\n  %s\n", p, d, d4, t, r}'
}

for round in $(seq 1 "$ROUNDS"); do
    echo "round $round"
    llama_cpp | tee -a /tmp/compare-llama.$$
    opto | tee -a /tmp/compare-llama.$$
done
python3 - /tmp/compare-llama.$$ <<'PY'
import re, statistics, sys
lines = open(sys.argv[1]).read().splitlines()
def med(prefix, key):
    xs = [float(re.search(key + r" ([0-9.]+)", l).group(1)) for l in lines if l.startswith(prefix)]
    return statistics.median(xs)
for key in ("prefill", "decode"):
    o, l = med("opto", key), med("llama.cpp", key)
    print(f"{key}: opto {o:.1f} tok/s, llama.cpp {l:.1f} tok/s, ratio {o / l:.2f}x")
PY
rm -f /tmp/compare-llama.$$
