"""Where the IDX files of ``mnist`` and ``fashion-mnist`` are looked for, checked and downloaded.

The files are looked for, in this order, in

1. the ``data_dir`` argument (the CLI's ``--data-dir``),
2. the directory in the environment variable ``VAELAB_DATA``,
3. the user cache directory, ``$XDG_CACHE_HOME/vaelab`` or ``~/.cache/vaelab``,
4. ``/usr/share/datasets`` (where Debian's ``dataset-fashion-mnist`` package puts them),

each time first in a sub-folder named after the data set (``<dir>/mnist/``) and then in
``<dir>`` itself (there, only if the label file's checksum says the files are this data
set's: MNIST and Fashion-MNIST use the same file names). If none has them and
downloading is allowed, they are downloaded into the user cache directory. Every file's
SHA-256 (of the uncompressed contents) is checked when it is downloaded and each time it
is loaded, which costs about 0.05 s for MNIST.

Set ``VAELAB_NO_DOWNLOAD=1`` (or pass ``download=False``) to never touch the network.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

from vaelab.progress import progress_bar

from vaelab.data.idx import read_idx_bytes
from vaelab.data.registry import DATASETS, DEFAULT_DATASET, DatasetSpec, get_spec
from vaelab.data.sprites import is_sprites
from vaelab.data.toy import is_toy
from vaelab.errors import VaelabError, arg

# The four standard IDX files of MNIST-style data sets, by role; the same names for
# MNIST and Fashion-MNIST. Each may be gzipped (name + ".gz") or not.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# Where the lookup ends; a module constant so that tests can point it elsewhere.
SYSTEM_DATA_DIRS = (Path("/usr/share/datasets"),)

DOWNLOAD_TIMEOUT_S = 20.0


# --------------------------------------------------------------------------- where


def user_cache_dir() -> Path:
    """Return vaelab's cache directory: ``$XDG_CACHE_HOME/vaelab`` or ``~/.cache/vaelab``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "vaelab"


def downloads_disabled() -> bool:
    """True when the environment variable ``VAELAB_NO_DOWNLOAD`` is set to a true value."""
    return os.environ.get("VAELAB_NO_DOWNLOAD", "").strip().lower() not in ("", "0", "false", "no")


def search_roots(data_dir: str | os.PathLike | None = None) -> list[tuple[str, Path | None]]:
    """Return the directories searched for data sets, in order, labelled by where they come from.

    A root is ``None`` when its source is unset (no ``data_dir``, no ``VAELAB_DATA``).
    """
    env = os.environ.get("VAELAB_DATA", "")
    roots: list[tuple[str, Path | None]] = [
        ("data_dir (--data-dir)", Path(data_dir).expanduser() if data_dir else None),
        ("VAELAB_DATA", Path(env).expanduser() if env else None),
        ("user cache", user_cache_dir()),
    ]
    roots += [("system", d) for d in SYSTEM_DATA_DIRS]
    return roots


