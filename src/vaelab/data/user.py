"""A user's own data as a vaelab ``Dataset``: ``user_dataset(data)`` and ``fingerprint(data)``.

``data`` may be
    an array or tensor   (N, D) vectors, (N, H, W) grey images, (N, C, H, W) or (N, H, W, C), C in 1, 3, 4
    (x, y)               the same with integer (or any) labels; or labels=y
    a dict               {"train": x, "test": xt, "train_labels": y, "test_labels": yt} (test, labels optional)
    a .npz / .npy path   keys x (or train), y (or train_labels), test, test_labels; a .npy holds x
    a folder of images   files in it (unlabelled) or one subfolder per class (see vaelab.data.images)
    a torch Dataset      items that are images (tensor, array, PIL image) or (image, label) pairs

uint8 and other integers 0..255 are scaled to [0, 1]; float images must already lie in [0, 1]; (N, D)
float vectors may hold any finite values (the set is continuous, like the toy sets); bool is 0/1.
Without a test set, ``test_size`` (a fraction or a count) rows are held out by a CPU generator
seeded with ``split_seed``, as ``split_validation`` does. ``Dataset.origin`` records where the data
came from and its sha256, which ``fingerprint`` recomputes for the same argument.
"""
from __future__ import annotations

import hashlib
import numbers
import os
from pathlib import Path

import numpy as np
import torch

from vaelab.data.arrays import array_layout, check_resize, check_values, class_indices, split_rows, to_unit_float
from vaelab.data.dataset import Dataset
from vaelab.data.images import folder_sha256, is_colour, list_images, pixels, read_images, scan
from vaelab.errors import VaelabError, first_line
from vaelab.progress import progress_bar

PARTS = ("train", "train_labels", "test", "test_labels")   # the dict form's keys, in hashing order
NPZ_KEYS = {"x": "train", "train": "train", "y": "train_labels", "train_labels": "train_labels",
            "test": "test", "test_labels": "test_labels"}
CHUNK = 4096          # rows hashed at a time


