#!/usr/bin/env bash
# Second batch of recorded benchmarks. `bash benchmarks/queue2.sh a`: three one-thread benchmarks
# (run it beside another one-thread job, or alone); `bash benchmarks/queue2.sh b`: the two recipe
# reports recorded under benchmarks/results/ (two threads: run it alone).
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
D=../shared/data
if [ "${1:-a}" = a ]; then
  export OMP_NUM_THREADS=1
  $PY benchmarks/swiss_roll.py --iters 5000 --threads 1 --out runs/bench-swiss-roll
  $PY benchmarks/mnist.py --model ssvae --set gw=0 --name ssvae-gw0-mnist --iwae-k --threads 1 --out runs/bench-ssvae-gw0
  $PY benchmarks/one_class.py --dataset fashion-mnist --model ae --iters 2000 --threads 1 --out runs/bench-oc-fashion-ae
else
  export OMP_NUM_THREADS=2
  .venv/bin/vaelab reproduce convvae-mnist-bce-vs-mse --data-dir $D --out runs/rep-convvae --threads 2 --no-progress
  .venv/bin/vaelab reproduce cvae-fashion --data-dir $D --out runs/rep-cvae --threads 2 --no-progress
fi