def _idx_files_in(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Return ({role: path} of the standard IDX files present in ``folder``, [missing names]).

    The uncompressed name is preferred when both forms exist (it reads faster).
    """
    found, missing = {}, []
    for role, base in IDX_FILES.items():
        for candidate in (folder / base, folder / f"{base}.gz"):
            if candidate.is_file():
                found[role] = candidate
                break
        else:
            missing.append(f"{base}.gz")
    return found, missing


def _labels_belong_to(name: str, labels_path: Path) -> bool:
    """True when ``labels_path`` has the published SHA-256 of data set ``name``'s train labels."""
    try:
        return sha256_uncompressed(labels_path) == DATASETS[name].sha256[labels_path.name.removesuffix(".gz")]
    except VaelabError:
        return False


def _locate(name: str, data_dir: str | os.PathLike | None) -> tuple[dict[str, Path] | None, list[str]]:
    """Find the four IDX files of data set ``name``.

    Returns ({role: path}, report) where the dict is None when no location has all four,
    and ``report`` has one line per place looked at, for the "not found" message.
    """
    report = []
    for label, root in search_roots(data_dir):
        if root is None:
            report.append(f"{label}: not set")
            continue
        notes = []
        for folder in (root / name, root):
            try:   # a folder without read or search permission raises here; it is reported, not a traceback
                if not folder.is_dir():
                    notes.append(f"{folder}/ does not exist")
                    continue
                files, missing = _idx_files_in(folder)
            except PermissionError:
                notes.append(f"{folder}/ cannot be read (permission denied: give this user read access, e.g. "
                             f"chmod -R u+rX {folder})")
                continue
            if not missing and folder == root and not _labels_belong_to(name, files["train_labels"]):
                # MNIST and Fashion-MNIST use the same file names: loose files in a root
                # only count when their (small) label file is this data set's.
                notes.append(f"{folder}/ holds the files of another data set")
                continue
            if not missing:
                return files, report
            if files:
                notes.append(f"{folder}/ lacks {', '.join(missing)}")
            else:
                notes.append(f"{folder}/ has none of the files")
        report.append(f"{label}: {'; '.join(notes)}")
    return None, report


def find_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """Return the folder holding the four IDX files of ``name``, or None; never downloads."""
    spec = get_spec(name)
    if spec.embedded:
        return None
    files, _ = _locate(spec.name, data_dir)
    return None if files is None else files["train_images"].parent


def _not_found_message(spec: DatasetSpec, report: list[str], reason: str) -> str:
    files = ", ".join(f"{base}.gz" for base in IDX_FILES.values())
    lines = [f"dataset {spec.name!r} not found ({reason}); looked in:"]
    lines += [f"  {line}" for line in report]
    lines.append(
        f"fix: put {files} into <dir>/{spec.name}/ and pass {arg('data_dir', '<dir>')}, or set VAELAB_DATA=<dir>"
    )
    if spec.install_hint:
        lines.append(f"  or {spec.install_hint}")
    lines.append(f"  or run with internet access to download them into {user_cache_dir() / spec.name}/")
    lines.append(f"  or use the embedded data set {arg('dataset', DEFAULT_DATASET)}, which needs no files")
    return "\n".join(lines)


# --------------------------------------------------------------------------- checksums


def sha256_uncompressed(path: str | os.PathLike) -> str:
    """Return the SHA-256 hex digest of a file's contents, gunzipped if it is gzip."""
    return hashlib.sha256(read_idx_bytes(path)).hexdigest()


def _check_sha256(spec: DatasetSpec, path: Path, actual: str) -> None:
    """Raise VaelabError when ``actual`` is not the published SHA-256 of ``path``'s file."""
    base = path.name.removesuffix(".gz")
    expected = spec.sha256[base]
    if actual == expected:
        return
    other = next(
        (f"; it is {s.name}'s {b}" for s in DATASETS.values() for b, h in s.sha256.items() if h == actual),
        "",
    )
    raise VaelabError(
        f"{path}: checksum mismatch: SHA-256 of the uncompressed contents is {actual[:16]}..., "
        f"expected {expected[:16]}... for {spec.name}{other}; delete the file and download it again"
    )


def _file_spec(name: str, what: str):
    """The spec of a data set kept in IDX files (mnist, fashion-mnist); VaelabError for the embedded and the toy ones."""
    if is_toy(name) or is_sprites(name):
        kind = "a 2D toy set" if is_toy(name) else "rendered by vaelab"
        raise VaelabError(f"{name} is generated on the fly ({kind}) and {what}; pick mnist or fashion-mnist")
    spec = get_spec(name)
    if spec.embedded:
        raise VaelabError(f"{spec.name} is embedded in a package and {what}; pick mnist or fashion-mnist")
    return spec


def verify_checksums(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Check the SHA-256 of each of data set ``name``'s four files, wherever they are found.

    Returns {path: sha256} when all match; raises VaelabError on the first mismatch, or the
    "not found" error when the files are nowhere. Never downloads.
    """
    spec = _file_spec(name, "has no files to verify")
    files, report = _locate(spec.name, data_dir)
    if files is None:
        raise VaelabError(_not_found_message(spec, report, "verify_checksums does not download"))
    digests = {}
    for path in files.values():
        digests[str(path)] = sha256_uncompressed(path)
        _check_sha256(spec, path, digests[str(path)])
    return digests


# --------------------------------------------------------------------------- download


# The most one download may bring (the largest published file, Fashion-MNIST's train images, is 26 MB).
MAX_DOWNLOAD_BYTES = 1 << 27


def _fetch(url: str, out, timeout: float, desc: str) -> None:
    """Stream ``url`` into the open binary file ``out`` with a progress bar; at most MAX_DOWNLOAD_BYTES."""
    request = urllib.request.Request(url, headers={"User-Agent": "vaelab"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        too_big = VaelabError(f"larger than {MAX_DOWNLOAD_BYTES} bytes, not a file of this data set")
        if total is not None and total > MAX_DOWNLOAD_BYTES:
            raise too_big
        got = 0
        with progress_bar(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=None) as bar:
            while chunk := response.read(1 << 16):
                got += len(chunk)
                if got > MAX_DOWNLOAD_BYTES:
                    raise too_big
                out.write(chunk)
                bar.update(len(chunk))


def _download_file(spec: DatasetSpec, base: str, folder: Path, mirrors, timeout: float) -> None:
    """Download ``base``.gz into ``folder`` from the first mirror that serves a correct copy.

    Each attempt goes to a hidden temporary file in ``folder``; it is checked against the
    published SHA-256 and only then renamed to its final name, so an interrupted or wrong
    download never looks like a real file. A bad copy is deleted.
    """
    target = folder / f"{base}.gz"
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + f"/{base}.gz"
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{base}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, out, timeout, desc=f"{spec.name}/{base}.gz")
            actual = sha256_uncompressed(tmp)
            if actual != spec.sha256[base]:
                failures.append(
                    f"{url}: checksum mismatch (SHA-256 {actual[:16]}..., expected {spec.sha256[base][:16]}...), deleted it"
                )
                continue
            os.replace(tmp, target)
            return
        except (OSError, http.client.HTTPException, ValueError, VaelabError) as e:
            failures.append(f"{url}: {' '.join(str(e).split()) or type(e).__name__}")
        finally:
            tmp.unlink(missing_ok=True)
    raise VaelabError(f"could not download {base}.gz: " + "; ".join(failures))


def download_dataset(
    name: str,
    folder: str | os.PathLike | None = None,
    mirrors: tuple[str, ...] | list[str] | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Download data set ``name``'s four .gz files and return the folder they are in.

    ``folder`` defaults to ``<user cache>/<name>``; ``mirrors`` to the spec's mirrors.
    Files already in the folder are kept. Each file's uncompressed SHA-256 is checked
    before it gets its final name. Raises VaelabError when a file cannot be had.
    """
    spec = _file_spec(name, "needs no download; just load it")
    folder = Path(folder) if folder is not None else user_cache_dir() / spec.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VaelabError(f"cannot create {folder} ({e.strerror or e}); set XDG_CACHE_HOME to a writable directory") from None
    present, missing = _idx_files_in(folder)
    if missing:
        print(f"vaelab: downloading {spec.name} into {folder}/", file=sys.stderr)
    try:
        for base in IDX_FILES.values():
            if f"{base}.gz" in missing:
                _download_file(spec, base, folder, mirrors or spec.mirrors, timeout)
    except VaelabError:
        if not present and not any(folder.iterdir()):
            folder.rmdir()  # leave no empty folder behind after a failed first download
        raise
    return folder
