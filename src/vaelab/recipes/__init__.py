"""`vaelab reproduce`: named recipes that run one course experiment end to end and write a report.

    run_recipe("vae-mnist", quick=True)  ->  runs/reproduce-vae-mnist-quick-TIMESTAMP/report.{md,html}

A recipe (see experiments.RECIPES and pca.RECIPES) is a description, a function Context -> report sections, and
the data sets it needs (full and quick form). The report puts our numbers next to the published or
reference values; report.html is self-contained (figures embedded).
"""
from __future__ import annotations

import platform
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path

import torch

from ..data import find_dataset, load_dataset, reads_no_files
from ..errors import VaelabError, arg
from ..machine import set_threads
from ..storage import read_json, write_json
from .experiments import RECIPES as COURSE_RECIPES, Context, Recipe
from .pca import RECIPES as PCA_RECIPES
from .report import Figure, Section, Table, write_report

RECIPES = {**COURSE_RECIPES, **PCA_RECIPES}

__all__ = ["RECIPES", "Recipe", "Context", "Section", "Table", "Figure", "run_recipe", "check_data", "write_report"]

QUICK_NOTE = ("**Quick form**: tiny iteration counts{data}, to show that the experiment runs end to end in about a "
              "minute. Its numbers are **not comparable** to the reference values, which come from the full form "
              "(full data sets, full training).")
MNIST_5K_NOTE = " on small data (the embedded mnist-5k set, 4,000 training / 1,000 test images, instead of full MNIST)"


RECIPE_FILE = "recipe.json"   # which recipe (and form) a folder holds: what --resume checks


def _check_resumable(out: Path, marker: dict) -> None:
    """`out` must hold the same recipe, in the same form, for resume=True."""
    if not (out / RECIPE_FILE).is_file():
        raise VaelabError(f"{arg('out', str(out))}: holds no recipe ({RECIPE_FILE} missing); {arg('resume')} continues "
                          f"a folder `vaelab reproduce` wrote: give that folder, or leave {arg('resume')} out")
    saved = read_json(out / RECIPE_FILE)
    if saved != marker:
        form = lambda m: f"{m.get('recipe')} ({'quick' if m.get('quick') else 'full'} form)"  # noqa: E731
        raise VaelabError(f"{arg('out', str(out))}: holds {form(saved)}, not {form(marker)}; continue it with the "
                          f"same recipe and form, or choose a new {arg('out')}")


def check_data(name: str, quick: bool = False, data_dir=None) -> None:
    """Fail before training when a data set the recipe needs cannot be found (or downloaded)."""
    recipe = RECIPES[name]
    for ds in recipe.quick_data if quick else recipe.data:
        if reads_no_files(ds) or find_dataset(ds, data_dir) is not None:
            continue
        try:
            load_dataset(ds, data_dir=data_dir)   # downloads when allowed, else explains where it looked
        except VaelabError as e:
            form = f"vaelab reproduce {name}{' --quick' if quick else ''}"
            alternative = ("" if quick or set(recipe.quick_data) == set(recipe.data) else
                           f"; or run `vaelab reproduce {name} --quick`, which needs only "
                           f"{', '.join(recipe.quick_data)}")
            raise VaelabError(f"`{form}` needs the {ds} data set, which is not available{alternative}.\n{e.message}") from None


def default_out(name: str, quick: bool) -> Path:
    return Path("runs") / f"reproduce-{name}{'-quick' if quick else ''}-{datetime.now():%Y%m%d-%H%M%S}"


def run_recipe(name: str, quick: bool = False, data_dir=None, out=None, threads=None, progress: bool = True,
               command: str | None = None, options: dict | None = None, resume: bool = False) -> Path:
    """Run recipe `name` into folder `out` (default runs/reproduce-NAME-...); returns the folder.

    `options`: recipe-specific overrides for the Python API (e.g. anomaly-mnist: {"classes": [0, 1]}).
    resume=True: continue the same recipe (and form) in `out`, interrupted earlier: its finished runs are kept,
    an interrupted one continues from its last checkpoints, the rest are trained, the report written."""
    if name not in RECIPES:
        raise VaelabError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)} (see `vaelab reproduce --list`)")
    if resume and out is None:
        raise VaelabError(f"{arg('resume')} continues the recipe in the folder it wrote: give {arg('out')} too")
    out = Path(out) if out is not None else default_out(name, quick)
    marker = {"recipe": name, "quick": quick}
    if resume:
        _check_resumable(out, marker)
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise VaelabError(f"{arg('out', str(out))}: already exists and is not an empty folder; choose a new {arg('out')}"
                          f" (or add {arg('resume')} to continue the recipe that wrote it)")
    check_data(name, quick, data_dir)
    set_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / RECIPE_FILE, marker)
    recipe = RECIPES[name]
    ctx = Context(name=name, out=out, quick=quick, data_dir=data_dir, threads=threads, progress=progress,
                  options=dict(options or {}), resume=resume)
    t0 = time.perf_counter()
    sections = recipe.function(ctx)
    wall = time.perf_counter() - t0
    command = command or "vaelab reproduce " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    intro = [
        f"{recipe.description}.",
        "",
        *([QUICK_NOTE.format(data=MNIST_5K_NOTE if "mnist-5k" in recipe.quick_data else ""), ""] if quick else []),
        f"- recipe: `{name}` ({'quick' if quick else 'full'} form); command: `{command}`",
        f"- data: {', '.join(recipe.quick_data if quick else recipe.data)}",
        f"- machine: {platform.system()} {platform.machine()}, {torch.get_num_threads()} thread(s), torch "
        f"{torch.__version__}; {datetime.now():%Y-%m-%d %H:%M}; wall time {wall:.0f} s",
        "- every run is an ordinary vaelab run folder inside this folder (`vaelab eval` / `plot` / `explore` work on it)",
    ]
    title = f"vaelab reproduce {name}" + (" (quick form)" if quick else "")
    write_report(out, title, intro, sections)
    return out
