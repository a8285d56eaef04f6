"""Files on disk, written so that a crash never leaves half a file: atomic writes, JSON, checkpoints.

The files of run folders and recipe reports go through atomic_write_bytes: a temporary file in the same
folder, fsynced, then renamed over the target.
"""
from __future__ import annotations

import errno
import io
import json
import math
import os
import stat
import tempfile
import warnings
from pathlib import Path

import torch

from .errors import VaelabError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`.

    The file gets the permissions open() would give it (0o666 less the umask; an existing file's
    own mode when it is replaced), not mkstemp's 0o600. A failed write (disk full, no permission,
    read-only file system) leaves any previous file untouched and is a one-line VaelabError."""
    path = Path(path)
    if path.is_dir():
        raise VaelabError(f"{path} is a folder; remove it or choose another path")
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode) if path.is_file() else 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _write_error(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _write_error(path, e) from None
        raise
    _fsync_dir(path.parent)   # make the rename itself durable


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (os.umask can only swap it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _write_error(path: Path, e: OSError) -> VaelabError:
    """A one-line VaelabError for a failed atomic write of `path`: the reason and what to do."""
    previous = f"; the previous {path.name} is intact" if path.exists() else ""
    reason = e.strerror or str(e) or type(e).__name__
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free disk space (or raise the quota) and run again"
    elif e.errno in (errno.EACCES, errno.EPERM):
        fix = f"check that you can write to {path.parent}, or choose another folder"
    elif e.errno == errno.EROFS:
        fix = "the file system is read-only; choose a folder on a writable one"
    elif e.errno == errno.ENOENT:
        fix = f"the folder {path.parent} does not exist (or was removed); create it or choose another path"
    else:
        fix = "check the folder and the disk, then run again"
    return VaelabError(f"cannot write {path} ({reason}): {fix}{previous}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    """Read a checkpoint written by save_checkpoint; anything else is a one-line VaelabError.

    Loaded with weights_only=True: a checkpoint holds only tensors, numbers, strings, lists and
    dicts, so no code from the file can run."""
    path = Path(path)
    if not path.exists():
        raise VaelabError(f"{path}: no checkpoint here; train first (vaelab train ...) or check the run folder")
    try:
        with warnings.catch_warnings():   # e.g. "unusual pickle protocol" from a damaged file
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for damaged files
        raise VaelabError(f"{path}: cannot read checkpoint ({type(e).__name__}); the file is damaged, retrain or use another run") from None
    if not isinstance(state, dict) or not {"model", "config", "x_dim"} <= set(state):
        raise VaelabError(f"{path}: not a vaelab checkpoint (missing model weights or config)")
    config, weights, x_dim = state["config"], state["model"], state["x_dim"]
    if (not isinstance(config, dict) or not isinstance(config.get("model"), str)
            or not isinstance(config.get("model_options", {}), dict)
            or not isinstance(weights, dict) or not all(torch.is_tensor(v) for v in weights.values())
            or not isinstance(x_dim, int) or isinstance(x_dim, bool) or not 0 < x_dim <= 1 << 24):
        raise VaelabError(f"{path}: not a vaelab checkpoint (malformed config, weights or x_dim); the file is damaged, retrain")
    shape, channels = state.get("image_shape", [x_dim]), state.get("channels", 1)
    if shape is None:   # points, not images (2D toy data)
        return state
    if (not isinstance(shape, (list, tuple)) or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in [*shape, channels])
            or channels * math.prod(shape) != x_dim):
        raise VaelabError(f"{path}: not a vaelab checkpoint (image_shape {shape!r} x {channels!r} channel(s) does not fit x_dim "
                          f"{x_dim}); "
                          f"the file is damaged, retrain")
    return state
