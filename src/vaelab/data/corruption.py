"""Input corruptions T(x) for denoising autoencoders: pure functions on tensors.

    gaussian     x + level * eps, eps ~ N(0, I)          (clipped to [0, 1] for images)
    mask         each value set to 0 with probability level   (masking noise)
    salt-pepper  each value, with probability level, replaced by 0 or 1 (equally likely)

Each keeps the input's shape, dtype and device; ``generator`` (on the input's device) fixes
the draw. The level may be drawn per batch from a range [p_min, p_max] (`draw_level`).
"""
from __future__ import annotations

import torch

from vaelab.errors import VaelabError

NOISE_TYPES = ("gaussian", "mask", "salt-pepper")


def _uniform(x: torch.Tensor, generator):
    return torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def gaussian_noise(x: torch.Tensor, sigma: float, generator=None, clip: bool = True) -> torch.Tensor:
    """x + sigma * eps, eps ~ N(0, I); clipped to [0, 1] when `clip` (images)."""
    out = x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return out.clamp(0.0, 1.0) if clip else out


def mask_noise(x: torch.Tensor, p: float, generator=None) -> torch.Tensor:
    """Each value independently set to 0 with probability p."""
    return torch.where(_uniform(x, generator) < p, torch.zeros_like(x), x)


def salt_pepper_noise(x: torch.Tensor, p: float, generator=None) -> torch.Tensor:
    """Each value independently, with probability p, replaced by 0 or 1 (probability 1/2 each)."""
    hit = _uniform(x, generator) < p
    salt = (_uniform(x, generator) < 0.5).to(x.dtype)
    return torch.where(hit, salt, x)


def corrupt(x: torch.Tensor, noise: str, level: float, generator=None, clip: bool = True) -> torch.Tensor:
    """T(x) for noise in NOISE_TYPES at the given level (std for gaussian, probability otherwise)."""
    if noise == "gaussian":
        return gaussian_noise(x, level, generator, clip)
    if noise == "mask":
        return mask_noise(x, level, generator)
    if noise == "salt-pepper":
        return salt_pepper_noise(x, level, generator)
    raise VaelabError(f"unknown noise {noise!r}: choose one of {', '.join(NOISE_TYPES)}")


def parse_level(level, noise: str = "mask") -> tuple[float, float]:
    """'0.5' -> (0.5, 0.5); '0.3,0.7' -> (0.3, 0.7): a fixed level or a range drawn per batch."""
    try:
        parts = [float(p) for p in str(level).split(",")]
    except ValueError:
        raise ValueError(f"noise level {level!r}: give a number or a range p_min,p_max, e.g. 0.5 or 0.3,0.7") from None
    if len(parts) == 1:
        parts = parts * 2
    lo, hi = parts if len(parts) == 2 else (None, None)
    if lo is None or not 0 <= lo <= hi:
        raise ValueError(f"noise level {level!r}: give a number >= 0 or a range p_min,p_max with 0 <= p_min <= p_max")
    if noise != "gaussian" and hi > 1:
        raise ValueError(f"noise level {level!r}: a {noise} level is a probability, at most 1")
    return lo, hi


def draw_level(lo: float, hi: float, generator=None) -> float:
    """A level drawn uniformly from [lo, hi] (lo itself when lo == hi)."""
    if lo == hi:
        return lo
    return lo + (hi - lo) * torch.rand((), generator=generator).item()
