#!/usr/bin/env bash
# The likelihood race as recorded (benchmarks/results/likelihood-race.md), one configuration after the
# other on a quiet machine (two threads each; nothing else running). MIN is the issue's 15 minutes
# scaled by this CPU's matrix-product rate (12 at about 165-170 GFLOP/s at two threads against the 135
# the budgets were set on; 10.5 at about 190); pass another as $1. Every configuration is run at the
# 15-minute budget first; the best is then continued to 30 and 60 (the same run, resumed with a longer
# --time-budget): CONTINUE names it ($2).
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
MIN=${1:-12}
CONTINUE=${2:-iwae5-z32-warmup-exp}
for config in iwae5-z32-warmup-exp hvae-iwae5-warmup-exp vamp-z40-warmup-exp vae-z32 vae-z32-warmup-exp vae; do
  $PY benchmarks/likelihood_race.py --config "$config" --minutes "$MIN" --nominal 15 --seeds 0 --k 5000 --no-progress
done
$PY benchmarks/likelihood_race.py --config "$CONTINUE" --minutes "$(echo "2 * $MIN" | bc)" "$(echo "4 * $MIN" | bc)" \
  --nominal 30 60 --seeds 0 --k 5000 --no-progress
for model in vae vamp hvae; do
  $PY benchmarks/iwae_floor.py --model "$model" --images 200 --k 5000 --threads 2
done
