"""Continuous 2D toy data sets, generated on the fly with fixed seeds (scikit-learn's generators).

    swiss-roll  make_swiss_roll(noise=0.1), columns 0 and 2 (the roll seen from its axis)
    moons       make_moons(noise=0.1), labels: which moon
    circles     make_circles(noise=0.05, factor=0.5), labels: inner / outer circle
    blobs       make_blobs(centers=3, cluster_std=1.0), labels: which blob

Every set is standardised (zero mean, unit variance per column) with the mean and standard
deviation of its training sample, so reconstruction MSEs are comparable across sets. The
training sample (10,000 points) is drawn with seed 0, the test sample (2,000) with seed 1;
`sampler` draws fresh standardised points for training on new data every batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vaelab.data.dataset import Dataset
from vaelab.errors import VaelabError

N_TRAIN, N_TEST = 10_000, 2_000
TRAIN_SEED, TEST_SEED = 0, 1


def _swiss_roll(n: int, seed: int):
    from sklearn.datasets import make_swiss_roll

    x, t = make_swiss_roll(n, noise=0.1, random_state=seed)
    return x[:, [0, 2]], (t > np.median(t)).astype(np.int64)   # label: inner / outer half of the roll


def _moons(n: int, seed: int):
    from sklearn.datasets import make_moons

    return make_moons(n, noise=0.1, random_state=seed)


def _circles(n: int, seed: int):
    from sklearn.datasets import make_circles

    return make_circles(n, noise=0.05, factor=0.5, random_state=seed)


def _blobs(n: int, seed: int):
    from sklearn.datasets import make_blobs

    return make_blobs(n, centers=3, cluster_std=1.0, random_state=seed, center_box=(-8, 8))


@dataclass(frozen=True)
class ToySpec:
    name: str
    description: str
    classes: tuple[str, ...]
    generate: callable


TOY_DATASETS: dict[str, ToySpec] = {
    "swiss-roll": ToySpec("swiss-roll", "2D swiss roll (columns 0, 2 of sklearn's, noise 0.1), standardised",
                          ("inner", "outer"), _swiss_roll),
    "moons": ToySpec("moons", "2D two moons (noise 0.1), standardised", ("moon 0", "moon 1"), _moons),
    "circles": ToySpec("circles", "2D two circles (noise 0.05, factor 0.5), standardised", ("outer", "inner"), _circles),
    "blobs": ToySpec("blobs", "2D three Gaussian blobs, standardised", ("0", "1", "2"), _blobs),
}


def is_toy(name: str) -> bool:
    return str(name).strip().lower().replace("_", "-") in TOY_DATASETS


def _draw(spec: ToySpec, n: int, seed: int):
    x, y = spec.generate(n, seed)
    return torch.as_tensor(np.asarray(x), dtype=torch.float32), torch.as_tensor(np.asarray(y), dtype=torch.int64)


class ToySampler:
    """Fresh standardised draws of a toy data set: sampler(n) -> (x, y) on the CPU, a new seed each call."""

    def __init__(self, spec: ToySpec, mean: torch.Tensor, std: torch.Tensor, seed: int = 1_000):
        self.spec, self.mean, self.std, self.seed = spec, mean, std, seed

    def __call__(self, n: int):
        self.seed += 1
        x, y = _draw(self.spec, n, self.seed)
        return (x - self.mean) / self.std, y


def load_toy(name: str):
    """The toy data set `name` as a vaelab Dataset (image_shape None: points, not images)."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in TOY_DATASETS:
        raise VaelabError(f"unknown toy dataset {name!r}; choose one of: {', '.join(TOY_DATASETS)}")
    spec = TOY_DATASETS[key]
    train_x, train_y = _draw(spec, N_TRAIN, TRAIN_SEED)
    test_x, test_y = _draw(spec, N_TEST, TEST_SEED)
    mean, std = train_x.mean(0), train_x.std(0)
    ds = Dataset(name=key, train_x=(train_x - mean) / std, train_y=train_y, test_x=(test_x - mean) / std,
                 test_y=test_y, image_shape=None, classes=list(spec.classes),
                 source=f"generated (scikit-learn, train seed {TRAIN_SEED}, test seed {TEST_SEED})")
    ds.sampler = ToySampler(spec, mean, std)
    return ds
