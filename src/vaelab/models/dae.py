"""Denoising autoencoder (Vincent et al. 2008): reconstruct x from a corrupted copy T(x).

    loss = (1/N) sum_n rec(x_n, D(E(T(x_n)))),   T: gaussian, mask or salt-pepper noise
                                                  (vaelab.data.corruption), training only

The noise level is fixed (--level 0.5) or drawn uniformly per batch from a range
(--level 0.3,0.7). At use time `denoise` maps a corrupted input to its reconstruction.
Evaluation adds, on the test set corrupted once with a fixed seed at the middle of the level
range: the MSE (and PSNR for images) of the corrupted and of the denoised images.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..data.corruption import NOISE_TYPES, corrupt, draw_level, parse_level
from ..errors import VaelabError, arg
from .ae import AE, AEOptions, psnr
from .options import SWITCH, option


@dataclass(frozen=True)
class DenoisingAEOptions(AEOptions):
    """The denoising autoencoder's options: the AE's and its corruption's (`vaelab train dae --help`)."""
    noise: str = option("mask", f"corruption T: {', '.join(NOISE_TYPES)}")
    level: str = option("0.5", "noise level (std for gaussian, probability otherwise), or a range p_min,p_max drawn "
                               "per batch")
    clip: int = option(1, "1: clip gaussian-corrupted inputs to [0, 1] (images); 0: do not (continuous data)",
                       rule=SWITCH)


EVAL_NOISE_SEED = 4321   # the fixed corruption of the test set


class DenoisingAE(AE):
    """Denoising autoencoder: trained to reconstruct x from T(x) (gaussian, mask, salt-pepper)."""

    REPORT = replace(AE.REPORT, figures=("denoising",), anomaly_score="denoising MSE (the input against the "
                     "reconstruction of its corrupted copy, fixed noise)")

    def __init__(self, x_dim: int = 784, noise: str = "mask", level="0.5", clip: int = 1, **ae_options):
        super().__init__(x_dim=x_dim, **ae_options)
        if noise not in NOISE_TYPES:
            raise ValueError(f"unknown noise {noise!r}: use one of {', '.join(NOISE_TYPES)}")
        self.noise, self.clip = noise, bool(clip)
        self.level_range = parse_level(level, noise)
        self.graphable = self.level_range[0] == self.level_range[1]   # a range is drawn on the host per batch

    def corrupt(self, x: torch.Tensor, level: float | None = None, generator=None) -> torch.Tensor:
        """T(x); the level is drawn from the level range unless given."""
        level = draw_level(*self.level_range) if level is None else level
        return corrupt(x, self.noise, level, generator, clip=self.clip)

    @property
    def eval_level(self) -> float:
        """The noise level of evaluation and figures: the middle of the level range."""
        return sum(self.level_range) / 2

    def denoise(self, x_corrupted: torch.Tensor) -> torch.Tensor:
        """The reconstruction of a corrupted input, (batch, x_dim) or image-shaped (checked as encode checks x)."""
        return self.mean_x_given_z(self.posterior_mean(self._inputs(x_corrupted)))

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """Per-example denoising error: the MSE between x and the reconstruction of T(x), corrupted at the
        evaluation level with a fixed seed (the same scores every call). The model learned to undo T; asked
        to rebuild a clean input it never saw uncorrupted, a mask-trained DAE scores every digit alike."""
        gen = torch.Generator(device=x.device).manual_seed(EVAL_NOISE_SEED)
        return (self.mean_x_given_z(self.posterior_mean(self.corrupt(x, self.eval_level, gen))) - x).pow(2).mean(-1)

    def check_training(self, iters: int, continuous: bool) -> None:
        """AE's refusals, and on continuous data (2D points) the corruptions made for images in [0, 1]."""
        super().check_training(iters, continuous)
        if continuous and self.noise == "gaussian" and self.clip:
            raise VaelabError(f"{arg('clip', 1)} clamps the gaussian-corrupted inputs to [0, 1], for images; the data are "
                              f"continuous (2D points): give {arg('clip', 0)}")
        if continuous and self.noise == "salt-pepper":
            raise VaelabError(f"{arg('noise', 'salt-pepper')} sets values to 0 or 1, for images; the data are continuous (2D "
                              f"points): use {arg('noise', 'gaussian')} or {arg('noise', 'mask')}")

    def evaluate_extra(self, data) -> dict:
        x = data.test_x_grey if data.image_shape is not None else data.test_x
        level = self.eval_level
        gen = torch.Generator(device=x.device).manual_seed(EVAL_NOISE_SEED)
        noisy = self.corrupt(x, level, gen)
        denoised = torch.cat([self.denoise(xb) for xb in noisy.split(2000)])
        out = {"eval_noise_level": level,
               "mse_corrupted": (noisy - x).pow(2).mean().item(),
               "mse_denoised": (denoised - x).pow(2).mean().item()}
        if data.image_shape is not None:
            out.update(super().evaluate_extra(data),
                       psnr_corrupted=psnr(x, noisy).mean().item(), psnr_denoised=psnr(x, denoised).mean().item())
        return out
