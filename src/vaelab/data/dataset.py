"""The ``Dataset`` dataclass: one loaded data set, as every loader in vaelab.data returns it.

The file-based sets (``vaelab.data.datasets``) and the generated 2D toy sets
(``vaelab.data.toy``) both produce it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
