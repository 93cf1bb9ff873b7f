#!/usr/bin/env bash
# Speculative decoding on real optimizer prompts, side by side with llama.cpp (through
# llama-cpp-python, the venv that compare-llama-cpp.sh builds) on the same GGUF, prompts and
# reply lengths, taking turns: opto's replay bench (speculation off and on, batch 1 and 4), then
# llama.cpp decoding each prompt greedily for as many tokens as opto's reply had.
#
#   scripts/compare-speculation.sh RUN_DIR [RUN_DIR ...]
#   MODEL=qwen2.5-coder-1.5b-instruct THREADS=2 ROUNDS=2 PROMPTS=12 scripts/compare-speculation.sh runs/numeric runs/battleship
#
# The run folders are any `opto run` outputs (their events.jsonl holds each step's prompt).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-qwen2.5-coder-1.5b-instruct}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
PROMPTS=${PROMPTS:-12}
BATCH=${BATCH:-1,4}
VENV=${VENV:-.venv-llama}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/opto}
OUT=${OUT:-runs/compare-speculation-$(date -u +%Y%m%d-%H%M%S)}
[ $# -ge 1 ] || { echo "usage: $0 RUN_DIR [RUN_DIR ...]" >&2; exit 2; }
[ -x "$BIN" ] || cargo build --release -q
[ -x "$VENV/bin/python" ] || { echo "no llama-cpp-python venv at $VENV: run scripts/compare-llama-cpp.sh once" >&2; exit 2; }
GGUF=$("$BIN" models pull "$MODEL" | tail -1)
mkdir -p "$OUT"
events=()
for d in "$@"; do events+=(--events "$d"); done

llama_cpp() {
    "$VENV/bin/python" - "$GGUF" "$THREADS" "$OUT/prompts.jsonl" <<'PY'
import json, sys, time
from llama_cpp import Llama
path, threads, prompts = sys.argv[1], int(sys.argv[2]), sys.argv[3]
items = [json.loads(l) for l in open(prompts)]
probe = Llama(model_path=path, vocab_only=True, verbose=False)
encoded = [(probe.tokenize(it["prompt"].encode(), add_bos=False, special=True), it["gen"]) for it in items]
n_ctx = max(len(t) + g for t, g in encoded) + 64
llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=n_ctx, n_batch=512, verbose=False)
gen_total, decode_s, eval_s = 0, 0.0, 0.0
for tokens, gen in encoded:
    if gen == 0:
        continue
    llm.reset()
    llm.eval(tokens)
    t0 = time.perf_counter()
    for _ in range(gen):
        tok = llm.sample(temp=0.0)
        t1 = time.perf_counter()
        llm.eval([tok])
        eval_s += time.perf_counter() - t1
    decode_s += time.perf_counter() - t0
    gen_total += gen
# The decode rate with llama-cpp-python's sampling, and of llama.cpp's forward passes alone
# (the Python sampler's time taken out: the strongest baseline).
print(f"llama.cpp: {len(items)} prompts, {gen_total} tokens, decode {gen_total / decode_s:.1f} tok/s (batch 1), forward passes alone {gen_total / eval_s:.1f} tok/s")
PY
}

for r in $(seq 1 "$ROUNDS"); do
    echo "== round $r"
    "$BIN" bench replay "${events[@]}" --model "$MODEL" --threads "$THREADS" --prompts "$PROMPTS" \
        --batch "$BATCH" --rounds 1 --max-tokens "${MAX_TOKENS:-700}" --prompts-out "$OUT/prompts.jsonl" | tee -a "$OUT/opto.txt"
    llama_cpp | tee -a "$OUT/llama.txt"
done
python3 - "$OUT" <<'PY'
import re, statistics, sys
out = sys.argv[1]
opto = open(out + "/opto.txt").read().splitlines()
llama = open(out + "/llama.txt").read().splitlines()
def med(lines, pat):
    xs = [float(m.group(1)) for l in lines for m in [re.search(pat, l)] if m]
    return statistics.median(xs) if xs else float("nan")
off = med(opto, r"^batch 1: decode ([0-9.]+) tok/s without")
on = med(opto, r"^batch 1: decode [0-9.]+ tok/s without speculation, ([0-9.]+) with")
lc = med(llama, r"decode ([0-9.]+) tok/s")
lf = med(llama, r"forward passes alone ([0-9.]+) tok/s")
print(f"batch 1, median of rounds: opto with speculation {on:.1f} tok/s, without {off:.1f}; llama.cpp {lc:.1f} ({lf:.1f} in its forward passes alone)")
print(f"  with / llama.cpp {on / lc:.2f}x ({on / lf:.2f}x against its passes alone); without / llama.cpp {off / lc:.2f}x ({off / lf:.2f}x); with / without {on / off:.2f}x")
PY
