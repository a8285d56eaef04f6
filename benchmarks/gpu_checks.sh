#!/usr/bin/env bash
# Every GPU check in one go, for a machine with a CUDA GPU, nvidia-smi, and PyTorch, pytest and vaelab's
# other dependencies already installed (vaelab runs from src/, nothing is installed here): the GPU tests, training speed (eager / bf16 / compiled / CUDA graph), the
# default VAE run end to end with --cuda-graph, where the step's time goes (gpu_step.py), and IWAE-5000 on
# the full test set against its floor. Results go to OUT_DIR only; copy what should be kept into
# benchmarks/results/ by hand. The steps' own limits add up to 20 minutes (most take far less).
#
#     bash benchmarks/gpu_checks.sh DATA_DIR OUT_DIR      # DATA_DIR holds mnist/*.gz
#
# Each step has its own time limit, so one that hangs still leaves the others' results; logs, results
# files and the run's metrics go to OUT_DIR/gpu-checks.tar.gz, written again after every step.
set -uo pipefail
cd "$(dirname "$0")/.."
DATA=$(cd "${1:?give the data folder (holding mnist/)}" && pwd)
OUT=$(mkdir -p "${2:?give an output folder}" && cd "$2" && pwd)
WORK=$(mktemp -d)/gpu-checks
mkdir -p "$WORK/results"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 VAELAB_TEST_DATA=$DATA
PY=${PYTHON:-python3}

step() {   # step NAME SECONDS COMMAND...: run, log, time
    local name=$1 limit=$2 t0 rc
    shift 2
    echo "=== $name: $*"
    t0=$(date +%s)
    timeout "$limit" "$@" > "$WORK/$name.log" 2>&1
    rc=$?
    tail -n 25 "$WORK/$name.log"
    echo "=== $name: exit $rc after $(( $(date +%s) - t0 )) s" | tee -a "$WORK/steps.txt"
    rm -f "$WORK"/*/seed-*/*.pt
    tar -czf "$OUT/gpu-checks.tar.gz" -C "$WORK/.." gpu-checks
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  lscpu | grep -m1 "Model name"
  $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"; } 2>&1 | tee "$WORK/machine.txt"

step tests 240 $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py
SPEED=(benchmarks/speed.py --device cuda --threads 1 --iters 500 --warmup 100 --repeats 3 --data-dir "$DATA"
       --results "$WORK/results")
step train-default-graph 120 $PY -m vaelab train vae --dataset mnist --data-dir "$DATA" --device cuda \
    --cuda-graph --out "$WORK/vae-gpu-graph" --no-progress
step speed-graph 90 $PY "${SPEED[@]}" --models vae gmvae ssvae cvae ae --cuda-graph
step speed-eager 150 $PY "${SPEED[@]}" --models vae gmvae ssvae cvae ae
step speed-bf16 60 $PY "${SPEED[@]}" --models vae --precision bf16
step speed-compiled-bf16 150 $PY "${SPEED[@]}" --models vae --precision bf16 --compile
step gpu-step 120 $PY benchmarks/gpu_step.py --data-dir "$DATA" --results "$WORK/results"
step iwae-floor 120 $PY benchmarks/iwae_floor.py --device cuda --images 10000 --k 5000 --repeats 3 --results "$WORK/results"
step iwae-floor-small-passes 120 $PY benchmarks/iwae_floor.py --device cuda --images 1000 --k 5000 --repeats 1 --rows 1000 \
    --results "$WORK/results"
echo "wrote $OUT/gpu-checks.tar.gz"
