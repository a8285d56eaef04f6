"""Figures: image grids, latent-space pictures and training curves.

Two kinds of function:

* for notebooks, functions that return a matplotlib `Figure` (shown inline when it is a cell's
  value; `save=` also writes it as a PNG): `samples`, `reconstructions`, `manifold`, `scatter`,
  `interpolation`, `curves`, `grid`;
* for run folders, `save_*` / `plot_*` functions that write PNGs atomically (pixel-exact grids).

Figures are built as `matplotlib.figure.Figure` objects, never through pyplot's global state, so
importing vaelab leaves matplotlib's backend alone (the `vaelab` command chooses Agg for itself).

The model-specific figures of a run (2D points, autoencoders) are in runs/figures.py.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .codes import encode_all, nearest
from .errors import VaelabError, positive_int
from .models import model_class
from .models.base import checked_model
from .pictures import (Figure, check_grid, grid_figure, image_shape, save_figure, save_grid,
                       subplots)
from .runs.run import Run


def save_curves(path: Path, histories: dict[str, dict], title: str = "", keys=("nelbo", "kl", "rec")) -> Path:
    """Write curves_figure(histories, title, keys) as a PNG."""
    return save_figure(curves_figure(histories, title, keys), path, dpi=100)


def curves_figure(histories: dict[str, dict], title: str = "", keys=("nelbo", "kl", "rec")) -> Figure:
    """Training curves of the loss terms `keys` per iteration, one line per seed; the first panel also
    shows the validation value of keys[0] (validation NELBO for VAEs, validation loss for autoencoders)."""
    fig, axes = subplots(len(keys), figsize=(4.4 * len(keys), 3.6))
    axes = np.atleast_1d(axes)
    units = " (nats)" if keys[0] == "nelbo" else ""
    for seed, hist in histories.items():
        it = hist["iteration"]
        if keys[0] in hist:
            axes[0].plot(it, hist[keys[0]], label=f"train, seed {seed}", lw=1)
        if hist.get("val_iteration") and hist.get(f"val_{keys[0]}"):
            axes[0].plot(hist["val_iteration"], hist[f"val_{keys[0]}"], "o-", ms=3, label=f"validation, seed {seed}")
        for ax, key in zip(axes[1:], keys[1:]):
            if key in hist:
                ax.plot(it, hist[key], lw=1, label=f"train, seed {seed}")
            if hist.get(f"val_{key}"):
                ax.plot(hist["val_iteration"], hist[f"val_{key}"], "o-", ms=3, label=f"validation, seed {seed}")
    for ax, name in zip(axes, keys):
        ax.set_xlabel("iteration")
        ax.set_ylabel({"nelbo": "NELBO", "kl": "KL", "rec": "Rec"}.get(name, name) + units)
        ax.grid(alpha=0.3)
    # The first iterations dwarf the rest: show the first and last panels from the 5% point on.
    for ax, key in ((axes[0], keys[0]), (axes[-1], keys[-1])):
        vals = [v for h in histories.values() for v in h.get(key, [])[max(1, len(h.get(key, [])) // 20):]]
        if vals:
            lo, hi = min(vals), max(vals)
            pad = hi - lo if keys[0] != "nelbo" else hi - lo + 1
            ax.set_ylim(lo - 0.05 * pad, hi + 0.1 * pad + 1e-12)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------
# Latent-space figures (image models with an encoder q(z|x) and a decoder E[x|z])
# ---------------------------------------------------------------------------------------
INTERPOLATION_PAIRS = ((2, 7), (0, 1), (1, 4), (4, 9), (9, 5))
LATENT_FIGURES = ("manifold", "scatter", "recon", "interpolate", "samples")
PLANE_FIGURES = ("manifold", "scatter")   # they draw a plane of the latent space: z_dim >= 2


def figure_unavailable(model, figure: str) -> str | None:
    """Why the latent figure `figure` (one of LATENT_FIGURES) cannot be drawn for `model`, naming the fix; None
    when it can. The one rule that the run's figures, `vaelab plot` and the notebook functions follow."""
    if figure in PLANE_FIGURES and model.z_dim < 2:
        return (f"the {figure} figure draws a plane of the latent space, and {type(model).__name__}'s has "
                f"z_dim = {model.z_dim}; train with z_dim >= 2 for it (recon, interpolate and samples work)")
    if figure == "interpolate" and model.conditional:
        return (f"interpolate: {type(model).__name__} is conditional, and a path between two test images of "
                f"different classes has no one label to decode with; draw another figure, or an unconditional model")
    return None


