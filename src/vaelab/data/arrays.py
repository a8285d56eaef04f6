"""Checking and converting a user's arrays for ``vaelab.data.user``: layout, values, labels, split.

    layout        (N, D) vectors, (N, H, W) grey, (N, C, H, W) or (N, H, W, C) images, C in 1, 3, 4
    check_values  NaN/inf, integers outside 0..255, float images outside [0, 1]: refused
    classes       labels 0..K-1 kept, others mapped to their sorted unique values
    split         split_validation's choice of the test rows
    convert       raw rows -> float32 (n, C*H*W) channels first in [0, 1], chunk by chunk
"""
from __future__ import annotations

import numbers

import numpy as np
import torch

from vaelab.data.transforms import resize_images, split_validation
from vaelab.errors import VaelabError, at_most, positive_int

SHAPES = "(N, D) vectors, (N, H, W) grey images, or (N, C, H, W) / (N, H, W, C) images with C = 1, 3 or 4"
CHUNK = 4096          # rows converted at a time: the float copy is made chunk by chunk, not twice
MAX_SIDE = 4096       # resize=(H, W) bound

def array_layout(shape: tuple, what: str) -> tuple[tuple[int, int] | None, int, bool]:
    """(image_shape or None for vectors, channels, channels_last) of an array of ``shape``."""
    if len(shape) not in (2, 3, 4) or 0 in shape[1:]:
        raise VaelabError(f"{what} has shape {list(shape)}; give {SHAPES}")
    if len(shape) == 2:
        return None, 1, False
    if len(shape) == 3:
        return (shape[1], shape[2]), 1, False
    first, last = shape[1] in (1, 3, 4), shape[3] in (1, 3, 4)
    if not (first or last):
        raise VaelabError(f"{what} has shape {list(shape)}: no axis of 1, 3 or 4 channels; give {SHAPES}")
    if last and (not first or shape[3] < shape[1]):
        return (shape[1], shape[2]), shape[3], True
    return (shape[2], shape[3]), shape[1], False
def check_values(a: np.ndarray, images: bool, what: str) -> None:
    """Refuse values the dtype cannot mean: NaN/inf, integers outside 0..255, float images outside [0, 1]."""
    kind = a.dtype.kind
    if kind == "b":
        return
    if kind not in "uif":
        raise VaelabError(f"{what} has dtype {a.dtype}; give numbers: uint8, integers 0..255, floats or bool")
    if a.size == 0:
        return
    lo, hi = a.min(), a.max()
    if kind in "ui":
        if lo < 0 or hi > 255:
            fix = "scale them to 0..255 or to floats in [0, 1]" if images else "convert them to float"
            raise VaelabError(f"{what} holds integers from {lo} to {hi}, not grey levels 0..255; {fix}")
        if hi <= 1:
            raise VaelabError(f"{what} holds integers 0..1 only, which as grey levels 0..255 are near black; "
                              f"give them as bool or float (x.astype(bool))")
    elif not (np.isfinite(lo) and np.isfinite(hi)):
        raise VaelabError(f"{what} holds NaN or infinite values; remove or replace them (np.nan_to_num)")
    elif images and (lo < 0 or hi > 1):
        fix = "divide by 255" if lo >= 0 and hi <= 255 else "rescale them to [0, 1]"
        raise VaelabError(f"{what}: float images must lie in [0, 1], found values from {lo:g} to {hi:g}; {fix}")
def class_indices(y, yt, n: int, nt: int, argument: str):
    """(train labels, test labels, classes): labels 0..K-1 (all present) kept, any others mapped to the
    sorted unique values with ``classes`` their str; None labels give zeros and classes []."""
    if y is None:
        return np.zeros(n, np.int64), np.zeros(nt, np.int64), []
    for labels, count, part in ((y, n, "labels"), (yt, nt, f"{argument}['test_labels']")):
        if labels is not None and (labels.ndim != 1 or len(labels) != count):
            raise VaelabError(f"{part} has {labels.shape[0] if labels.ndim else 0} entries of shape "
                              f"{list(labels.shape)} but {argument} has {count} examples; give one label per example")
    both = y if yt is None else np.concatenate([y, yt])
    if both.dtype.kind == "f":
        if not (np.isfinite(both).all() and (both == np.round(both)).all()):
            raise VaelabError("labels holds fractions or NaN; give class labels (integers or strings)")
        both = both.astype(np.int64)
    try:
        values, index = np.unique(both, return_inverse=True)
    except TypeError:
        raise VaelabError("labels mixes types that cannot be sorted; give integers or strings") from None
    if both.dtype.kind in "iu" and values[0] == 0 and values[-1] == len(values) - 1:
        index = both.astype(np.int64)
    index = index.reshape(-1).astype(np.int64)
    return index[:n], index[n:] if yt is not None else None, [str(v) for v in values.tolist()]
def n_test(test_size, n: int, argument: str) -> int:
    if n < 2:
        raise VaelabError(f"{argument} holds {n} example(s); give at least 2 (one to train on, one to test)")
    if isinstance(test_size, numbers.Integral) and not isinstance(test_size, bool):
        if not 1 <= test_size <= n - 1:
            raise VaelabError(f"test_size {test_size} does not fit {n} examples; give a count from 1 to {n - 1} "
                              f"or a fraction such as 0.2")
        return int(test_size)
    if isinstance(test_size, numbers.Real) and not isinstance(test_size, bool) and 0 < test_size < 1:
        return min(n - 1, max(1, round(test_size * n)))
    raise VaelabError(f"test_size must be a fraction between 0 and 1 or a count of examples, got {test_size!r}; "
                      f"give e.g. 0.2")
def check_resize(resize) -> tuple[int, int] | None:
    if resize is None:
        return None
    if not isinstance(resize, (tuple, list)) or len(resize) != 2:
        raise VaelabError(f"resize must be (H, W), got {resize!r}; give e.g. resize=(28, 28) (CLI --resize)")
    return tuple(at_most("resize", positive_int("resize", s, "pixels"), MAX_SIDE, "image side") for s in resize)
def to_unit_float(a: np.ndarray, rows, layout, size) -> torch.Tensor:
    """Rows ``rows`` (all if None) of raw array ``a`` -> float32 (n, C*h*w) channels first in [0, 1],
    resized to ``size``, made chunk by chunk into one preallocated array."""
    shape, channels, last = layout
    n = len(a) if rows is None else len(rows)
    target = size or shape
    out = np.empty((n, a[0].size if shape is None else channels * target[0] * target[1]), np.float32)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        chunk = a[start:stop] if rows is None else a[rows[start:stop]]
        chunk = np.moveaxis(chunk, -1, 1) if last else chunk
        values = chunk.reshape(stop - start, -1).astype(np.float32)
        if a.dtype.kind in "ui":
            values /= 255
        if size is not None and tuple(size) != tuple(shape):
            shrink = size[0] < shape[0] or size[1] < shape[1]
            values = resize_images(torch.from_numpy(values), shape, size, channels, antialias=shrink).numpy()
        out[start:stop] = values
    return torch.from_numpy(out)
def split_rows(n: int, test_size, seed: int, argument: str) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows), each sorted: split_validation's choice of ``test_size`` rows of n."""
    rows = torch.arange(n)
    train, _, test, _ = split_validation(rows, rows, n_test(test_size, n, argument), seed=seed)
    return train.numpy(), test.numpy()
