"""Where a run's data come from: a data set's name, or a user's own data (a path, or arrays in memory).

`open_dataset` is the one loading path of a run: the registered sets by name (`load_dataset`), a
folder of images or an .npz / .npy file by its path (`user_dataset`), or data already loaded from
memory. A run records its own data's origin (`Dataset.origin`: kind, path, shape, dtype, SHA-256, split
seed), and `open_dataset` checks the data found again against it: a folder or array that changed since
training is refused with the reason, not evaluated silently.
"""
from __future__ import annotations

import os
from pathlib import Path

from vaelab.data.dataset import Dataset
from vaelab.data.datasets import load_dataset
from vaelab.data.registry import DATASETS, is_generated
from vaelab.data.sprites import SPRITE_DATASETS
from vaelab.data.toy import TOY_DATASETS
from vaelab.data.user import user_dataset
from vaelab.errors import VaelabError, arg

IN_MEMORY = ("array", "torch-dataset")   # origins whose data a run cannot read again by itself


def is_registered(name: str) -> bool:
    """Whether `name` is one of vaelab's own data sets (a name wins over a folder of the same name)."""
    key = str(name).strip().lower().replace("_", "-")
    return key in DATASETS or is_generated(key)


def user_source(dataset) -> bool:
    """Whether `dataset` is a user's own data rather than a registered data set's name."""
    return not (isinstance(dataset, str) and is_registered(dataset))


def dataset_label(dataset: str) -> str:
    """A short name of a data set for folder names: the name itself, or a path's last part without suffix."""
    return dataset if is_registered(dataset) else (Path(dataset).stem or "data")


def open_dataset(dataset: str, data_dir=None, resize: int | None = None, origin: dict | None = None,
                 given=None, progress: bool = True) -> Dataset:
    """The run's data: `given` (a user's data in memory: an array, (x, y), a dict or a torch Dataset, known to
    the run by the name `dataset`), a registered set by name, or a user's folder / .npz / .npy file by path;
    with `origin` (what the run recorded), checked to be the same data."""
    if given is not None:
        return load_given(given, resize, origin, progress, name=dataset)
    if is_registered(dataset) and (origin is None or origin.get("kind") not in IN_MEMORY):
        return load_dataset(dataset, data_dir=data_dir)
    if origin is not None and origin.get("kind") in IN_MEMORY:
        raise VaelabError(f"this run was trained on data given in memory ({origin.get('kind')} of shape "
                          f"{origin.get('shape')}, {origin.get('dtype')}); pass the same data again: "
                          f"vaelab.load_run(path, data=...) or vaelab.train(..., dataset=..., resume=True)")
    path = Path(os.path.expanduser(str(origin["path"] if origin else dataset)))
    if not path.exists():
        known = ", ".join([*DATASETS, *TOY_DATASETS, *SPRITE_DATASETS])
        raise VaelabError(f"{arg('dataset', str(dataset))}: neither a data set vaelab knows ({known}) nor a folder "
                          f"of images or an .npz / .npy file; check the name or the path")
    return load_given(path, resize, origin, progress)


def _checked(ds: Dataset, origin: dict | None) -> Dataset:
    """ds itself, if it is the data `origin` recorded (the same SHA-256)."""
    if origin is None or ds.origin is None:
        return ds
    if ds.origin.get("sha256") != origin.get("sha256"):
        where = origin.get("path") or "the data given"
        raise VaelabError(f"{where}: not the data this run was trained on (SHA-256 {ds.origin['sha256'][:12]}..., "
                          f"recorded {str(origin.get('sha256'))[:12]}...; shape {ds.origin.get('shape')}, recorded "
                          f"{origin.get('shape')}): give the same data, or train a new run on these")
    return ds


def load_given(data, resize: int | None = None, origin: dict | None = None, progress: bool = True,
               name: str | None = None) -> Dataset:
    """A user's own data (in memory: an array, (x, y), a dict, a torch Dataset; or a folder / .npz / .npy path)
    as a Dataset, split as `origin` records (a run opened again) or by the defaults; checked against `origin`."""
    how = {} if origin is None else {k: origin[k] for k in ("split_seed", "test_size") if origin.get(k) is not None}
    side = None if resize is None else (resize, resize)
    return _checked(user_dataset(data, resize=side, progress=progress, name=name, argument=arg("dataset"), **how),
                    origin)
