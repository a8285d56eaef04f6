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
        if "nelbo" in hist:
            axes[0].plot(it, hist["nelbo"], label=f"train, seed {seed}", lw=1)
        if hist.get("val_iteration"):
            axes[0].plot(hist["val_iteration"], hist["val_nelbo"], "o-", ms=3, label=f"validation, seed {seed}")
        for ax, key in ((axes[1], "kl"), (axes[2], "rec")):
            if key in hist:
                ax.plot(it, hist[key], lw=1, label=f"train, seed {seed}")
            if hist.get(f"val_{key}"):
                ax.plot(hist["val_iteration"], hist[f"val_{key}"], "o-", ms=3, label=f"validation, seed {seed}")
    for ax, name in zip(axes, ["NELBO", "KL", "Rec"]):
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{name} (nats)")
        ax.grid(alpha=0.3)
    # The first iterations dwarf the rest: show the NELBO and Rec from the 5% point on.
    for ax, key in ((axes[0], "nelbo"), (axes[2], "rec")):
        vals = [v for h in histories.values() for v in h.get(key, [])[max(1, len(h.get(key, [])) // 20):]]
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


# ---------------------------------------------------------------------------------------
# Latent-space figures (image models with an encoder q(z|x) and a decoder E[x|z])
# ---------------------------------------------------------------------------------------
INTERPOLATION_PAIRS = ((2, 7), (0, 1), (1, 4), (4, 9), (9, 5))
LATENT_FIGURES = ("manifold", "scatter", "recon", "interpolate", "samples")


def _y(model, y):
    """Labels for conditional models (one-hot inside the model); None for the others."""
    return y if getattr(model, "CONDITIONAL", False) else None


@torch.inference_mode()
def posterior_means(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 5000) -> torch.Tensor:
    return torch.cat([model.posterior_mean(xb, _y(model, yb)) for xb, yb in zip(x.split(batch_size), y.split(batch_size))])


def principal_directions(z: torch.Tensor, n: int = 2):
    """Mean and the n leading principal directions (rows, unit length) of the points z."""
    mean = z.mean(0)
    _, _, vh = torch.linalg.svd(z - mean, full_matrices=False)
    return mean, vh[:n]


@torch.inference_mode()
def plot_manifold(path, model, test_x, test_y, shape, n: int = 20, span: float = 2.0, label: int = 0):
    """Decode an n x n grid over [-span, span]^2: the latent plane itself for 2D latents, else the
    plane through the test posterior means' centre along their two leading principal directions."""
    ticks = torch.linspace(-span, span, n, device=test_x.device)
    a, b = torch.meshgrid(ticks, -ticks, indexing="xy")   # rows top to bottom: second coordinate decreasing
    grid = torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)
    if model.z_dim == 2:
        z, how = grid, "latent plane"
    else:
        mean, dirs = principal_directions(posterior_means(model, test_x, test_y))
        z, how = mean + grid @ dirs, "plane of the 2 leading principal directions of the test posterior means"
    y = torch.full((len(z),), label, device=z.device, dtype=torch.long)
    save_grid(path, model.mean_x_given_z(z, _y(model, y)), n, n, shape, scale=1)
    return how


@torch.inference_mode()
def plot_scatter(path, model, test_x, test_y, tsne: bool = False, max_points: int = 10_000, tsne_points: int = 2000):
    """Test-set posterior means coloured by class: directly for 2D latents, else PCA (and t-SNE)."""
    z = posterior_means(model, test_x[:max_points], test_y[:max_points]).cpu()
    labels = test_y[:max_points].cpu().numpy()
    panels = []
    if z.shape[1] == 2:
        panels.append(("latent means", z.numpy()))
    else:
        mean, dirs = principal_directions(z)
        panels.append(("PCA of latent means", ((z - mean) @ dirs.T).numpy()))
        if tsne:
            from sklearn.manifold import TSNE
            pts = TSNE(2, init="pca", random_state=0).fit_transform(z[:tsne_points].numpy())
            panels.append((f"t-SNE of latent means ({tsne_points} images)", pts))
            labels_tsne = labels[:tsne_points]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5.2), squeeze=False)
    for i, (ax, (title, pts)) in enumerate(zip(axes[0], panels)):
        lab = labels if i == 0 else labels_tsne
        sc = ax.scatter(pts[:, 0], pts[:, 1], c=lab, cmap="tab10", s=3, alpha=0.7, vmin=-0.5, vmax=9.5)
        ax.set_title(title)
    fig.colorbar(sc, ax=axes[0].tolist(), ticks=range(10), label="class")
    fig.savefig(path, dpi=100)
    plt.close(fig)


@torch.inference_mode()
def plot_recon(path, model, test_x, test_y, shape, n: int = 10):
    """The first n test images (top row) and their reconstructions E[x | z = posterior mean] (bottom)."""
    x, y = test_x[:n], test_y[:n]
    recon = model.mean_x_given_z(model.posterior_mean(x, _y(model, y)), _y(model, y))
    save_grid(path, torch.cat([x, recon]), 2, n, shape)


@torch.inference_mode()
def plot_interpolation(path, model, test_x, test_y, shape, pairs=INTERPOLATION_PAIRS, steps: int = 10):
    """Linear paths between the posterior means of the first test image of each digit in a pair."""
    rows = []
    for a, b in pairs:
        idx = torch.stack([torch.nonzero(test_y == c)[0, 0] for c in (a, b)])
        za, zb = posterior_means(model, test_x[idx], test_y[idx])
        t = torch.linspace(0, 1, steps, device=za.device).unsqueeze(1)
        rows.append(model.mean_x_given_z((1 - t) * za + t * zb, None))
    save_grid(path, torch.cat(rows), len(pairs), steps, shape)


def make_latent_figures(run_dir: Path, model, data, which=LATENT_FIGURES, tsne: bool = False) -> list[Path]:
    """Write the latent-space figures of one trained image model into run_dir; returns their paths."""
    model.eval()
    shape, x, y = data.image_shape, data.test_x, data.test_y
    made = []
    for kind in which:
        path = Path(run_dir) / f"{kind}.png"
        if kind == "manifold":
            plot_manifold(path, model, x, y, shape)
        elif kind == "scatter":
            plot_scatter(path, model, x, y, tsne=tsne)
        elif kind == "recon":
            plot_recon(path, model, x, y, shape)
        elif kind == "interpolate":
            if getattr(model, "CONDITIONAL", False):
                continue   # a path between two classes has no single label to decode with
            plot_interpolation(path, model, x, y, shape)
        elif kind == "samples":
            path = Path(run_dir) / "samples-5x5.png"
            with torch.inference_mode():
                save_grid(path, model.sample_x(25), 5, 5, shape)
        made.append(path)
    return made
