"""Run folders: resolved config, metrics, checkpoints, written atomically.

    RUN/config.json         the resolved configuration
    RUN/metrics.json        per-seed metrics and mean +/- standard error over seeds
    RUN/seed-S/checkpoint.pt   weights + optimizer + RNG state + iteration (periodic and final)
    RUN/seed-S/model.safetensors  final weights
    RUN/seed-S/history.json training curves
    RUN/samples.png, RUN/curves.png, RUN/report.md
"""
from __future__ import annotations

import io
import json
import math
import os
import tempfile
from pathlib import Path

import torch

from .errors import VaelabError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise VaelabError(f"{path}: not found; is this a vaelab run folder?") from None
    except json.JSONDecodeError as e:
        raise VaelabError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); the file is damaged") from None


def save_checkpoint(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise VaelabError(f"{path}: no checkpoint here; train first (vaelab train ...) or check the run folder")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # torch raises many types for damaged files
        raise VaelabError(f"{path}: cannot read checkpoint ({type(e).__name__}); the file is damaged, retrain or use another run") from None
    if not isinstance(state, dict) or not {"model", "config", "x_dim"} <= set(state):
        raise VaelabError(f"{path}: not a vaelab checkpoint (missing model weights or config)")
    return state


def prepare_run_dir(out: Path, config: dict) -> Path:
    """Create the run folder; refuse one that already holds a run (nothing is overwritten)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise VaelabError(f"--out {out}: exists and is not a folder; choose another --out")
    if (out / "config.json").exists():
        old = read_json(out / "config.json")
        what = "this same run" if old == config else "a different run"
        raise VaelabError(f"--out {out}: already holds {what} (config.json exists); choose a new --out or delete the folder")
    out.mkdir(parents=True, exist_ok=True)
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
