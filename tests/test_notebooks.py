"""The example notebooks run from top to bottom, with figures inline.

Each notebook in examples/ is executed in a fresh Jupyter kernel started with this very Python
interpreter (a kernelspec written into a temporary folder, so nothing has to be installed into
Jupyter beforehand), in a temporary working directory, with its first code cell (`ITERS = ...`)
replaced by a tiny iteration count. A cell that raises fails the test; every notebook must show at
least one image/png output. The committed notebooks carry no outputs.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = ["course_walkthrough.ipynb", "bring_your_own_networks.ipynb"]
TINY_ITERS = 30
CELL_TIMEOUT = 600   # seconds per cell
KERNEL = "vaelab-test-python"


def kernel_manager(spec_dir: Path) -> KernelManager:
    """A KernelManager whose only kernel runs ipykernel on sys.executable (the test's own venv)."""
    folder = spec_dir / KERNEL
    folder.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "vaelab test (this interpreter)", "language": "python",
            "env": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}
    (folder / "kernel.json").write_text(json.dumps(spec))
    ksm = KernelSpecManager(kernel_dirs=[str(spec_dir)], ensure_native_kernel=False)
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=ksm)


def with_tiny_iters(nb) -> None:
    """Replace the first code cell, which must set ITERS, by ITERS = TINY_ITERS."""
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert re.match(r"\s*ITERS\s*=", first.source), f"the first code cell must set ITERS, got {first.source!r}"
    first.source = f"ITERS = {TINY_ITERS}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_without_outputs(name):
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, \
                f"{name}: strip the outputs before committing (cell {cell.source[:40]!r})"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_shows_figures(name, tmp_path):
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    with_tiny_iters(nb)
    work = tmp_path / "work"
    work.mkdir()
    client = NotebookClient(nb, km=kernel_manager(tmp_path / "kernels"), timeout=CELL_TIMEOUT,
                            resources={"metadata": {"path": str(work)}}, allow_errors=False)
    client.execute()   # raises CellExecutionError naming the cell and its traceback

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "TqdmWarning" not in text and "IProgress not found" not in text, "progress bars warned in the notebook"
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, f"{name}: no figure was shown inline (no image/png output)"
    # the kernel was this interpreter, and the run folders went into the temporary working directory
    assert (work / "runs").is_dir(), f"{name}: wrote no run folder under runs/ of its working directory"
