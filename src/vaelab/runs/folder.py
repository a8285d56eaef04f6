"""The run folder's layout, its lock, and the checks that keep a user's own files safe.

    RUN/config.json         the resolved configuration
    RUN/metrics.json        per-seed metrics and mean +/- standard error over seeds
    RUN/seed-S/checkpoint.pt   weights + optimizer + RNG state + iteration (periodic and final)
    RUN/seed-S/model.safetensors  the weights the results come from (the best epoch's with --patience)
    RUN/seed-S/best.pt      the weights of the epoch with the best validation loss (runs with a validation set)
    RUN/seed-S/history.json training curves
    RUN/seed-S/events.out.tfevents.*  the same curves for TensorBoard (with the tensorboard package: tracking.py)
    RUN/samples.png, RUN/curves.png, RUN/report.md
    RUN/.lock               held (fcntl.flock) by the process writing the run; gone with it
"""
from __future__ import annotations

import contextlib
import fnmatch
import json
import math
import os
import re
from pathlib import Path

from ..errors import VaelabError, arg
from ..storage import read_json, write_json
from ..tracking import EVENT_FILES


LOCK_NAME = ".lock"


@contextlib.contextmanager
def lock_run_dir(run: Path):
    """Hold an exclusive lock on RUN/.lock for the life of the block (and of the process:
    the kernel drops a flock when its process dies, so a killed run leaves no stale lock).

    A second process that wants to write the same run folder gets a VaelabError naming the
    holder's pid instead of interleaving its files with the first one's."""
    try:
        import fcntl
    except ImportError:   # no flock (Windows): no protection, but no failure either
        yield
        return
    run = Path(run)
    try:
        run.mkdir(parents=True, exist_ok=True)
        fd = os.open(run / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise VaelabError(f"{run}: cannot create or write the run folder ({e.strerror or e}); "
                          f"check its permissions, or use a folder you can write") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise VaelabError(f"{run} is in use by another vaelab process (pid {holder}); "
                              f"wait for it to finish, or work on a copy of the run folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)   # closing the descriptor releases the lock


# What vaelab writes into a run folder (names or fnmatch patterns): replacing a run (overwrite=True)
# removes these and nothing else, and refuses a folder that holds anything more. The atomic writes'
# temporary files (.NAME.XXXXXXXX.tmp) left by a kill count as vaelab's too.
RUN_FILES = ("config.json", "metrics.json", "report.md", LOCK_NAME, "samples.png", "curves.png",
             "reconstruction.png", "denoising.png", "codes.png", "samples-5x5.png", "recon.png", "interpolate.png",
             "manifold.png", "scatter.png", "samples-*x*-seed*.png", "scores-*-seed*.csv", "scores-*-seed*.json")
SEED_FILES = ("checkpoint.pt", "best.pt", "model.safetensors", "history.json", "samples.png", "reconstruction.png",
              "denoising.png", "codes.png", EVENT_FILES)
_SEED_DIR = re.compile(r"seed-\d+")
_CONFIG_KEYS = {"model", "dataset", "seeds", "model_options"}   # a config.json vaelab wrote has all of these


def _ours(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether a file name is one vaelab writes (or the temporary file of one)."""
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(name, f".{p}.*.tmp") for p in patterns)


def foreign_files(out: Path) -> list[str]:
    """The entries of run folder `out` (and of its seed-S folders) that vaelab did not write, as paths
    relative to `out`, sorted; [] for a missing folder."""
    out = Path(out)
    if not out.is_dir():
        return []
    foreign = []
    for entry in sorted(out.iterdir()):
        if entry.is_dir() and not entry.is_symlink() and _SEED_DIR.fullmatch(entry.name):
            foreign += [f"{entry.name}/{e.name}" for e in sorted(entry.iterdir())
                        if not (e.is_file() and not e.is_symlink() and _ours(e.name, SEED_FILES))]
        elif not (entry.is_file() and not entry.is_symlink() and _ours(entry.name, RUN_FILES)):
            foreign.append(entry.name)
    return foreign


def is_run_dir(out: Path) -> bool:
    """Whether `out` holds a vaelab run: a config.json that vaelab wrote (a JSON object with a run's keys)
    and at least one other file a run writes first (the lock, metrics.json or a seed folder)."""
    out = Path(out)
    try:
        config = json.loads((out / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(config, dict) and _CONFIG_KEYS <= set(config)
            and (any((out / name).exists() for name in (LOCK_NAME, "metrics.json"))
                 or any(_SEED_DIR.fullmatch(p.name) and p.is_dir() for p in out.iterdir())))


def _listed(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _others(out: Path) -> list[str]:
    """The names in folder `out` other than what a run that has just started leaves: the lock, and the
    temporary file of a config.json whose writer was killed."""
    return sorted(p.name for p in out.iterdir()
                  if p.name != LOCK_NAME and not fnmatch.fnmatchcase(p.name, ".config.json.*.tmp"))


def check_new_run_dir(out: Path, config: dict) -> None:
    """A new run goes into a new or empty folder: refuse one that holds a run, or any file of the user's
    (nothing in it is touched). Called before the folder is locked or created."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise VaelabError(f"{arg('out', str(out))}: exists and is not a folder; choose another {arg('out')}")
    if is_run_dir(out):
        old = read_json(out / "config.json")
        what = "this same run" if old == config else "a different run"
        raise VaelabError(f"{arg('out', str(out))}: already holds {what} (config.json exists); choose a new {arg('out')} or delete the folder")
    if out.is_dir():
        others = _others(out)
        if others:
            raise VaelabError(f"{arg('out', str(out or '.'))}: the folder holds other files ({_listed(others)}) and is not a "
                              f"vaelab run; choose a new or empty folder for the run")


def check_replaceable(out: Path) -> None:
    """overwrite=True: `out` must be missing, empty, or a vaelab run folder holding nothing but vaelab's own
    files; anything else is refused before a file is touched."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise VaelabError(f"{arg('out', str(out))}: exists and is not a folder; choose another {arg('out')}")
    if not out.is_dir() or not _others(out):
        return
    if not is_run_dir(out):
        names = _others(out)
        raise VaelabError(f"{arg('out', str(out))}: the folder holds files ({_listed(names)}) and is not a vaelab run; "
                          f"overwrite replaces only a vaelab run folder: choose a new or empty folder")
    foreign = foreign_files(out)
    if foreign:
        raise VaelabError(f"{arg('out', str(out))}: the run folder also holds files vaelab did not write ({_listed(foreign)}); "
                          f"move them elsewhere first (overwrite removes only a run's own files), or choose another folder")


def clear_run_dir(out: Path) -> None:
    """Remove the files of the vaelab run in `out` (check_replaceable again first: call it with the run's
    lock held, so that a running process's folder is never cleared). The folder itself stays."""
    out = Path(out)
    check_replaceable(out)
    if not out.is_dir():
        return
    for entry in out.iterdir():
        if entry.is_dir():
            for e in entry.iterdir():
                e.unlink()
            entry.rmdir()
        elif entry.name != LOCK_NAME:   # the lock is held by this process through the new run
            entry.unlink()


def prepare_run_dir(out: Path, config: dict) -> Path:
    """Create the run folder and its config.json (check_new_run_dir first; nothing is overwritten); the
    temporary file of a config.json whose writer was killed is removed (called with the run's lock held)."""
    out = Path(out)
    check_new_run_dir(out, config)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".config.json.*.tmp"):
        stale.unlink()
    write_json(out / "config.json", config)
    return out


def mean_se(values: list[float]) -> dict:
    """Mean and standard error of the mean (sample std / sqrt(n); 0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    se = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n) if n > 1 else 0.0
    return {"mean": mean, "se": se, "n": n}


def summarise(per_seed: dict[str, dict]) -> dict:
    """Mean +/- SE over seeds for every numeric metric that all seeds report."""
    seeds = list(per_seed.values())
    keys = [k for k in seeds[0] if all(isinstance(s.get(k), (int, float)) for s in seeds)]
    return {k: mean_se([float(s[k]) for s in seeds]) for k in keys}
