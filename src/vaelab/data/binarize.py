"""Turn grey images in [0, 1] into binary {0, 1} images for Bernoulli decoders.

Two conventions are common in the VAE literature, and results are only comparable within
one of them:

* **dynamic**: draw a fresh binarization every time a batch is used, treating each grey
  value as the probability of a 1 pixel. It acts as data augmentation during training.
* **static**: draw once with a fixed seed and reuse the same binary images every time.
  The evaluation test set is binarized this way, with ``STATIC_BINARIZATION_SEED``, so
  that every run, on every machine, scores the same binary test images.

``"none"`` means keep the grey values (e.g. for a Gaussian or continuous-Bernoulli decoder).
"""

from __future__ import annotations

import torch

from vaelab.errors import VaelabError

BINARIZE_MODES = ("dynamic", "static", "none")

#: Seed of the fixed Bernoulli draw used for evaluation (the static test-set binarization).
STATIC_BINARIZATION_SEED = 1234


def binarize_dynamic(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return a fresh Bernoulli draw of ``x``: each pixel is 1 with probability ``x``.

    Works on any device; ``generator`` (optional) must live on ``x``'s device. ``x`` must
    hold values in [0, 1]; this is not checked here because a check would force a
    device synchronisation on every batch.
    """
    return torch.bernoulli(x, generator=generator)


def binarize_static(x: torch.Tensor, seed: int = STATIC_BINARIZATION_SEED) -> torch.Tensor:
    """Return a fixed, seeded Bernoulli draw of ``x`` (same input, same output, everywhere).

    The uniform numbers are drawn on the CPU from a ``torch.Generator`` seeded with
    ``seed``, so the result does not depend on the device, and is then moved to ``x``'s
    device and dtype. Pixel ``i`` is 1 when ``u[i] < x[i]``. The draw depends on the shape
    of ``x``: binarize the whole test set in one call, not batch by batch.
    """
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise VaelabError(
            f"binarize_static needs values in [0, 1], got [{float(x.min()):g}, {float(x.max()):g}]; "
            f"scale the images to [0, 1] first"
        )
    generator = torch.Generator(device="cpu").manual_seed(seed)
    u = torch.rand(x.shape, generator=generator, dtype=torch.float32)
    binary = u < x.detach().to(device="cpu", dtype=torch.float32)
    return binary.to(device=x.device, dtype=x.dtype)