def require_figure(model, figure: str) -> None:
    """Raise VaelabError with figure_unavailable's reason when `figure` cannot be drawn for `model`."""
    reason = figure_unavailable(model, figure)
    if reason:
        raise VaelabError(reason)


@torch.inference_mode()
def posterior_means(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 5000) -> torch.Tensor:
    return torch.cat([model.posterior_mean(xb, yb) for xb, yb in zip(x.split(batch_size), y.split(batch_size))])


def principal_directions(z: torch.Tensor, n: int = 2):
    """Mean and the n leading principal directions (rows, unit length) of the points z."""
    mean = z.mean(0)
    _, _, vh = torch.linalg.svd(z - mean, full_matrices=False)
    return mean, vh[:n]


def plot_manifold(path, model, test_x, test_y, shape, n: int = 20, span: float = 2.0, label: int = 0) -> str:
    """Write manifold_images as an n x n grid PNG; returns which plane it shows."""
    images, how = manifold_images(model, test_x, test_y, n, span, label)
    save_grid(path, images, n, n, shape, scale=1)
    return how


@torch.inference_mode()
def manifold_images(model, test_x, test_y, n: int = 20, span: float = 2.0, label: int = 0):
    """(images, plane): decode an n x n grid over [-span, span]^2: the latent plane itself for 2D latents,
    else the plane through the test posterior means' centre along their two leading principal directions."""
    require_figure(model, "manifold")
    ticks = torch.linspace(-span, span, n, device=test_x.device)
    a, b = torch.meshgrid(ticks, -ticks, indexing="xy")   # rows top to bottom: second coordinate decreasing
    grid = torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)
    if model.z_dim == 2:
        z, how = grid, "latent plane"
    else:
        mean, dirs = principal_directions(posterior_means(model, test_x, test_y))
        z, how = mean + grid @ dirs, "plane of the 2 leading principal directions of the test posterior means"
    y = torch.full((len(z),), label, device=z.device, dtype=torch.long)
    return model.mean_x_given_z(z, y), how


def plot_scatter(path, model, test_x, test_y, tsne: bool = False) -> Path:
    """Write scatter_figure as a PNG."""
    return save_figure(scatter_figure(model, test_x, test_y, tsne), path, dpi=100)


@torch.inference_mode()
def scatter_figure(model, test_x, test_y, tsne: bool = False, max_points: int = 10_000, tsne_points: int = 2000) -> Figure:
    """Test-set posterior means coloured by class: directly for 2D latents, else PCA (and t-SNE)."""
    require_figure(model, "scatter")
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
    fig, axes = subplots(len(panels), figsize=(6 * len(panels), 5.2), squeeze=False)
    for i, (ax, (title, pts)) in enumerate(zip(axes[0], panels)):
        lab = labels if i == 0 else labels_tsne
        sc = ax.scatter(pts[:, 0], pts[:, 1], c=lab, cmap="tab10", s=3, alpha=0.7, vmin=-0.5, vmax=9.5)
        ax.set_title(title)
    fig.colorbar(sc, ax=axes[0].tolist(), ticks=range(10), label="class")
    return fig