def _numpy(value, what: str, labels: bool = False) -> np.ndarray:
    """A tensor (detached, on the CPU; bfloat16 as float32) or array-like as a numpy array, not copied."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple)) and labels:
        return np.asarray(value)
    raise VaelabError(f"{what} is a {type(value).__name__}; give a numpy array or a torch tensor "
                      f"(np.stack a list of images)")


def _parts_of(data, labels, argument: str) -> dict[str, np.ndarray]:
    """The in-memory forms (array, (x, y), dict) as {part: numpy array}, keys from PARTS."""
    if isinstance(data, dict):
        unknown = sorted(map(str, set(data) - set(PARTS)))
        if unknown:
            raise VaelabError(f"{argument}: unknown key {unknown[0]!r}; the known keys are {', '.join(PARTS)}")
        if "train" not in data:
            raise VaelabError(f"{argument}: the dict has no 'train' key; give the training images as 'train'")
        if labels is not None:
            raise VaelabError(f"{argument}: labels= and a dict both given; put the labels in the dict as "
                              f"'train_labels' (and 'test_labels')")
        parts = {k: _numpy(v, f"{argument}[{k!r}]", k.endswith("labels")) for k, v in data.items() if v is not None}
    elif isinstance(data, tuple):
        if len(data) != 2:
            raise VaelabError(f"{argument}: a tuple must be (x, y), got {len(data)} items; give (images, labels)")
        if labels is not None:
            raise VaelabError(f"{argument}: labels given twice, in (x, y) and as labels=; give them once")
        parts = {"train": _numpy(data[0], f"{argument} x"), "train_labels": _numpy(data[1], "labels", True)}
    else:
        parts = {"train": _numpy(data, argument)}
        if labels is not None:
            parts["train_labels"] = _numpy(labels, "labels", True)
    if "test_labels" in parts and "test" not in parts:
        raise VaelabError(f"{argument}: 'test_labels' without 'test'; give the test images too, or neither")
    if "test" in parts and ("train_labels" in parts) != ("test_labels" in parts):
        raise VaelabError(f"{argument}: labels for only one of train and test; give 'train_labels' and "
                          f"'test_labels' both, or neither")
    return parts


def _hash_array(h, key: str, a: np.ndarray) -> None:
    h.update(f"{key} {a.dtype.str} {list(a.shape)}\n".encode())
    if a.dtype.hasobject:
        h.update("\n".join(map(repr, a.ravel().tolist())).encode())
        return
    rows = a.reshape(len(a), -1) if a.ndim else a.reshape(1)
    for start in range(0, len(rows), CHUNK):
        h.update(np.ascontiguousarray(rows[start:start + CHUNK]).data)


def _parts_sha256(parts: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in PARTS:
        if key in parts:
            _hash_array(h, key, parts[key])
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_file(path: Path, argument: str) -> dict[str, np.ndarray]:
    """A .npy (x) or .npz (NPZ_KEYS) file as parts; .npy is memory-mapped, not read twice."""
    try:
        if path.suffix.lower() == ".npy":
            return {"train": np.load(path, mmap_mode="r", allow_pickle=False)}
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.files)
            unknown = [k for k in keys if k not in NPZ_KEYS]
            if unknown or not {"x", "train"} & set(keys) or {"x", "train"} <= set(keys):
                raise VaelabError(
                    f"{argument}: {path} holds keys {', '.join(keys) or 'none'}; vaelab reads x (or train), "
                    f"y (or train_labels), test and test_labels: save the arrays under those names")
            return {NPZ_KEYS[k]: z[k] for k in keys}
    except VaelabError:
        raise
    except (OSError, ValueError, EOFError) as e:   # not a numpy file, pickled objects, a broken zip
        raise VaelabError(f"{argument}: cannot read {path} ({first_line(e, 120)}); save it with np.save / "
                          f"np.savez from numeric arrays") from None


def _image_of(value):
    """An item's image as a numpy array, or None when it is not one."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return _numpy(value, "item")
    if hasattr(value, "mode") and hasattr(value, "convert"):   # a PIL image
        return pixels(value, is_colour(value.mode))
    return None


def _collect(data, argument: str, progress: bool) -> dict[str, np.ndarray]:
    """A map-style torch Dataset's items stacked into one preallocated array (and their labels)."""
    try:
        n = len(data)
    except TypeError:
        raise VaelabError(f"{argument}: this torch Dataset has no length; give a map-style Dataset "
                          f"(with __len__ and __getitem__)") from None
    stack, labels, paired = None, [], None
    with progress_bar(total=n, desc="reading dataset", unit="item", disable=not progress) as bar:
        for i in range(n):
            item = data[i]
            pair = isinstance(item, (tuple, list)) and len(item) == 2
            image = _image_of(item[0] if pair else item)
            if image is None or (paired is not None and pair != paired):
                raise VaelabError(f"{argument}: item {i} is {_describe(item)}, not an image (tensor, array or "
                                  f"PIL image) or an (image, label) pair like item 0; make __getitem__ return one")
            if stack is None:
                stack, paired = np.empty((n, *image.shape), dtype=image.dtype), pair
            elif image.shape != stack.shape[1:] or image.dtype != stack.dtype:
                raise VaelabError(f"{argument}: item {i} is {image.dtype} {list(image.shape)} but item 0 is "
                                  f"{stack.dtype} {list(stack.shape[1:])}; give images of one size and type")
            stack[i] = image
            if pair:
                label = item[1]
                labels.append(label.item() if hasattr(label, "item") else label)
            bar.update(1)
    if stack is None:
        raise VaelabError(f"{argument}: the torch Dataset is empty; give at least 2 items")
    return {"train": stack, **({"train_labels": np.asarray(labels)} if paired else {})}


def _describe(item) -> str:
    if isinstance(item, (tuple, list)):
        return f"a {type(item).__name__} of {len(item)}: ({', '.join(type(v).__name__ for v in item[:3])})"
    return f"a {type(item).__name__}"


