#!/usr/bin/env bash
# Second batch of recorded benchmarks, in two lanes of one thread each (so the two cores are
# never oversubscribed): `bash benchmarks/queue2.sh a` and `bash benchmarks/queue2.sh b` side by side.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
D=../shared/data
export OMP_NUM_THREADS=1
if [ "${1:-a}" = a ]; then
  $PY benchmarks/swiss_roll.py --iters 5000 --threads 1 --out runs/bench-swiss-roll
  $PY benchmarks/mnist.py --model ssvae --set gw=0 --name ssvae-gw0-mnist --iwae-k --threads 1 --out runs/bench-ssvae-gw0
  $PY benchmarks/one_class.py --dataset fashion-mnist --model ae --iters 2000 --threads 1 --out runs/bench-oc-fashion-ae
else
  .venv/bin/vaelab reproduce cvae-fashion --data-dir $D --out runs/rep-cvae --threads 1 --no-progress
fi
