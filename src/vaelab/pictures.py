"""Pictures: image grids in grey or colour, matplotlib Figures that notebooks show, atomic PNG files.

An image is a row of values in [0, 1]; its shape is (H, W) for grey images, or (C, H, W), channels first,
for colour (C = 3, or 4 with alpha). `tile` lays rows x cols of them out on one canvas, `save_grid` writes
the canvas as a pixel-exact PNG, `grid_figure` shows it as a Figure.

Figures are built as `matplotlib.figure.Figure` objects, never through pyplot's global state, so
importing vaelab leaves matplotlib's backend alone (the `vaelab` command chooses Agg for itself).
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib.figure
import matplotlib.image
import numpy as np
import torch

from .errors import VaelabError, arg
from .storage import atomic_write_bytes

MAX_GRID = 10_000   # images in one grid (a 100x100 grid of digits is a 6,000-pixel square)


class Figure(matplotlib.figure.Figure):
    """A matplotlib Figure that a notebook shows as a PNG when it is a cell's value, with or without
    `%matplotlib inline` (vaelab never imports pyplot, whose inline backend would otherwise do it)."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        return buf.getvalue()


def save_figure(fig: matplotlib.figure.Figure, path: Path, dpi: int = 100) -> Path:
    """Render a figure to PNG and write it atomically (a crash never leaves half a picture)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def subplots(ncols: int = 1, figsize=(6, 4), squeeze: bool = True):
    """(Figure, axes) of one row of `ncols` panels."""
    fig = Figure(figsize=figsize)
    axes = fig.subplots(1, ncols, squeeze=squeeze)
    return fig, axes


def check_grid(rows: int, cols: int) -> None:
    """At most MAX_GRID images in one grid (VaelabError naming the two arguments)."""
    if rows * cols > MAX_GRID:
        raise VaelabError(f"{arg('rows', rows)} x {arg('cols', cols)} = {rows * cols:,} images: at most {MAX_GRID:,} per "
                          f"grid; draw several smaller grids")


def image_shape(x_dim: int, shape=None, known=None) -> tuple[int, ...]:
    """The shape to draw rows of x_dim values as: `shape` if given ((H, W) or (C, H, W), checked), else `known`
    (e.g. a model's (C, H, W)), else a square grey image."""
    if shape is not None:
        dims = tuple(int(d) for d in shape)
        if len(dims) not in (2, 3) or int(np.prod(dims)) != x_dim or (len(dims) == 3 and dims[0] not in (1, 3, 4)):
            raise VaelabError(f"shape={tuple(shape)}: give (height, width), or (channels, height, width) with 1, 3 "
                              f"or 4 channels, holding the {x_dim} values per example")
        return dims[1:] if len(dims) == 3 and dims[0] == 1 else dims
    if known is not None:
        return image_shape(x_dim, known)
    side = int(round(x_dim ** 0.5))
    if side * side != x_dim:
        raise VaelabError(f"{x_dim} values per example are not a square grey image; pass shape=(height, width) or "
                          f"(channels, height, width)")
    return side, side


def tile(images: torch.Tensor, rows: int, cols: int, shape: tuple[int, ...], pad: int = 2) -> np.ndarray:
    """(rows*cols, C*H*W) images in [0, 1] -> one canvas of (rows*(H+pad)+pad, cols*(W+pad)+pad) grey values, or
    of that many (C,) colours for a shape (C, H, W) with C > 1; white between the images."""
    c, (h, w) = (shape[0], shape[1:]) if len(shape) == 3 else (1, shape)
    imgs = images.detach().float().cpu().clamp(0, 1).reshape(rows, cols, c, h, w).permute(0, 1, 3, 4, 2).numpy()
    out = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.float32)
    for r in range(rows):
        for col in range(cols):
            y, x = pad + r * (h + pad), pad + col * (w + pad)
            out[y:y + h, x:x + w] = imgs[r, col]
    return out[..., 0] if c == 1 else out


def save_grid(path: Path, images: torch.Tensor, rows: int, cols: int, shape=(28, 28), scale: int = 2) -> Path:
    """Save rows x cols images of `shape` ((H, W) grey, (C, H, W) colour) as one PNG, each pixel drawn as
    scale x scale."""
    canvas = tile(images, rows, cols, image_shape(images.shape[-1], shape))
    canvas = np.repeat(np.repeat(canvas, scale, axis=0), scale, axis=1)
    buf = io.BytesIO()
    matplotlib.image.imsave(buf, canvas, cmap="gray", vmin=0.0, vmax=1.0, format="png")
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def grid_figure(images: torch.Tensor, rows: int, cols: int, shape=None, title: str | None = None) -> Figure:
    """rows x cols images (rows of values in [0, 1]; a tensor or an array) as one grey or colour picture."""
    check_grid(rows, cols)
    images = torch.as_tensor(images)
    images = images.reshape(len(images), -1) if images.dim() > 2 else images
    if len(images) < rows * cols:
        raise VaelabError(f"grid of rows={rows} x cols={cols} needs {rows * cols} images, got {len(images)}")
    canvas = tile(images[:rows * cols], rows, cols, image_shape(images.shape[-1], shape))
    h, w = canvas.shape[:2]
    fig = Figure(figsize=(max(2.0, w / 40), max(1.0, h / 40) + (0.3 if title else 0)))
    ax = fig.add_axes((0, 0, 1, 1 if not title else 0.92))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