@torch.inference_mode()
def recon_images(model, test_x, test_y, n: int = 10) -> torch.Tensor:
    """The first n test images (first row) and their reconstructions E[x | z = posterior mean] (second)."""
    x, y = test_x[:n], test_y[:n]
    return torch.cat([x, model.mean_x_given_z(model.posterior_mean(x, y), y)])


def plot_recon(path, model, test_x, test_y, shape, n: int = 10) -> Path:
    return save_grid(path, recon_images(model, test_x, test_y, n), 2, n, shape)


def plot_interpolation(path, model, test_x, test_y, shape, labelled: bool = True, steps: int = 10) -> Path:
    """The run's interpolation figure: between classes (INTERPOLATION_PAIRS where the data have those classes,
    else neighbouring classes), or for unlabelled data between test images 0 and 1, 2 and 3, ..."""
    present = sorted(set(test_y.tolist())) if labelled else []
    if len(present) < 2:
        pairs, between = tuple((2 * i, 2 * i + 1) for i in range(min(5, len(test_x) // 2))), "images"
    elif all(c in present for pair in INTERPOLATION_PAIRS for c in pair):
        pairs, between = INTERPOLATION_PAIRS, "classes"
    else:
        pairs, between = tuple(zip(present[:5], present[1:6])), "classes"
    images = interpolation_images(model, test_x, test_y, pairs, steps, between)
    return save_grid(path, images, len(pairs), steps, shape)


@torch.inference_mode()
def interpolation_images(model, test_x, test_y, pairs=INTERPOLATION_PAIRS, steps: int = 10,
                         between: str = "classes") -> torch.Tensor:
    """Linear paths between the posterior means of two images, a row each: of the first test image of each
    class in a pair (between="classes"), or of test images test_x[a] and test_x[b] (between="images")."""
    require_figure(model, "interpolate")
    rows = []
    for a, b in pairs:
        if between == "images":
            bad = [i for i in (a, b) if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(test_x)]
            if bad:
                raise VaelabError(f"pairs {(a, b)}: {bad[0]!r} is not an index of x (0..{len(test_x) - 1}); give "
                                  f"pairs of image indices")
            idx = torch.tensor([a, b], device=test_x.device)
            za, zb = posterior_means(model, test_x[idx], test_y[idx])
            t = torch.linspace(0, 1, steps, device=za.device).unsqueeze(1)
            rows.append(model.mean_x_given_z((1 - t) * za + t * zb, None))
            continue
        missing = [c for c in (a, b) if not (test_y == c).any()]
        if missing:
            raise VaelabError(f"pairs {(a, b)}: no image of class {missing[0]} in y; pair classes that occur in y")
        idx = torch.stack([torch.nonzero(test_y == c)[0, 0] for c in (a, b)])
        za, zb = posterior_means(model, test_x[idx], test_y[idx])
        t = torch.linspace(0, 1, steps, device=za.device).unsqueeze(1)
        rows.append(model.mean_x_given_z((1 - t) * za + t * zb, None))
    return torch.cat(rows)


def make_latent_figures(run_dir: Path, model, data, which=LATENT_FIGURES, tsne: bool = False) -> list[Path]:
    """Write the latent-space figures of one trained image model into run_dir; returns their paths."""
    model.eval()
    shape, x, y = data.picture_shape, data.test_x, data.test_y
    made = []
    for kind in which:
        path = Path(run_dir) / f"{kind}.png"
        if figure_unavailable(model, kind):
            continue   # e.g. no plane in a 1-dimensional latent space (plot_run refuses it with the reason)
        if kind == "manifold":
            plot_manifold(path, model, x, y, shape)
        elif kind == "scatter":
            plot_scatter(path, model, x, y, tsne=tsne)
        elif kind == "recon":
            plot_recon(path, model, x, y, shape)
        elif kind == "interpolate":
            plot_interpolation(path, model, x, y, shape, getattr(data, "labelled", True))
        elif kind == "samples":
            path = Path(run_dir) / "samples-5x5.png"
            with torch.inference_mode():
                save_grid(path, model.sample(25), 5, 5, shape)
        made.append(path)
    return made


# ---------------------------------------------------------------------------------------
# For notebooks: functions that return a Figure (shown inline; save= writes a PNG as well)
# ---------------------------------------------------------------------------------------
def _shape(model_or_dim, shape):
    """The image shape to draw: the one given, else the model's own (C, H, W), else a square of x_dim pixels."""
    if isinstance(model_or_dim, int):
        return image_shape(model_or_dim, shape)
    return image_shape(model_or_dim.x_dim, shape, getattr(model_or_dim, "image_shape", None))


def _model(model):
    """The model a figure draws from, checked (models.base.checked_model), in evaluation mode."""
    return checked_model(model).eval()


def _done(fig: Figure, save) -> Figure:
    if save is not None:
        save_figure(fig, save)
    return fig


def grid(images: torch.Tensor, rows: int, cols: int, shape=None, title: str | None = None, save=None) -> Figure:
    """rows x cols images (each a row of x_dim values in [0, 1]; a tensor or an array) as one picture, grey for
    shape (H, W), colour for (C, H, W)."""
    return _done(grid_figure(images, rows, cols, shape, title), save)


def samples(model, rows: int = 10, cols: int = 20, y=None, binary: bool = False, shape=None, save=None) -> Figure:
    """rows x cols draws from the model's p(x) (conditional models: a row per class unless y is given)."""
    model = _model(model)
    rows, cols = positive_int("rows", rows, "grid rows"), positive_int("cols", cols, "images per row")
    check_grid(rows, cols)
    with torch.inference_mode():
        if model.conditional and y is None:
            rows = model.n_classes
            images = model.sample_by_class(cols)
        else:
            images = model.sample(rows * cols, y, binary=binary)
    return grid(images, rows, cols, _shape(model, shape), save=save)


def reconstructions(model, x: torch.Tensor, y=None, n: int = 10, shape=None, save=None) -> Figure:
    """The first n images of x (top row) over their reconstructions (bottom row)."""
    model = _model(model)
    n = positive_int("n", n, "images reconstructed")
    with torch.inference_mode():
        xs = model._inputs(x[:n])
        images = torch.cat([xs, model.reconstruct(xs, None if y is None else y[:n])])
    return grid(images, 2, len(xs), _shape(model, shape), save=save)


def manifold(model, x: torch.Tensor, y=None, n: int = 20, span: float = 2.0, label: int = 0, shape=None,
             save=None) -> Figure:
    """Images decoded over an n x n grid of the latent plane (2D latents) or of the plane of the two leading
    principal directions of x's codes (x, y: e.g. the test set)."""
    model = _model(model)
    n = positive_int("n", n, "images per side of the grid")
    if isinstance(span, bool) or not isinstance(span, (int, float)) or not span > 0:
        raise VaelabError(f"span must be positive (the grid covers [-span, span] on both axes), got {span!r}")
    y = torch.zeros(len(x), dtype=torch.long, device=x.device) if y is None else y
    images, how = manifold_images(model, x, y, n, span, label)
    return grid(images, n, n, _shape(model, shape), title=how, save=save)


def scatter(model, x: torch.Tensor, y: torch.Tensor, tsne: bool = False, save=None) -> Figure:
    """The codes of x coloured by class y: directly for 2D latents, else their first two principal components."""
    model = _model(model)
    if y is None or len(y) != len(x):
        got = "none" if y is None else f"{len(y)} for {len(x)} images"
        raise VaelabError(f"y must hold one class label per image of x (the scatter colours the codes by class), "
                          f"got {got}")
    return _done(scatter_figure(model, x, y, tsne), save)


def interpolation(model, x: torch.Tensor, y: torch.Tensor | None = None, pairs=INTERPOLATION_PAIRS, steps: int = 10,
                  shape=None, save=None, between: str = "classes") -> Figure:
    """For each pair (a, b), the decoded straight line between two codes: those of x's first image of class a
    and first of class b, or with between="images" those of x[a] and x[b] (two images you choose)."""
    model = _model(model)
    if between not in ("classes", "images"):
        raise VaelabError(f"between must be 'classes' or 'images', got {between!r}")
    if y is None:
        if between == "classes":
            raise VaelabError("y is needed to find the classes of pairs; pass y, or between='images' with pairs of "
                              "image indices")
        y = torch.zeros(len(x), dtype=torch.long, device=x.device)
    if positive_int("steps", steps, "images per path") < 2:
        raise VaelabError(f"steps must be at least 2 (a path from one code to the other), got {steps}")
    if not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
        raise VaelabError(f"pairs must be pairs of classes (or of image indices) such as ((2, 7), (0, 1)), got "
                          f"{pairs!r}")
    images = interpolation_images(model, x, y, pairs, steps, between)
    return grid(images, len(pairs), steps, _shape(model, shape), save=save)


def neighbours(run, queries=None, k: int = 8, seed: int | None = None, save=None) -> Figure:
    """Retrieval in code space: each query image (a row) followed by the k training images whose codes are
    nearest to its code, nearest first. run: a Run or run folder; queries: images as rows of values in
    [0, 1] (or an array of images of the run's shape); default: the first 8 test images."""
    run = Run(run) if isinstance(run, (str, os.PathLike)) else run
    if not isinstance(run, Run):
        raise VaelabError(f"run must be a Run or a run folder, got {type(run).__name__}")
    model = run.model(seed)
    data = run.data(next(model.parameters()).device, whole_training_set=True)
    if data.picture_shape is None:
        raise VaelabError(f"{run.path}: the run's data are points, not images; neighbours draws images")
    images, _ = neighbour_images(model, data, queries, k)
    return grid(images, len(images) // (k + 1), k + 1, data.picture_shape,
                title=f"query, then its {k} nearest training images in code space", save=save)


@torch.inference_mode()
def neighbour_images(model, data, queries=None, k: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows of [query, its k nearest training images], their training indices (n_queries, k))."""
    if model.conditional:
        raise VaelabError(f"{type(model).__name__} is conditional: its codes depend on the label, so images of "
                          f"unknown class have none to compare; use a run of a model without labels")
    device = data.train_x.device
    q = data.test_x_grey[:8] if queries is None else torch.as_tensor(queries, dtype=torch.float32, device=device)
    q = q.reshape(len(q), -1)
    if q.shape[1] != data.x_dim:
        raise VaelabError(f"queries hold {q.shape[1]} values per image, the run's images {data.x_dim} "
                          f"({data.picture_shape}); give images of the run's shape")
    _, idx = nearest(encode_all(model, data.train_x), model.encode(q), k)
    rows = [torch.cat([q[i:i + 1], data.train_x[idx[i]]]) for i in range(len(q))]
    return torch.cat(rows), idx


def curves(run, save=None) -> Figure:
    """The training curves of every finished seed of a Run, or of a run folder, or of a dict seed -> history."""
    if isinstance(run, (str, os.PathLike)):
        run = Run(run)
    if not isinstance(run, (Run, dict)):
        raise VaelabError(f"run must be a Run, a run folder or a dict seed -> history, got {type(run).__name__}")
    if isinstance(run, Run):
        histories = {str(s): run.history(s) for s in run.seeds if (run.seed_dir(s) / "history.json").exists()}
        keys, title = model_class(run.config.model).REPORT.curves, f"{run.config.model} on {run.config.dataset}"
    else:
        histories, title = dict(run), ""
        keys = ("loss", "rec", "penalty") if "nelbo" not in next(iter(histories.values())) else ("nelbo", "kl", "rec")
    if not histories:
        raise VaelabError("no seed has finished training yet, so there are no curves")
    return _done(curves_figure(histories, title, keys), save)
