#!/usr/bin/env bash
# Set up .venv and run the whole test suite. Real-data tests read MNIST / Fashion-MNIST from
# $VAELAB_TEST_DATA (default: ../shared/data beside the repository) and skip if it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec .venv/bin/python -m pytest -q "$@"
