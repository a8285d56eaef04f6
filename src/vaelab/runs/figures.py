"""The model-specific figures of a run folder: 2D point clouds (toy data) and the autoencoders'
reconstructions, denoising triplets and code histograms. `model_figures` picks them from the model's
declared REPORT.figures; plots.py holds the latent-space figures and the notebook functions.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..pictures import save_figure, save_grid, subplots


# ---------------------------------------------------------------------------------------
# 2D (toy) data: scatter figures
# ---------------------------------------------------------------------------------------
def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _cloud(ax, data_x: torch.Tensor, label: str = "data"):
    d = _np(data_x)
    ax.scatter(d[:, 0], d[:, 1], s=3, c="0.75", label=label, rasterized=True)
    ax.set_aspect("equal")


def _codes(model, x: torch.Tensor) -> torch.Tensor:
    """The code of x: E(x) for autoencoders, the posterior mean for VAEs."""
    return model.posterior_mean(x)


def reconstruct(model, x: torch.Tensor) -> torch.Tensor:
    """x_hat = decoder mean at the code of x."""
    return model.mean_x_given_z(_codes(model, x))


def interpolation_path(model, a: torch.Tensor, b: torch.Tensor, steps: int = 25) -> torch.Tensor:
    """Decode the straight line between the codes of data points a and b: (steps, x_dim)."""
    za, zb = _codes(model, torch.stack([a, b]))
    t = torch.linspace(0, 1, steps, device=za.device).unsqueeze(1)
    return model.mean_x_given_z((1 - t) * za + t * zb)


def interpolation_endpoints(x: torch.Tensor) -> tuple[int, int]:
    """Two far-apart data points: the leftmost and the rightmost (first coordinate)."""
    return int(x[:, 0].argmin()), int(x[:, 0].argmax())


def draw_samples_2d(ax, data_x, samples, title="samples"):
    _cloud(ax, data_x)
    s = _np(samples)
    ax.scatter(s[:, 0], s[:, 1], s=4, c="tab:red", label="decoded z ~ N(0, I)", rasterized=True)
    ax.set_title(title)


def draw_reconstruction_2d(ax, data_x, recon, title="reconstruction"):
    _cloud(ax, data_x)
    r = _np(recon)
    ax.scatter(r[:, 0], r[:, 1], s=3, c="tab:blue", label="reconstruction", rasterized=True)
    ax.set_title(title)


def draw_interpolation_2d(ax, data_x, path, title="latent interpolation"):
    _cloud(ax, data_x)
    p = _np(path)
    ax.plot(p[:, 0], p[:, 1], "-o", c="tab:green", ms=3, lw=1.2, label="decoded path")
    ax.plot(p[[0, -1], 0], p[[0, -1], 1], "k*", ms=10, label="end points")
    ax.set_title(title)


def save_samples_2d(path: Path, data_x: torch.Tensor, samples: torch.Tensor, title: str = "") -> Path:
    fig, ax = subplots(figsize=(4.5, 4.5))
    draw_samples_2d(ax, data_x, samples, title or "samples over the test data")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    return Path(path)


@torch.inference_mode()
def save_toy_figures(model, data, out_dir: Path) -> list[str]:
    """reconstruction.png (test data vs reconstructions) and interpolation.png for a model on 2D data."""
    out_dir = Path(out_dir)
    x = data.test_x
    a, b = interpolation_endpoints(x)
    fig, axes = subplots(2, figsize=(9, 4.5))
    draw_reconstruction_2d(axes[0], x, reconstruct(model, x), "test data and reconstructions")
    draw_interpolation_2d(axes[1], x, interpolation_path(model, x[a], x[b]), "interpolation between two test points")
    for ax in axes:
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    save_figure(fig, out_dir / "reconstruction.png", dpi=100)
    return ["reconstruction.png"]


# ---------------------------------------------------------------------------------------
# Autoencoders on images
# ---------------------------------------------------------------------------------------
@torch.inference_mode()
def save_image_ae_figures(model, data, out_dir: Path, n: int = 20) -> list[str]:
    """reconstruction.png (originals over reconstructions); denoising.png for a denoising AE
    (original / corrupted / denoised rows); codes.png (histogram of code values) for a sparse AE."""
    out_dir = Path(out_dir)
    x = data.test_x_grey[:n]
    written = []
    if "denoising" in model.REPORT.figures:
        gen = torch.Generator(device=x.device).manual_seed(0)
        noisy = model.corrupt(x, model.eval_level, gen)
        save_grid(out_dir / "denoising.png", torch.cat([x, noisy, model.denoise(noisy)]), 3, n, data.picture_shape)
        written.append("denoising.png")
    else:
        save_grid(out_dir / "reconstruction.png", torch.cat([x, reconstruct(model, x)]), 2, n, data.picture_shape)
        written.append("reconstruction.png")
    if "codes" in model.REPORT.figures:
        save_code_histogram(out_dir / "codes.png", _codes(model, data.test_x[:2000]))
        written.append("codes.png")
    return written


def save_code_histogram(path: Path, codes: torch.Tensor, title: str = "code activations on 2,000 test inputs") -> Path:
    c = _np(codes).ravel()
    fig, ax = subplots(figsize=(5, 3.4))
    ax.hist(c, bins=100, color="tab:blue")
    ax.set_yscale("log")
    ax.set_xlabel("code value z_k")
    ax.set_ylabel("count")
    ax.set_title(f"{title}\n{(np.abs(c) > 1e-3).mean():.1%} with |z_k| > 1e-3")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    return Path(path)


def model_figures(model, data, out_dir: Path) -> list[str]:
    """The model-specific figures of a run (file names written into out_dir)."""
    if data.image_shape is None:
        return save_toy_figures(model, data, out_dir)
    if model.REPORT.figures:   # autoencoders: reconstructions, denoising, code histograms
        return save_image_ae_figures(model, data, out_dir)
    return []
