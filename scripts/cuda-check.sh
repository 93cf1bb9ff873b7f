#!/usr/bin/env bash
# Compiles the CUDA build (`--features cuda`: candle's CUDA kernels and every target, tests
# included) on a machine without a GPU or a CUDA install: nvcc and the CUDA headers come from
# NVIDIA's PyPI wheels, in a venv. Nothing runs on a GPU here; on a machine with one, run
# `cargo test --release --features cuda --test llm_gpu_tests` (and `opto bench llm --device cuda:0`).
#
#   scripts/cuda-check.sh            # cargo check --features cuda --all-targets
#
# The first run downloads about 150 MB of wheels and compiles candle's kernels for sm_90 (Hopper;
# CUDA_COMPUTE_CAP overrides): about 11 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-cuda}
# cudarc 0.19 knows CUDA up to 13.4; the wheels of that release.
CUDA_RELEASE=13.4
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --no-deps "nvidia-cuda-nvcc==$CUDA_RELEASE.*" "nvidia-cuda-runtime==$CUDA_RELEASE.*" \
        "nvidia-cuda-crt==$CUDA_RELEASE.*" "nvidia-nvvm==$CUDA_RELEASE.*" "nvidia-cuda-cccl<13.3"
fi
CUDA=$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
[ -x "$CUDA/bin/nvcc" ] || { echo "no nvcc in $CUDA" >&2; exit 1; }
export PATH="$CUDA/bin:$PATH" CUDA_ROOT="$CUDA" CUDA_PATH="$CUDA" CUDA_HOME="$CUDA"
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CUDARC_CUDA_VERSION=${CUDA_RELEASE/./0}0
# Its own target folder: the feature rebuilds candle, which would otherwise evict the CPU build.
CARGO_TARGET_DIR=${CUDA_TARGET_DIR:-target-cuda} cargo check --features cuda --all-targets
echo "the CUDA build compiles (nvcc $CUDA_RELEASE, compute capability $CUDA_COMPUTE_CAP)"
