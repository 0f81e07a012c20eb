#!/usr/bin/env bash
# The GPU check of issue 16 (item 5): every training script in fp16 and bf16 on one and all GPUs, sampling and try-on
# latency, training throughput at 64/128/256 px, one JSON summary (what and how: benchmarks/gpu_check.py).
#   bash benchmarks/gpu_check.sh [--steps 300] [--output_dir gpu_check]
# Without a CUDA device it exits with status 2 and says so. PYTHON chooses the interpreter (default: python).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" benchmarks/gpu_check.py "$@"
