#!/usr/bin/env bash
# Second batch of recorded benchmarks (session 2), one after the other.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
D=../shared/data
OMP_NUM_THREADS=1 $PY benchmarks/swiss_roll.py --iters 5000 --threads 1 --out runs/bench-swiss-roll
OMP_NUM_THREADS=2 .venv/bin/vaelab reproduce cvae-fashion --data-dir $D --out runs/rep-cvae --threads 2 --no-progress
OMP_NUM_THREADS=2 $PY benchmarks/mnist.py --model ssvae --set gw=0 --name ssvae-gw0-mnist --iwae-k --threads 2 --out runs/bench-ssvae-gw0
OMP_NUM_THREADS=1 $PY benchmarks/one_class.py --dataset fashion-mnist --model ae --iters 2000 --threads 1 --out runs/bench-oc-fashion-ae
