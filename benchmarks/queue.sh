#!/usr/bin/env bash
# The recorded MNIST benchmarks, one after the other (each uses both cores).
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export OMP_NUM_THREADS=2
$PY benchmarks/mnist.py --model vae --iwae-k 1 10 100 1000 --threads 2 --out runs/bench-vae
$PY benchmarks/beta_table.py --iters 10000 --threads 2 --out runs/bench-beta
$PY benchmarks/mnist.py --model gmvae --iwae-k 1 10 100 --threads 2 --out runs/bench-gmvae
$PY benchmarks/mnist.py --model ssvae --seeds 0 --name ssvae-mnist --iwae-k --threads 2 --out runs/bench-ssvae
