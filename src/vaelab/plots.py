"""Figures: image grids and training curves (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def tile(images: torch.Tensor, rows: int, cols: int, shape: tuple[int, int], pad: int = 2) -> np.ndarray:
    """(rows*cols, H*W) images in [0, 1] -> one (rows*(H+pad)+pad, cols*(W+pad)+pad) array."""
    h, w = shape
    imgs = images.detach().float().cpu().clamp(0, 1).reshape(rows, cols, h, w).numpy()
    out = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad), dtype=np.float32)
    for r in range(rows):
        for c in range(cols):
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            out[y:y + h, x:x + w] = imgs[r, c]
    return out


def save_grid(path: Path, images: torch.Tensor, rows: int, cols: int, shape=(28, 28), scale: int = 2) -> Path:
    """Save rows x cols images as one PNG, each pixel drawn as scale x scale."""
    grid = tile(images, rows, cols, shape)
    grid = np.kron(grid, np.ones((scale, scale), dtype=np.float32))
    plt.imsave(path, grid, cmap="gray", vmin=0.0, vmax=1.0)
    return Path(path)


def save_curves(path: Path, histories: dict[str, dict], title: str = "") -> Path:
    """Training curves: train NELBO / KL / Rec and validation NELBO per iteration, one line per seed."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for seed, hist in histories.items():
        it = hist["iteration"]
        axes[0].plot(it, hist["nelbo"], label=f"train, seed {seed}", lw=1)
        if hist.get("val_iteration"):
            axes[0].plot(hist["val_iteration"], hist["val_nelbo"], "o-", ms=3, label=f"validation, seed {seed}")
        axes[1].plot(it, hist["kl"], lw=1, label=f"seed {seed}")
        axes[2].plot(it, hist["rec"], lw=1, label=f"seed {seed}")
    for ax, name in zip(axes, ["NELBO", "KL", "Rec"]):
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{name} (nats)")
        ax.grid(alpha=0.3)
    # The first iterations dwarf the rest: show the NELBO and Rec from the 5% point on.
    for ax, key in ((axes[0], "nelbo"), (axes[2], "rec")):
        vals = [v for h in histories.values() for v in h[key][max(1, len(h[key]) // 20):]]
        if vals:
            lo, hi = min(vals), max(vals)
            ax.set_ylim(lo - 0.05 * (hi - lo + 1), hi + 0.1 * (hi - lo + 1))
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
