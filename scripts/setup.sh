#!/usr/bin/env bash
# Create .venv and install vaelab with its test tools. Torch first, pinned to 2.13.0: on a
# CPU machine that carries a local 2.13.0 CPU build this installs in seconds, and nothing
# later pulls another torch (the package accepts any 2.x from 2.2 on).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/pip install -q "torch==2.13.0"
.venv/bin/pip install -q -e ".[test]"
.venv/bin/python -c "import vaelab, torch; print(f'vaelab {vaelab.__version__} ready (torch {torch.__version__}) in .venv')"
