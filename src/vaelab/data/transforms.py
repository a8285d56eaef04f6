"""Transforms of loaded tensors: validation split, labelled subset, image resizing.

The random choices use a CPU ``torch.Generator`` seeded by the caller, so they are the
same on every device.
"""

from __future__ import annotations

import numpy as np
import torch

from vaelab.errors import VaelabError, arg


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
                f"class {c} has only {len(idx)} training examples, fewer than {arg('labels_per_class', per_class)}; "
                f"lower {arg('labels_per_class')}"
            )
        picks.append(idx[torch.randperm(len(idx), generator=generator)[:per_class]])
    chosen = torch.cat(picks).sort().values.to(x.device)
    return x[chosen], y[chosen.to(y.device)]


def resize_images(
    x: torch.Tensor, shape: tuple[int, int], size: int | tuple[int, int], channels: int = 1, antialias: bool = False
) -> torch.Tensor:
    """Flattened (N, C*H*W) channels-first images of ``shape`` (H, W) -> (N, C*h*w), bilinear.

    ``size`` is a side (square: 28x28 MNIST to 32x32) or (h, w). ``antialias`` smooths before
    downscaling (user_dataset sets it when an image shrinks); off by default, so the grey square
    resizes of ``--resize`` keep their numbers. Values are clamped to [0, 1].
    """
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if tuple(shape) == (h, w):
        return x
    img = x.reshape(-1, channels, *shape)
    out = torch.nn.functional.interpolate(img, size=(h, w), mode="bilinear", align_corners=False,
                                          antialias=antialias)
    return out.clamp_(0.0, 1.0).reshape(len(x), channels * h * w)
