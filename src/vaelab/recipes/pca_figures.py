"""The figures of the ae-pca-mnist recipe (pca.py): convergence, components, reconstructions, JL distortion.

Figures are matplotlib Figure objects saved with plots.save_figure (no pyplot, which would pick a backend).
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.figure
import torch

from ..plots import save_figure, save_grid
from .subspaces import align_basis

COLOURS = {"random": "tab:blue", "pca": "tab:orange", "linear": "tab:green", "relu": "tab:red"}
LABELS = {"random": "Gaussian random projection", "pca": "PCA code", "linear": "linear AE code", "relu": "ReLU AE code"}


def convergence_figure(scores: dict[int, dict], path: Path) -> Path:
    """Per code size: the linear AE's validation MSE over PCA's on the same images, minus 1, by iteration."""
    fig = matplotlib.figure.Figure(figsize=(6.5, 4))
    ax = fig.subplots()
    for size, s in scores.items():
        h = s["history"]
        gap = [max(m / s["val_pca"] - 1, 1e-6) for m in h.get("val_mse", [])]
        ax.plot(h.get("val_iteration", []), gap, label=f"L = {size}")
    ax.axhline(0.01, color="k", ls="--", lw=1)
    ax.set(yscale="log", xlabel="iteration", ylabel="validation MSE / PCA's - 1",
           title="Linear AE: distance to the PCA optimum")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def _show(ax, image: torch.Tensor, shape) -> None:
    v = image.abs().max().item() or 1.0
    ax.imshow(image.reshape(shape).float().numpy(), cmap="RdBu_r", vmin=-v, vmax=v)
    ax.set_xticks([])
    ax.set_yticks([])


def components_figure(basis: torch.Tensor, decoder: torch.Tensor, path: Path, shape=(28, 28)) -> Path:
    """Rows: the top-L principal components; the linear AE's decoder columns (each scaled to unit norm);
    an orthonormal basis of the decoder's column space rotated onto the components (orthogonal Procrustes)."""
    aligned = align_basis(decoder, basis)
    raw = decoder / decoder.norm(dim=0, keepdim=True)
    rows = [("principal\ncomponents", basis), ("decoder\ncolumns", raw), ("decoder,\naligned", aligned)]
    size = basis.shape[1]
    fig = matplotlib.figure.Figure(figsize=(1.1 * size + 1.2, 3.6))
    axes = fig.subplots(3, size, squeeze=False)
    for r, (label, mat) in enumerate(rows):
        for k in range(size):
            _show(axes[r, k], mat[:, k], shape)
            if r == 0:
                axes[r, k].set_title(f"{k + 1}", fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle("Top principal components and the linear AE's decoder (red +, blue -)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def reconstructions_figure(rows: list[torch.Tensor], path: Path, shape=(28, 28)) -> Path:
    """One row per tensor of (n, D) images (originals, then each method's reconstructions), clamped to [0, 1]."""
    n = len(rows[0])
    return save_grid(path, torch.cat([r.float().clamp(0, 1) for r in rows]), len(rows), n, shape)


def jl_figure(results: dict[tuple[str, int], dict], epsilons: dict[int, float], path: Path) -> Path:
    """Per code size and map: the median and 5-95% band of the distance ratios; the band's width (95% / 5%
    quantile); the worst pair's |log(ratio / median)| beside the JL bound on |log ratio| (where it says anything)."""
    fig = matplotlib.figure.Figure(figsize=(15, 4.3))
    left, middle, right = fig.subplots(1, 3)
    for method in COLOURS:
        sizes = sorted(size for m, size in results if m == method)
        rs = [results[(method, s)] for s in sizes]
        style = {"color": COLOURS[method], "marker": "o", "label": LABELS[method]}
        left.plot(sizes, [r["median"] for r in rs], **style)
        left.fill_between(sizes, [r["q05"] for r in rs], [r["q95"] for r in rs], color=COLOURS[method], alpha=0.15)
        middle.plot(sizes, [r["q95"] / r["q05"] for r in rs], **style)
        right.plot(sizes, [r["max_abs_log_median"] for r in rs], **style)
    bound = {s: -0.5 * math.log(1 - e) for s, e in epsilons.items() if e < 1}
    if bound:
        right.plot(list(bound), list(bound.values()), "k*--", ms=10, label="JL bound on |log ratio| (eps < 1)")
    left.axhline(1.0, color="k", lw=0.8)
    left.set(yscale="log", ylabel="||f(x_i) - f(x_j)|| / ||x_i - x_j||", title="Distance ratios: median, 5-95% band")
    middle.set(yscale="log", ylabel="95% / 5% quantile of the ratios", title="Typical spread (scale-free)")
    right.set(yscale="log", ylabel="max |log(ratio / median ratio)|", title="Worst pair, about each map's own scale")
    for ax in (left, middle, right):
        ax.set(xscale="log", xlabel="code size L")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