def _where(data, argument: str) -> tuple[str, Path | None]:
    """("array" | "npz" | "npy" | "folder" | "torch-dataset", path or None) of a user_dataset argument."""
    if isinstance(data, (str, os.PathLike)):
        path = Path(data).expanduser()
        if path.is_dir():
            return "folder", path
        if not path.exists():
            raise VaelabError(f"{argument}: no such file or folder: {path}; check the path")
        if path.suffix.lower() not in (".npz", ".npy"):
            raise VaelabError(f"{argument}: {path} is not a .npz or .npy file or a folder of images; save your "
                              f"arrays with np.savez / np.save, or give the folder of image files")
        return path.suffix.lower()[1:], path
    if isinstance(data, torch.utils.data.Dataset):
        return "torch-dataset", None
    return "array", None


def fingerprint(data, *, labels=None, argument: str = "dataset") -> str:
    """The sha256 that ``user_dataset(data, labels=labels).origin["sha256"]`` records, without loading.

    Arrays and tensors (the same numbers give the same hex, as a tensor or an ndarray): their shape,
    dtype and bytes, labels included; .npz/.npy files: the file's bytes; folders: the sorted relative
    paths and each file's bytes; a torch Dataset: its items, stacked. Equal fingerprints: the same data.
    """
    kind, path = _where(data, argument)
    if kind == "folder":
        return folder_sha256(path, list_images(path, argument)[0])
    if path is not None:
        return _file_sha256(path)
    if kind == "torch-dataset":
        return _parts_sha256(_collect(data, argument, progress=False))
    return _parts_sha256(_parts_of(data, labels, argument))


def user_dataset(data, *, labels=None, test_size: float | int = 0.2, split_seed: int = 0,
                 resize: tuple[int, int] | None = None, name: str | None = None, progress: bool = True,
                 argument: str = "dataset") -> Dataset:
    """A user's own data (any form in the module docstring) as a ``Dataset``, on the CPU.

    Images become float32 (N, C*H*W) in [0, 1], channels first (``Dataset.channels``, ``image_shape``
    (H, W)); (N, D) vectors stay (N, D) (``image_shape`` None, continuous). Without a test set,
    ``test_size`` (a fraction of N, at least 1 row, or a count) is held out by ``split_seed``; both are
    ignored (and recorded as None) when a test set is given.
    ``resize=(H, W)``: bilinear, antialiased when shrinking. ``name`` defaults to the file or
    folder's stem, else "array". ``argument`` names the data in error messages (the CLI's option).
    Labels 0..K-1 are kept; other labels are mapped to their sorted unique values (``classes``
    their str). Unlabelled data: ``classes`` [], labels all 0, ``labelled`` False.
    """
    resize = check_resize(resize)
    if isinstance(split_seed, bool) or not isinstance(split_seed, numbers.Integral):
        raise VaelabError(f"split_seed must be an integer, got {split_seed!r}; give e.g. split_seed=0")
    kind, path = _where(data, argument)
    if labels is not None and kind in ("folder", "torch-dataset"):
        fix = "put each class's images in a subfolder" if kind == "folder" else "return (image, label) items"
        raise VaelabError(f"labels= does not apply to a {kind.replace('-', ' ')}; {fix}")
    how = dict(kind=kind, path=path, test_size=test_size, split_seed=int(split_seed), resize=resize,
               name=name or _default_name(kind, path), argument=argument)
    if kind == "folder":
        return _folder_dataset(progress=progress, **how)
    if kind == "torch-dataset":
        parts = _collect(data, argument, progress)
        sha256 = _parts_sha256(parts)
    elif path is not None:
        parts = _load_file(path, argument)
        if labels is not None:
            if "train_labels" in parts:
                raise VaelabError(f"labels= given but {path} holds labels already; give them once")
            parts["train_labels"] = _numpy(labels, "labels", True)
        sha256 = _file_sha256(path)
    else:
        parts = _parts_of(data, labels, argument)
        sha256 = _parts_sha256(parts)
    return _from_parts(parts, sha256=sha256, source=_source(kind, path, data, parts["train"]), **how)


