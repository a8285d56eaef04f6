"""Building blocks shared by the recipes and the benchmark scripts (benchmarks/*.py).

Each trains through `train_run` and works on the run folders it writes.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..runs.run import Run
from ..config import TrainConfig
from ..batches import prepare_data
from ..runs.train import resume_run, train_run
from ..pictures import save_figure, save_grid
from ..runs.figures import (draw_interpolation_2d, draw_reconstruction_2d, draw_samples_2d, interpolation_endpoints,
                           interpolation_path, reconstruct)
from ..runs.commands import score_run

# Swiss roll: a 1D latent for the 1D manifold (with z_dim = 2 and sigma0 = 0.1 the decoded prior
# fills the inside of the roll). Three hidden layers of 256 and ~25k iterations: with 128,128 and 10k
# iterations the decoded curve cut across the roll (benchmarks/results/swiss-roll.md records both).
SWISS_ROLL_VAE_OPTIONS = {"likelihood": "gaussian", "sigma": "0.1", "z_dim": 1, "hidden": "256,256,256", "mc_samples": 1}
SWISS_ROLL_VAE_ITERS = 25_000
ON_DATA_DISTANCE = 0.1   # a decoded sample is "on the data" within this distance of a test point (the noise is 0.1)


def share_on_data(samples: torch.Tensor, data: torch.Tensor, tol: float = ON_DATA_DISTANCE) -> float:
    """Share of `samples` within distance tol of some point of `data` (both (N, 2))."""
    return (torch.cdist(samples, data).min(dim=1).values < tol).float().mean().item()
# Denoising: the training corruption level (or range) per noise type; mask p ~ U[0.3, 0.7] as in the course text.
DAE_NOISES = {"mask": "0.3,0.7", "gaussian": "0.3", "salt-pepper": "0.3"}


def seed_model(run: Path, seed: int = 0):
    """The trained model of one seed of a run folder (the weights its results come from), on the CPU."""
    return Run(run).model(seed)


def first_seed_metrics(run: Path) -> dict:
    return next(iter(Run(run).per_seed().values()))


def train_or_resume(cfg: TrainConfig, resume: bool = False) -> Path:
    """train_run(cfg); resume=True continues a run folder cfg.out left by an interrupted recipe (from its last
    checkpoints), and keeps one that is complete as it is."""
    out = Path(cfg.out)
    if resume and (out / "config.json").is_file():
        if Run(out).complete and (out / "report.md").exists():
            return out
        return resume_run(out, threads=cfg.threads, progress=cfg.progress, data_dir=cfg.data_dir)
    return train_run(cfg)


def one_class_aucs(out: Path, dataset: str, classes, model: str = "ae", options: dict | None = None,
                   iters: int = 2000, batch_size: int = 100, lr: float = 1e-3, binarize: str = "auto", seed: int = 0,
                   data_dir=None, threads=None, progress: bool = False, log=print,
                   resume: bool = False) -> dict[int, float]:
    """One-class anomaly detection: for each class c, train on class c only (run folder out/class-c),
    score every test image (reconstruction MSE for autoencoders, NELBO for VAEs) and return the ROC AUC
    of finding the other classes, per class."""
    aucs = {}
    for c in classes:
        cfg = TrainConfig(model=model, dataset=dataset, data_dir=data_dir, out=str(Path(out) / f"class-{c}"),
                          seeds=[seed], iters=iters, batch_size=batch_size, lr=lr, binarize=binarize, iwae_k=[],
                          eval_repeats=1, threads=threads, progress=progress, model_options=dict(options or {}),
                          train_classes=[c])
        run = train_or_resume(cfg, resume)
        aucs[c] = score_run(run, threads=threads, data_dir=data_dir)["auc"]
        if log:
            log(f"class {c}: AUC {aucs[c]:.4f}")
    return aucs


@torch.inference_mode()
def swiss_roll_figure(runs: dict[str, Path], path: Path) -> dict[str, dict[str, float]]:
    """Rows: the models of `runs` ({'ae': run, 'vae': run}); columns: test reconstructions, decoded
    z ~ N(0, I), latent interpolation between the leftmost and rightmost test points. Returns, per
    model, the test MSE of reconstructions at the code (posterior mean for the VAE) and the share
    of 2,000 decoded prior samples lying on the data (share_on_data)."""
    import matplotlib.pyplot as plt   # pyplot only here: importing it chooses a display backend

    data = prepare_data(TrainConfig(dataset="swiss-roll").validate(), torch.device("cpu"))
    x = data.test_x
    a, b = interpolation_endpoints(x)
    fig, axes = plt.subplots(len(runs), 3, figsize=(13, 4.3 * len(runs)), squeeze=False)
    torch.manual_seed(0)
    scores = {}
    for row, (name, run) in enumerate(runs.items()):
        model = seed_model(run)
        label = "AE" if name == "ae" else "Gaussian VAE" if name == "vae" else name
        recon = reconstruct(model, x)
        samples = model.sample(2000)
        scores[name] = {"mse": ((recon - x) ** 2).mean().item(), "on_data": share_on_data(samples, x)}
        draw_reconstruction_2d(axes[row, 0], x, recon, f"{label}: reconstructions (MSE {scores[name]['mse']:.4f})")
        draw_samples_2d(axes[row, 1], x, samples,
                        f"{label}: decoded z ~ N(0, I) ({scores[name]['on_data']:.0%} on the data)")
        draw_interpolation_2d(axes[row, 2], x, interpolation_path(model, x[a], x[b]), f"{label}: latent interpolation")
    for ax in axes.flat:
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
    return scores


@torch.inference_mode()
def denoising_triplets(runs: dict[str, Path], path: Path, n: int = 12, data_dir=None) -> Path:
    """(original, corrupted, denoised) rows of the first n test images for each denoising run
    ({noise type: run}), corrupted at the middle of the run's training level range (seed 0)."""
    rows, data = [], None
    for run in runs.values():
        data = data or Run(run).data("cpu", data_dir=data_dir)
        model = seed_model(run)
        x = data.test_x_grey[:n]
        noisy = model.corrupt(x, model.eval_level, torch.Generator().manual_seed(0))
        rows += [x, noisy, model.denoise(noisy)]
    return save_grid(path, torch.cat(rows), 3 * len(runs), n, data.image_shape)


def metrics_of(run: Path) -> dict:
    """metrics.json of a run folder: per_seed, mean_se, machine, ..."""
    return Run(run).metrics
