"""The ``Dataset`` dataclass: one loaded data set, as every loader in vaelab.data returns it.

The file-based sets (``vaelab.data.datasets``), the generated 2D toy sets (``vaelab.data.toy``),
the rendered dSprites sets (``vaelab.data.sprites``) and a user's own data (``vaelab.data.user``)
all produce it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Dataset:
    """A loaded data set: flattened images in [0, 1] and integer labels, on the CPU.

    ``train_x``/``test_x`` are float32 of shape (N, C*H*W), channels first (C = ``channels``:
    1 for grey sets, 3 for colour; ``image_shape`` is (H, W) either way), or (N, D) points when
    ``image_shape`` is None. ``train_y``/``test_y`` are int64 class indices into ``classes``.
    Unlabelled data (a user's folder of images without class subfolders, an array without
    labels) has ``classes == []`` and all-zero ``train_y``/``test_y``: ``labelled`` is False, so
    nothing may read those zeros as one class. ``source`` says where the data came from in
    words; ``origin`` (a user's own data only, else None) records it for a run: kind, path,
    shape, dtype, sha256, split_seed and test_size (see ``vaelab.data.user``). ``factors`` (the
    dSprites sets only, else None) holds the generative factors of every example: ``names``,
    ``values`` (name -> the factor's values) and ``train``/``test``, int64 (N, n_factors) indices
    into those values, row for row with ``train_x``/``test_x`` (see ``vaelab.data.sprites``).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    image_shape: tuple[int, int] | None   # None: points (the 2D toy sets), not images
    classes: list[str]
    source: str
    sampler: object = None                # generated sets: sampler(n) -> fresh (x, y) draws
    channels: int = 1                     # colour channels of the images (1 grey, 3 RGB)
    origin: dict | None = None            # a user's own data: where it came from (user_dataset)
    factors: dict | None = None           # dSprites: the generative factors of each example

    @property
    def continuous(self) -> bool:
        """True for data that is not grey levels in [0, 1] (cannot be binarized)."""
        return self.image_shape is None

    @property
    def labelled(self) -> bool:
        """True when ``train_y``/``test_y`` are real classes; False for unlabelled data (all zeros)."""
        return bool(self.classes)
