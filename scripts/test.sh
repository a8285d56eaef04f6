#!/usr/bin/env bash
# Set up .venv, lint, and run the whole test suite. Real-data tests read MNIST / Fashion-MNIST from
# $VAELAB_TEST_DATA (default: ../shared/data beside the repository) and skip if it is absent.
# The explorer's browser test drives Debian's chromium + chromium-driver: on CI (CI set) they are
# installed here with apt-get when missing (as root, or through passwordless sudo); elsewhere the
# test is skipped when they are absent.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${CI:-}" ] && ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
.venv/bin/ruff check src tests benchmarks   # the linter configured in pyproject.toml
exec .venv/bin/python -m pytest -q "$@"
