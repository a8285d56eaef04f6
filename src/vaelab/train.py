"""The trainer: one loop for every model, and a whole run (seeds -> evaluation -> figures -> report).

Training data live as tensors on the device; a batch is an index into them plus, for
dynamic binarization, one uniform draw compared with the grey levels. No per-item Python
data pipeline runs inside the loop.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import platform
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from . import __version__
from .data import BINARIZE_MODES, STATIC_BINARIZATION_SEED, binarize_static, labelled_subset, load_dataset, split_validation
from .data.toy import is_toy
from .errors import VaelabError
from .evaluate import evaluate_elbo, evaluate_model
from .models import MODELS, build_model
from .runs import prepare_run_dir, save_checkpoint, summarise, write_json


SAMPLE_ROWS, SAMPLE_COLS = 10, 20   # the sample grid every image run writes
OPTIMIZERS = ("auto", "adam", "adamw")


@dataclass
class TrainConfig:
    model: str = "vae"
    dataset: str = "mnist-5k"
    data_dir: str | None = None
    out: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    iters: int | None = None          # None: the model's DEFAULT_ITERS
    batch_size: int = 100
    lr: float = 1e-3
    binarize: str = "auto"            # auto: none for continuous data and autoencoders, else dynamic
    val_size: int = 1000
    eval_every: int = 1000
    log_every: int = 100
    checkpoint_every: int = 5000
    iwae_k: list[int] = field(default_factory=lambda: [1, 10, 100])
    eval_repeats: int = 10
    device: str = "auto"
    threads: int | None = None
    progress: bool = True
    model_options: dict = field(default_factory=dict)
    optimizer: str = "auto"           # auto: the model's DEFAULT_OPTIMIZER (adamw for autoencoders), else adam
    train_classes: list[int] | None = None   # train (and validate) on these classes only (one-class training)
    fresh_batches: bool = False       # toy data: a fresh draw for every batch instead of the fixed sample

    def validate(self) -> "TrainConfig":
        if self.model not in MODELS:
            raise VaelabError(f"unknown model {self.model!r}: choose one of {', '.join(MODELS)}")
        if self.iters is None:
            self.iters = MODELS[self.model][0].DEFAULT_ITERS
        for name in ("iters", "batch_size", "eval_every", "log_every", "checkpoint_every", "eval_repeats"):
            if getattr(self, name) <= 0:
                raise VaelabError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise VaelabError(f"--lr must be a positive number, got {self.lr}")
        if self.val_size < 0:
            raise VaelabError(f"--val-size must be >= 0, got {self.val_size}")
        if not self.seeds:
            raise VaelabError("--seeds needs at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise VaelabError(f"--seeds has repeated values {self.seeds}; give distinct seeds")
        if any(k <= 0 for k in self.iwae_k):
            raise VaelabError(f"--iwae-k values must be positive, got {self.iwae_k}")
        cls = MODELS[self.model][0]
        if self.binarize not in ("auto", *BINARIZE_MODES):
            raise VaelabError(f"--binarize must be one of auto, {', '.join(BINARIZE_MODES)}, got {self.binarize!r}")
        if is_toy(self.dataset) and self.binarize not in ("auto", "none"):
            raise VaelabError(f"--binarize {self.binarize}: {self.dataset} is continuous data, which cannot be "
                              "binarized; use --binarize none (or auto)")
        if self.binarize == "auto":
            self.binarize = "none" if is_toy(self.dataset) else getattr(cls, "DEFAULT_BINARIZE", "dynamic")
        if self.optimizer not in OPTIMIZERS:
            raise VaelabError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.optimizer == "auto":
            self.optimizer = getattr(cls, "DEFAULT_OPTIMIZER", "adam")
        if self.fresh_batches and not is_toy(self.dataset):
            raise VaelabError(f"--fresh-batches: only the generated toy data sets can draw fresh batches, "
                              f"not {self.dataset}; drop the option")
        if self.train_classes is not None and not self.train_classes:
            raise VaelabError("--classes needs at least one class")
        beta = self.model_options.get("beta")
        if beta is not None and not (beta > 0 and math.isfinite(beta)):
            raise VaelabError(f"--beta must be a positive number, got {beta}")
        if self.threads is not None and self.threads <= 0:
            raise VaelabError(f"--threads must be a positive integer, got {self.threads}")
        resolve_device(self.device)
        return self


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise VaelabError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise VaelabError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


# ---------------------------------------------------------------------------------------
# Data on the device
# ---------------------------------------------------------------------------------------
@dataclass
class DeviceData:
    """Training, validation and test tensors on the device, ready for the trainer."""
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor          # evaluation inputs: fixed binarization unless --binarize none
    val_y: torch.Tensor
    test_x: torch.Tensor         # evaluation inputs, like val_x
    test_y: torch.Tensor
    test_x_grey: torch.Tensor    # the test images' grey levels
    image_shape: tuple[int, int] | None   # None: 2D points (toy data), not images
    binarize: str
    source: str
    sampler: object = None       # toy data: sampler(n) -> a fresh (x, y) draw on the CPU

    @property
    def x_dim(self) -> int:
        return self.train_x.shape[1]


def prepare_data(cfg: TrainConfig, device: torch.device) -> DeviceData:
    ds = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    train_x, train_y = ds.train_x, ds.train_y
    if cfg.train_classes is not None:   # one-class (or few-class) training; the test set stays whole
        unknown = sorted(set(cfg.train_classes) - set(range(len(ds.classes))))
        if unknown:
            raise VaelabError(f"--classes {unknown}: {cfg.dataset} has classes 0..{len(ds.classes) - 1}")
        keep = torch.isin(train_y, torch.tensor(cfg.train_classes))
        train_x, train_y = train_x[keep], train_y[keep]
    n_val = min(cfg.val_size, len(train_x) // 10)
    train_x, train_y, val_x, val_y = split_validation(train_x, train_y, n_val, seed=0)
    test_x = ds.test_x
    if cfg.binarize != "none":   # evaluation always on one fixed, seeded draw
        val_x = binarize_static(val_x, seed=STATIC_BINARIZATION_SEED + 1)
        test_x = binarize_static(test_x, seed=STATIC_BINARIZATION_SEED)
    if cfg.binarize == "static":
        train_x = binarize_static(train_x, seed=STATIC_BINARIZATION_SEED + 2)
    to = lambda t: t.to(device)  # noqa: E731
    return DeviceData(to(train_x), to(train_y), to(val_x), to(val_y), to(test_x), to(ds.test_y), to(ds.test_x),
                      tuple(ds.image_shape) if ds.image_shape else None, cfg.binarize, ds.source,
                      ds.sampler if cfg.fresh_batches else None)


class Batches:
    """Endless minibatches: shuffled epochs over tensors on the device, binarized per batch if dynamic,
    or (toy data with a sampler) a fresh draw of batch_size points every time."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, dynamic: bool, sampler=None):
        if batch_size > len(x):
            raise VaelabError(f"--batch-size {batch_size} is larger than the training set ({len(x)} images); lower it")
        self.x, self.y, self.batch_size, self.dynamic, self.sampler = x, y, batch_size, dynamic, sampler
        self.order = torch.empty(0, dtype=torch.long, device=x.device)
        self.pos = 0

    def __next__(self):
        if self.sampler is not None:
            x, y = self.sampler(self.batch_size)
            return x.to(self.x.device), y.to(self.y.device)
        if self.pos + self.batch_size > len(self.order):
            self.order = torch.randperm(len(self.x), device=self.x.device)
            self.pos = 0
        idx = self.order[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        x = self.x[idx]
        if self.dynamic:   # a fresh Bernoulli draw: P(pixel = 1) = grey level
            x = (torch.rand_like(x) < x).to(x.dtype)
        return x, self.y[idx]


# ---------------------------------------------------------------------------------------
# One model, one seed
# ---------------------------------------------------------------------------------------
def fit(model, data: DeviceData, cfg: TrainConfig, seed_dir: Path | None = None, seed: int = 0) -> dict:
    """Adam (or AdamW, cfg.optimizer) on model.loss for cfg.iters iterations; returns the training history."""
    device = data.train_x.device
    Opt = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt = Opt(model.parameters(), lr=cfg.lr, **_fused_adam(device))
    dynamic = cfg.binarize == "dynamic"
    batches = Batches(data.train_x, data.train_y, cfg.batch_size, dynamic, data.sampler)
    labelled = None
    if getattr(model, "labels_per_class", None):   # semi-supervised: a small labelled subset, every batch
        xl, yl = labelled_subset(data.train_x, data.train_y, model.labels_per_class, model.label_seed)
        labelled = Batches(xl, yl, min(cfg.batch_size, len(xl)), dynamic)
    val_key = model.ELBO_TERMS[0]   # nelbo for VAEs, loss for autoencoders
    hist = {"iteration": [], "val_iteration": [], f"val_{val_key}": []}
    window = {}
    check_each_step = device.type == "cpu"   # a .item() per step is free on CPU, a sync on GPU
    last_ckpt = None
    bar = tqdm(total=cfg.iters, desc=f"train {cfg.model} seed {seed}", disable=not cfg.progress,
               mininterval=0.5, unit="it")
    t0 = time.perf_counter()
    model.train()
    for it in range(1, cfg.iters + 1):
        x, y = next(batches)
        loss, terms = model.loss(x, y) if labelled is None else model.loss(x, y, labelled=next(labelled))
        if check_each_step and not math.isfinite(loss.item()):
            _diverged(it, terms, last_ckpt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        terms = {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}}
        for k, v in terms.items():
            window[k] = window.get(k, 0.0) + v
        if it % cfg.log_every == 0 or it == cfg.iters:
            n = cfg.log_every if it % cfg.log_every == 0 else it % cfg.log_every
            means = {k: (v / n).item() for k, v in window.items()}
            window = {}
            if not math.isfinite(means["loss"]):
                _diverged(it, means, last_ckpt)
            hist["iteration"].append(it)
            for k, v in means.items():
                hist.setdefault(k, []).append(v)
            bar.set_postfix({k.upper() if k != "rec" else "Rec": f"{means[k]:.2f}" for k in ("nelbo", "kl", "rec") if k in means},
                            refresh=False)
            bar.update(it - bar.n)
        if len(data.val_x) and (it % cfg.eval_every == 0 or it == cfg.iters):
            hist["val_iteration"].append(it)
            hist[f"val_{val_key}"].append(evaluate_elbo(model, data.val_x, repeats=1)[val_key])
            model.train()
        if seed_dir is not None and (it % cfg.checkpoint_every == 0 or it == cfg.iters):
            last_ckpt = (it, seed_dir / "checkpoint.pt")
            save_checkpoint(last_ckpt[1], _checkpoint_state(model, opt, cfg, it, seed, data))
    bar.close()
    seconds = time.perf_counter() - t0
    hist["train_seconds"] = seconds
    hist["iters_per_second"] = cfg.iters / seconds
    return hist


def _fused_adam(device: torch.device) -> dict:
    # The fused kernel does the whole Adam update in one pass over the parameters.
    return {"fused": True} if device.type in ("cpu", "cuda") else {}


def _diverged(it: int, terms: dict, last_ckpt) -> None:
    bad = [k for k, v in terms.items() if not math.isfinite(float(v.detach() if torch.is_tensor(v) else v))]
    where = (f"the last good checkpoint is kept at {last_ckpt[1]} (iteration {last_ckpt[0]})" if last_ckpt
             else "no checkpoint had been written yet")
    raise VaelabError(f"training went non-finite at iteration {it} (term(s): {', '.join(bad) or 'loss'}); {where}; "
                      f"try a lower --lr (e.g. a tenth) or check the data for NaN/inf")


def _checkpoint_state(model, opt, cfg: TrainConfig, it: int, seed: int, data: DeviceData) -> dict:
    return {
        "x_dim": data.x_dim,
        "image_shape": list(data.image_shape) if data.image_shape else None,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "iteration": it,
        "seed": seed,
        "config": dataclasses.asdict(cfg),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "vaelab_version": __version__,
    }


def load_model(ckpt: dict, device: torch.device):
    """Rebuild a model from a checkpoint's config and weights."""
    cfg = ckpt["config"]
    model = build_model(cfg["model"], ckpt["x_dim"], **cfg["model_options"]).to(device)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError:
        raise VaelabError(f"checkpoint weights do not fit model {cfg['model']!r} with options "
                          f"{cfg['model_options']}; the checkpoint is from a different model") from None
    return model.eval()


# ---------------------------------------------------------------------------------------
# A whole run: every seed, evaluation, figures, report
# ---------------------------------------------------------------------------------------
def machine_description(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return f"{platform.system()} {cpu}, {torch.get_num_threads()} thread(s), torch {torch.__version__}{gpu}"


def default_out(cfg: TrainConfig) -> Path:
    return Path("runs") / f"{cfg.model}-{cfg.dataset}-{datetime.now():%Y%m%d-%H%M%S}"


@contextlib.contextmanager
def flush_denormal():
    """Flush subnormal floats to zero while training: they slow CPU backward passes many-fold.

    The setting is process-wide, so it is switched back off afterwards."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def train_run(cfg: TrainConfig) -> Path:
    """Train every seed of cfg, evaluate on the full test set, and write the run folder."""
    with flush_denormal():
        return _train_run(cfg)


def _train_run(cfg: TrainConfig) -> Path:
    from .plots import model_figures, save_curves, save_grid, save_samples_2d
    from .report import write_report   # figures and report come last in the flow

    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if cfg.out is None:
        cfg.out = str(default_out(cfg))
    data = prepare_data(cfg, device)
    probe = build_model(cfg.model, data.x_dim, **cfg.model_options)   # fail on bad options before writing anything
    if data.image_shape is None and getattr(probe, "likelihood", None) == "bernoulli":
        raise VaelabError(f"{cfg.dataset} is continuous data; a Bernoulli decoder cannot model it: "
                          "use --likelihood gaussian (VAEs) or --loss mse (autoencoders)")
    run_dir = prepare_run_dir(Path(cfg.out), dataclasses.asdict(cfg))
    per_seed, histories = {}, {}
    for seed in cfg.seeds:
        torch.manual_seed(seed)
        seed_dir = run_dir / f"seed-{seed}"
        seed_dir.mkdir(exist_ok=True)
        model = build_model(cfg.model, data.x_dim, **cfg.model_options).to(device)
        hist = fit(model, data, cfg, seed_dir, seed)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(seed_dir / "model.safetensors"))
        write_json(seed_dir / "history.json", hist)
        torch.manual_seed(10_000 + seed)   # evaluation noise independent of training
        metrics = evaluate_model(model, data, cfg.iwae_k, cfg.eval_repeats, cfg.progress)
        metrics.update(train_seconds=hist["train_seconds"], iters_per_second=hist["iters_per_second"])
        per_seed[str(seed)] = metrics
        histories[str(seed)] = hist
        write_json(run_dir / "metrics.json", _metrics_doc(cfg, data, device, per_seed))
        model.eval()
        with torch.inference_mode():   # conditional models: one row per class
            grid = (model.sample_x_by_class(SAMPLE_COLS) if hasattr(model, "sample_x_by_class")
                    else model.sample_x(SAMPLE_ROWS * SAMPLE_COLS if data.image_shape else 2000))
        if data.image_shape is None:   # 2D points: scatter figures instead of image grids
            save_samples_2d(seed_dir / "samples.png", data.test_x, grid)
        else:
            save_grid(seed_dir / "samples.png", grid, SAMPLE_ROWS, SAMPLE_COLS, data.image_shape)
        figures = ["samples.png", *model_figures(model, data, seed_dir)]
        if seed == cfg.seeds[0]:
            for name in figures:
                shutil.copyfile(seed_dir / name, run_dir / name)
        save_curves(run_dir / "curves.png", histories, f"{cfg.model} on {cfg.dataset}",
                    getattr(model, "CURVE_TERMS", ("nelbo", "kl", "rec")))
        write_report(run_dir)
    return run_dir


def _metrics_doc(cfg, data: DeviceData, device, per_seed: dict) -> dict:
    return {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "data_source": data.source,
        "test_set": (f"{len(data.test_x)} points" if data.image_shape is None else
                     f"{len(data.test_x)} images, "
                     + ("grey levels" if cfg.binarize == "none" else f"fixed binarization seed {STATIC_BINARIZATION_SEED}")),
        "machine": machine_description(device),
        "date": datetime.now().isoformat(timespec="seconds"),
        "per_seed": per_seed,
        "mean_se": summarise(per_seed),
    }