def _default_name(kind: str, path: Path | None) -> str:
    if path is None:
        return "array"
    return path.resolve().name if kind == "folder" else path.stem


def _source(kind: str, path: Path | None, data, x: np.ndarray) -> str:
    if path is not None:
        return str(path)
    if kind == "torch-dataset":
        return f"torch Dataset {type(data).__name__} ({len(x)} items)"
    return f"array {'x'.join(map(str, x.shape))} {x.dtype}"


def _from_parts(parts, *, kind, path, test_size, split_seed, resize, name, argument, sha256, source) -> Dataset:
    x, xt = parts["train"], parts.get("test")
    layout = array_layout(x.shape, argument)
    if xt is not None and (xt.ndim != x.ndim or xt.shape[1:] != x.shape[1:] or not len(x) or not len(xt)):
        raise VaelabError(f"{argument}: test has shape {list(xt.shape)} and train {list(x.shape)}; give both, "
                          f"non-empty, with the same shape per example")
    if resize is not None and layout[0] is None:
        raise VaelabError(f"resize applies to images, but {argument} holds (N, D) vectors; leave resize out")
    for a, what in ((x, argument), (xt, f"{argument} test")):
        if a is not None:
            check_values(a, layout[0] is not None, what)
    y, yt, classes = class_indices(parts.get("train_labels"), parts.get("test_labels"), len(x),
                              0 if xt is None else len(xt), argument)
    if xt is None:
        train_rows, test_rows = split_rows(len(x), test_size, split_seed, argument)
        train_x, test_x = to_unit_float(x, train_rows, layout, resize), to_unit_float(x, test_rows, layout, resize)
        y, yt = y[train_rows], y[test_rows]
    else:
        train_x, test_x = to_unit_float(x, None, layout, resize), to_unit_float(xt, None, layout, resize)
    origin = {"kind": kind, "path": None if path is None else str(path), "shape": list(x.shape),
              "dtype": str(x.dtype), "sha256": sha256, "split_seed": split_seed if xt is None else None,
              "test_size": test_size if xt is None else None, "test_shape": None if xt is None else list(xt.shape),
              "n_train": len(train_x), "n_test": len(test_x), "resize": list(resize) if resize else None}
    return Dataset(name=name, train_x=train_x, train_y=torch.from_numpy(y), test_x=test_x, test_y=torch.from_numpy(yt),
                   image_shape=resize or layout[0], classes=classes, source=source, channels=layout[1], origin=origin)


def _folder_dataset(*, kind, path, test_size, split_seed, resize, name, argument, progress) -> Dataset:
    rels, labels, classes = list_images(path, argument)
    size, colour, wide = scan(path, rels, argument, resize)
    channels, n = (3 if colour else 1), len(rels)
    train_rows, test_rows = split_rows(n, test_size, split_seed, argument)
    train = np.empty((len(train_rows), channels * size[0] * size[1]), np.float32)
    test = np.empty((len(test_rows), train.shape[1]), np.float32)
    slots = [None] * n
    for out, rows in ((train, train_rows), (test, test_rows)):
        for r, i in enumerate(rows.tolist()):
            slots[i] = (out, r)
    sha256 = read_images(path, rels, slots, size, colour, argument, progress)
    y = np.asarray(labels if labels is not None else [0] * n, dtype=np.int64)
    origin = {"kind": kind, "path": str(path), "shape": [n, channels, *(size if resize is None else (None, None))],
              "dtype": "uint16" if wide else "uint8", "sha256": sha256, "split_seed": split_seed,
              "test_size": test_size, "test_shape": None, "n_train": len(train), "n_test": len(test),
              "resize": list(resize) if resize else None}
    return Dataset(name=name, train_x=torch.from_numpy(train), train_y=torch.from_numpy(y[train_rows]),
                   test_x=torch.from_numpy(test), test_y=torch.from_numpy(y[test_rows]), image_shape=size,
                   classes=classes, source=str(path), channels=channels, origin=origin)
