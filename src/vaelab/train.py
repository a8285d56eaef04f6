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
from safetensors.torch import save as save_safetensors
from tqdm.auto import tqdm

from . import __version__, distributed
from .data import BINARIZE_MODES, STATIC_BINARIZATION_SEED, binarize_static, labelled_subset, load_dataset, resize_images, split_validation
from .data.toy import is_toy
from .errors import VaelabError
from .evaluate import evaluate_elbo, evaluate_model
from .judge import accuracy_by_class, load_or_train_judge, sample_quality
from .models import MODELS, build_model
from .runs import atomic_write_bytes, load_checkpoint, lock_run_dir, prepare_run_dir, save_checkpoint, summarise, write_json


SAMPLE_ROWS, SAMPLE_COLS = 10, 20   # the sample grid every image run writes
OPTIMIZERS = ("auto", "adam", "adamw")
PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainConfig:
    model: str = "vae"
    dataset: str = "mnist-5k"
    data_dir: str | None = None
    out: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    iters: int | None = None          # None: the model's DEFAULT_ITERS (or --epochs)
    epochs: int | None = None         # epoch training: iters = epochs x (training images // batch size)
    patience: int | None = None       # early stopping after this many epochs without validation progress
    resize: int | None = None         # resize images to resize x resize (e.g. 32 for the conv nets' 32x32 form)
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
    precision: str = "fp32"           # bf16: the networks' forward and backward under bfloat16 autocast
    compile: bool = False             # torch.compile the training step's loss (forward and backward)

    def validate(self) -> "TrainConfig":
        if self.model not in MODELS:
            raise VaelabError(f"unknown model {self.model!r}: choose one of {', '.join(MODELS)}")
        if self.iters is None:
            self.iters = MODELS[self.model][0].DEFAULT_ITERS
        for name in ("epochs", "patience", "resize"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise VaelabError(f"--{name} must be a positive integer, got {getattr(self, name)}")
        if self.patience is not None and self.epochs is None:
            raise VaelabError("--patience needs --epochs: early stopping checks the validation loss once per epoch")
        for name in ("iters", "batch_size", "eval_every", "log_every", "checkpoint_every", "eval_repeats"):
            if getattr(self, name) <= 0:
                raise VaelabError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise VaelabError(f"--lr must be a positive number, got {self.lr}")
        if self.val_size < 0:
            raise VaelabError(f"--val-size must be >= 0, got {self.val_size}")
        if not self.seeds:
            raise VaelabError("--seeds needs at least one seed")
        if any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**32 for s in self.seeds):
            raise VaelabError(f"--seeds must be whole numbers from 0 to {2**32 - 1}, got {self.seeds}")
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
        if self.precision not in PRECISIONS:
            raise VaelabError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.threads is not None and self.threads <= 0:
            raise VaelabError(f"--threads must be a positive integer, got {self.threads}")
        resolve_device(self.device)
        return self


def resolve_device(name: str) -> torch.device:
    """The device to compute on; under torchrun on GPUs, this process's own GPU (cuda:LOCAL_RANK)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise VaelabError("--device cuda: no CUDA GPU is visible to PyTorch; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise VaelabError(f"--device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and distributed.launched():
        return distributed.local_cuda_device()
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


def load_images(cfg: TrainConfig):
    """The data set, resized if cfg.resize asks for it."""
    ds = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    if cfg.resize:
        if ds.image_shape is None:
            raise VaelabError(f"--resize {cfg.resize}: {cfg.dataset} is not an image data set; leave --resize out")
        ds.train_x, ds.test_x = (resize_images(t, ds.image_shape, cfg.resize) for t in (ds.train_x, ds.test_x))
        ds.image_shape = (cfg.resize, cfg.resize)
    return ds


def prepare_data(cfg: TrainConfig, device: torch.device) -> DeviceData:
    ds = load_images(cfg)
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


BATCH_STREAM, LABELLED_STREAM = 2**32, 2 * 2**32   # seed offsets of the data-order streams (user seeds < 2**32)


def _check_split(batch_size: int, world: int, what: str) -> None:
    if batch_size % world:
        raise VaelabError(f"{what} {batch_size} cannot be split evenly across {world} processes; use a multiple "
                          f"of {world} (it is the global batch, shared by all processes)")


class Batches:
    """Endless minibatches: shuffled epochs over tensors on the device, binarized per batch if dynamic,
    or (toy data with a sampler) a fresh draw of batch_size points every time.

    The shuffles and binarization draws come from the batches' own generator (seeded with `seed`),
    not from the global RNG: the data order does not depend on the model's noise, and every rank
    of a multi-process run draws the same global batch of batch_size, of which it keeps its
    contiguous shard (shard = (rank, world); batch_size must be a multiple of world).
    `what` names the batch size in error messages."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, dynamic: bool, sampler=None,
                 seed: int = BATCH_STREAM, shard: tuple[int, int] = (0, 1), what: str = "--batch-size"):
        if batch_size > len(x):
            raise VaelabError(f"{what} {batch_size} is larger than the training set ({len(x)} images); lower it")
        rank, world = shard
        _check_split(batch_size, world, what)
        self.x, self.y, self.batch_size, self.dynamic, self.sampler = x, y, batch_size, dynamic, sampler
        self.mine = slice(rank * batch_size // world, (rank + 1) * batch_size // world)
        self.generator = torch.Generator(device=x.device).manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long, device=x.device)
        self.pos = 0

    def state_dict(self) -> dict:
        """Where the batches are: the epoch's order, the position in it, the generator (for exact resume)."""
        return {"order": self.order.cpu(), "pos": self.pos, "generator": self.generator.get_state(),
                "sampler_seed": getattr(self.sampler, "seed", None)}

    def load_state_dict(self, state: dict) -> None:
        self.order = state["order"].to(self.x.device)
        self.pos = int(state["pos"])
        self.generator.set_state(state["generator"])
        if self.sampler is not None and state.get("sampler_seed") is not None:
            self.sampler.seed = state["sampler_seed"]

    def __next__(self):
        if self.sampler is not None:   # the same fresh draw on every rank (the sampler's seed counts up)
            x, y = self.sampler(self.batch_size)
            return x[self.mine].to(self.x.device), y[self.mine].to(self.y.device)
        if self.pos + self.batch_size > len(self.order):
            self.order = torch.randperm(len(self.x), generator=self.generator, device=self.x.device)
            self.pos = 0
        idx = self.order[self.pos:self.pos + self.batch_size][self.mine]
        self.pos += self.batch_size
        x = self.x[idx]
        if self.dynamic:   # a fresh Bernoulli draw: P(pixel = 1) = grey level (drawn for the global batch)
            u = torch.rand((self.batch_size, *x.shape[1:]), generator=self.generator, dtype=x.dtype, device=x.device)
            x = (u[self.mine] < x).to(x.dtype)
        return x, self.y[idx]


# ---------------------------------------------------------------------------------------
# One model, one seed
# ---------------------------------------------------------------------------------------
def fit(model, data: DeviceData, cfg: TrainConfig, seed_dir: Path | None = None, seed: int = 0,
        resume: dict | None = None) -> dict:
    """Adam (or AdamW, cfg.optimizer) on model.loss for cfg.iters iterations; returns the training history.

    With `resume` (a checkpoint written by this function), training continues from its
    iteration with its weights, optimizer state, RNG state, batch order and history, and ends
    exactly where an uninterrupted run would have (on the same device and thread count).

    Under torchrun (see distributed.py) every rank calls fit: each trains on its shard of every
    global batch through DDP, the logged terms and validation metrics are reduced over the ranks
    (identical on all of them), and rank 0 alone writes checkpoints."""
    device = data.train_x.device
    main, shard = distributed.is_main(), (distributed.rank(), distributed.world())
    Opt = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt = Opt(model.parameters(), lr=cfg.lr, **_fused_adam(device))
    dynamic = cfg.binarize == "dynamic"
    batches = Batches(data.train_x, data.train_y, cfg.batch_size, dynamic, data.sampler, seed + BATCH_STREAM, shard)
    labelled = None
    if getattr(model, "labels_per_class", None):   # semi-supervised: a small labelled subset, every batch
        xl, yl = labelled_subset(data.train_x, data.train_y, model.labels_per_class, model.label_seed)
        labelled = Batches(xl, yl, min(cfg.batch_size, len(xl)), dynamic, None, seed + LABELLED_STREAM, shard,
                           what="the labelled batch (--labels-per-class x classes, at most --batch-size)")
    val_key = model.ELBO_TERMS[0]   # nelbo for VAEs, loss for autoencoders
    hist = {"iteration": [], "val_iteration": [], f"val_{val_key}": []}
    window = {}
    start, seconds_before, last_ckpt = 1, 0.0, None
    # Early stopping on the validation NELBO, checked at every validation (once per epoch with --epochs).
    stopping = {"best": math.inf, "best_iteration": 0, "bad": 0, "stopped": False}
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        trainer = resume["trainer"]
        batches.load_state_dict(trainer["batches"])
        if labelled is not None:
            labelled.load_state_dict(trainer["labelled_batches"])
        own = (trainer["other_ranks"][shard[0] - 1] if shard[0]   # this rank's log-window sums and RNG states
               else {"window": trainer["window"], "rng_cpu": resume["rng_cpu"], "rng_cuda": resume.get("rng_cuda")})
        hist, window = trainer["history"], {k: v.to(device) for k, v in own["window"].items()}
        seconds_before = trainer["train_seconds"]
        stopping = trainer.get("stopping", stopping)
        start = cfg.iters + 1 if stopping["stopped"] else resume["iteration"] + 1
        last_ckpt = (resume["iteration"], seed_dir / "checkpoint.pt")
        _set_rng_state(own)
    step = distributed.data_parallel(model, device)   # model.loss, through DDP under torchrun
    if cfg.compile:   # traced and compiled at the first step (and again if the batch shape changes)
        step = torch.compile(step)
    # bf16: the networks' matrix products in bfloat16, their outputs and the maths in float32
    precision = ((lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if cfg.precision == "bf16"
                 else contextlib.nullcontext)
    check_each_step = device.type == "cpu"   # a .item() per step is free on CPU, a sync on GPU
    grads_bad_at = torch.zeros((), dtype=torch.long, device=device)   # GPU: first iteration with bad gradients
    bar = tqdm(total=cfg.iters, initial=start - 1, desc=f"train {cfg.model} seed {seed}",
               disable=not (cfg.progress and main), mininterval=0.5, unit="it")
    t0 = time.perf_counter()
    model.train()
    for it in range(start, cfg.iters + 1):
        x, y = next(batches)
        with precision():
            loss, terms = step(x, y) if labelled is None else step(x, y, labelled=next(labelled))
        opt.zero_grad(set_to_none=True)
        loss.backward()   # under DDP, also the gradient average: every rank gets here before any stops
        if check_each_step and not math.isfinite(loss.item()):
            _diverged(it, terms, last_ckpt)
        grads = [q.grad for q in model.parameters() if q.grad is not None]
        finite = torch.isfinite(torch.stack(torch._foreach_norm(grads))).all() if grads else None
        if finite is not None:
            if check_each_step:
                if not finite.item():   # before the step: the weights and the last checkpoint stay good
                    _diverged_grads(it, model, last_ckpt)
            else:   # no sync: remember the first bad iteration, checked at the log interval
                grads_bad_at = torch.where((grads_bad_at == 0) & ~finite, it, grads_bad_at)
        opt.step()
        terms = {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}}
        for k, v in terms.items():
            window[k] = window.get(k, 0.0) + v
        if it % cfg.log_every == 0 or it == cfg.iters:
            if not check_each_step and grads_bad_at.item():
                _diverged_grads(grads_bad_at.item(), model, last_ckpt)
            n = cfg.log_every if it % cfg.log_every == 0 else it % cfg.log_every
            means = {k: (v / n).item() for k, v in distributed.mean_across(window).items()}   # over all ranks
            window = {}
            if not math.isfinite(means["loss"]):
                _diverged(it, means, last_ckpt)
            hist["iteration"].append(it)
            hist.setdefault("seconds", []).append(seconds_before + time.perf_counter() - t0)   # speed over training
            for k, v in means.items():
                hist.setdefault(k, []).append(v)
            bar.set_postfix({k.upper() if k != "rec" else "Rec": f"{means[k]:.2f}" for k in ("nelbo", "kl", "rec") if k in means},
                            refresh=False)
            bar.update(it - bar.n)
        if len(data.val_x) and (it % cfg.eval_every == 0 or it == cfg.iters):
            # Under a forked RNG: validation draws never shift the training noise.
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                val = evaluate_elbo(model, data.val_x, repeats=1, y=data.val_y, across_ranks=True)
            hist["val_iteration"].append(it)
            for k in model.ELBO_TERMS:
                hist.setdefault(f"val_{k}", []).append(val[k])
            model.train()
            if cfg.patience and seed_dir is not None:   # val is the same on every rank: all stop together
                if val[val_key] < stopping["best"]:
                    stopping.update(best=val[val_key], best_iteration=it, bad=0)
                    if main:
                        save_checkpoint(seed_dir / "best.pt", _checkpoint_state(model, opt, cfg, it, seed, data, None))
                else:
                    stopping["bad"] += 1
                    stopping["stopped"] = stopping["bad"] >= cfg.patience
        if seed_dir is not None and (it % cfg.checkpoint_every == 0 or it == cfg.iters or stopping["stopped"]):
            if not check_each_step:   # never overwrite the last good checkpoint with bad weights
                if grads_bad_at.item():
                    _diverged_grads(grads_bad_at.item(), model, last_ckpt)
                if window and not math.isfinite(window["loss"].item()):
                    _diverged(it, {k: v for k, v in window.items()}, last_ckpt)
            # The other ranks' own RNG states and log-window sums, so that a resumed run is exact on every rank.
            others = distributed.all_gather(_rank_state(window))[1:]
            if main:
                trainer = {"batches": batches.state_dict(),
                           "labelled_batches": labelled.state_dict() if labelled is not None else None,
                           "history": hist, "window": {k: v.cpu() for k, v in window.items()},
                           "train_seconds": seconds_before + time.perf_counter() - t0, "stopping": stopping,
                           "other_ranks": others}
                save_checkpoint(seed_dir / "checkpoint.pt", _checkpoint_state(model, opt, cfg, it, seed, data, trainer))
            last_ckpt = (it, seed_dir / "checkpoint.pt")
        if stopping["stopped"]:
            break
    bar.close()
    seconds = seconds_before + time.perf_counter() - t0
    done = hist["iteration"][-1] if hist["iteration"] else cfg.iters
    hist["train_seconds"] = seconds
    hist["iters_per_second"] = done / seconds
    if cfg.patience and seed_dir is not None and stopping["best_iteration"]:   # evaluate the best epoch
        if main:
            model.load_state_dict(load_checkpoint(seed_dir / "best.pt", device)["model"])
        distributed.broadcast_module(model)
        hist.update(best_iteration=stopping["best_iteration"], best_val=stopping["best"],
                    stopped_early=stopping["stopped"], iterations_run=done)
    return hist


def _set_rng_state(ckpt: dict) -> None:
    torch.set_rng_state(ckpt["rng_cpu"].cpu())
    if ckpt.get("rng_cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng_cuda"])


def _rank_state(window: dict) -> dict:
    """What differs between ranks and a resumed rank needs: its RNG states and its log-window sums."""
    return {"rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "window": {k: v.cpu() for k, v in window.items()}}


def _fused_adam(device: torch.device) -> dict:
    # The fused kernel does the whole Adam update in one pass over the parameters.
    return {"fused": True} if device.type in ("cpu", "cuda") else {}


def _diverged(it: int, terms: dict, last_ckpt) -> None:
    bad = [k for k, v in terms.items() if not math.isfinite(float(v.detach() if torch.is_tensor(v) else v))]
    where = (f"the last good checkpoint is kept at {last_ckpt[1]} (iteration {last_ckpt[0]})" if last_ckpt
             else "no checkpoint had been written yet")
    raise VaelabError(f"training went non-finite at iteration {it} (term(s): {', '.join(bad) or 'loss'}); {where}; "
                      f"try a lower --lr (e.g. a tenth) or check the data for NaN/inf")


def _diverged_grads(it: int, model, last_ckpt) -> None:
    bad = [n for n, q in model.named_parameters() if q.grad is not None and not torch.isfinite(q.grad).all()]
    where = (f"the last good checkpoint is kept at {last_ckpt[1]} (iteration {last_ckpt[0]})" if last_ckpt
             else "no checkpoint had been written yet")
    shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    raise VaelabError(f"gradients went non-finite at iteration {it} (loss finite; gradient of {shown or 'some parameters'}); "
                      f"{where}; try a lower --lr (e.g. a tenth), or clamp the variances / logits in the model")


def _checkpoint_state(model, opt, cfg: TrainConfig, it: int, seed: int, data: DeviceData, trainer: dict) -> dict:
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
        "trainer": trainer,   # batch order and position, history, log-window sums, seconds so far
        "world_size": distributed.world(),   # processes that trained it (a resume needs as many)
        "vaelab_version": __version__,
    }


def load_model(ckpt: dict, device: torch.device):
    """Rebuild a model from a checkpoint's config and weights (VaelabError if they do not fit)."""
    cfg = ckpt["config"]
    options = cfg.get("model_options", {})
    if not isinstance(options, dict) or not isinstance(cfg.get("model"), str):
        raise VaelabError(f"checkpoint config names no model or has malformed options ({options!r}); "
                          f"the checkpoint is damaged, retrain")
    try:
        model = build_model(cfg["model"], ckpt["x_dim"], **options).to(device)
    except VaelabError:
        raise
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        raise VaelabError(f"checkpoint config cannot build model {cfg['model']!r} with options {options} "
                          f"({type(e).__name__}); the checkpoint is damaged, retrain") from None
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError, AttributeError, KeyError, ValueError):
        raise VaelabError(f"checkpoint weights do not fit model {cfg['model']!r} with options "
                          f"{options}; the checkpoint is from a different model") from None
    return model.eval()


# ---------------------------------------------------------------------------------------
# A whole run: every seed, evaluation, figures, report
# ---------------------------------------------------------------------------------------
def machine_description(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    procs = f"{distributed.world()} processes x " if distributed.world() > 1 else ""
    return f"{platform.system()} {cpu}, {procs}{torch.get_num_threads()} thread(s), torch {torch.__version__}{gpu}"


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


def train_run(cfg: TrainConfig, resume: bool = False) -> Path:
    """Train every seed of cfg, evaluate on the full test set, and write the run folder.

    resume=True continues the run folder cfg.out (see resume_run): finished seeds are kept,
    an interrupted seed continues from its last checkpoint.

    Started by torchrun with several processes, every process calls this: they train together
    (see distributed.py) and rank 0 writes the run folder; every rank returns its path."""
    with distributed.same_on_every_rank():   # bad options fail before the processes connect
        cfg.validate()
        device = resolve_device(cfg.device)
        _check_split(cfg.batch_size, distributed.world(), "--batch-size")
    if cfg.out is None:
        cfg.out = str(default_out(cfg))
    with flush_denormal(), distributed.process_group(device):
        cfg.out = distributed.on_main(lambda: cfg.out)   # one folder for all ranks: rank 0's (a default name has the time)
        return _train_run(cfg, device, resume)


RUNTIME_OPTIONS = ("data_dir", "device", "threads", "progress")   # what may change when a run is resumed
_NOT_COMPARED = RUNTIME_OPTIONS + ("out",)   # a run folder may be moved


def resume_run(run, **runtime) -> Path:
    """Continue an interrupted run folder with its saved configuration.

    Only RUNTIME_OPTIONS (data_dir, device, threads, progress) may be given; None keeps the saved value."""
    from .runs import read_json
    run = Path(run)
    with distributed.same_on_every_rank():
        if not (run / "config.json").is_file():
            raise VaelabError(f"--resume {run}: not a vaelab run folder (no config.json); pass the folder `vaelab train` printed")
        bad = set(runtime) - set(RUNTIME_OPTIONS)
        if bad:
            raise VaelabError(f"--resume keeps the run's saved configuration; only {', '.join(RUNTIME_OPTIONS)} may "
                              f"change, not {', '.join(sorted(bad))}")
        saved = read_json(run / "config.json")
        try:
            cfg = TrainConfig(**saved)
        except TypeError as e:
            raise VaelabError(f"{run / 'config.json'}: not a configuration this vaelab can resume ({e}); "
                              f"start a new run") from None
    for k, v in runtime.items():
        if v is not None:
            setattr(cfg, k, v)
    cfg.out = str(run)
    return train_run(cfg, resume=True)


def _train_run(cfg: TrainConfig, device: torch.device, resume: bool = False) -> Path:
    from .plots import make_latent_figures, model_figures, save_curves, save_grid, save_samples_2d
    from .report import write_report   # figures and report come last in the flow

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    with distributed.same_on_every_rank():
        data = prepare_data(cfg, device)
        if cfg.epochs:   # one validation, log line and checkpoint per epoch
            steps = len(data.train_x) // cfg.batch_size
            if steps == 0:
                raise VaelabError(f"--batch-size {cfg.batch_size} is larger than the training set ({len(data.train_x)}); lower it")
            cfg.iters, cfg.eval_every, cfg.log_every, cfg.checkpoint_every = cfg.epochs * steps, steps, steps, steps
        probe = build_model(cfg.model, data.x_dim, **cfg.model_options)   # fail on bad options before writing anything
        if getattr(probe, "m1_iters", 0) >= cfg.iters:   # two-stage models: stage 2 would never run
            raise VaelabError(f"--iters {cfg.iters} leaves no iterations after stage 1 (--m1-iters {probe.m1_iters}); "
                              f"raise --iters above {probe.m1_iters} or lower --m1-iters")
        if data.image_shape is None and getattr(probe, "likelihood", None) == "bernoulli":
            raise VaelabError(f"{cfg.dataset} is continuous data; a Bernoulli decoder cannot model it: "
                              "use --likelihood gaussian (VAEs) or --loss mse (autoencoders)")
    main = distributed.is_main()   # under torchrun: rank 0 alone touches the run folder
    run_dir = Path(cfg.out)
    with contextlib.ExitStack() as held:
        judge = None

        def open_run():   # rank 0: lock the folder (held until the run is written), judge, config or progress
            nonlocal judge
            if run_dir.exists() and not run_dir.is_dir():
                raise VaelabError(f"--out {run_dir}: exists and is not a folder; choose another --out")
            held.enter_context(lock_run_dir(run_dir))   # a second writer is refused
            judge = _judge(cfg, device)
            if resume:
                return _resume_progress(run_dir, cfg)
            prepare_run_dir(run_dir, dataclasses.asdict(cfg))
            return {}, {}

        per_seed, histories = distributed.on_main(open_run)   # its errors stop every rank
        for seed in cfg.seeds:
            if str(seed) in per_seed:   # finished before the interruption: its files are complete
                continue
            seed_dir = run_dir / f"seed-{seed}"

            def open_seed():   # rank 0: the seed's folder and, resuming, its checkpoint (handed to every rank)
                seed_dir.mkdir(exist_ok=True)
                return _resumable_checkpoint(seed_dir, cfg, seed) if resume else None

            ckpt = distributed.on_main(open_seed)
            torch.manual_seed(seed)
            model = build_model(cfg.model, data.x_dim, **cfg.model_options).to(device)
            if distributed.rank():   # the other ranks' own noise streams (DDP gives them rank 0's weights)
                torch.manual_seed(distributed.rank_seed(seed))
            if ckpt is not None and ckpt["iteration"] >= cfg.iters:   # trained; stopped during evaluation
                model.load_state_dict(ckpt["model"])
                hist = ckpt["trainer"]["history"]
                seconds = ckpt["trainer"]["train_seconds"]
                hist.update(train_seconds=seconds, iters_per_second=cfg.iters / seconds)
            else:
                hist = fit(model, data, cfg, seed_dir, seed, resume=ckpt)
            if main:
                atomic_write_bytes(seed_dir / "model.safetensors",
                                   save_safetensors({k: v.contiguous() for k, v in model.state_dict().items()}))
                write_json(seed_dir / "history.json", hist)
            torch.manual_seed(distributed.rank_seed(10_000 + seed))   # evaluation noise independent of training
            metrics = evaluate_model(model, data, cfg.iwae_k, cfg.eval_repeats, cfg.progress and main, across_ranks=True)
            if not main:   # the rest is rank 0's: sample quality, figures, metrics.json, report
                continue
            metrics.update(train_seconds=hist["train_seconds"], iters_per_second=hist["iters_per_second"])
            if judge is not None:
                metrics.update(sample_quality(model, judge[0]), judge_test_accuracy=judge[1],
                               judge_test_accuracy_by_class=judge[2])
            per_seed[str(seed)] = metrics
            histories[str(seed)] = hist
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
                if data.image_shape is not None and hasattr(model, "posterior_mean"):
                    make_latent_figures(run_dir, model, data)
            save_curves(run_dir / "curves.png", histories, f"{cfg.model} on {cfg.dataset}",
                        getattr(model, "CURVE_TERMS", ("nelbo", "kl", "rec")))
            # metrics.json last: a seed listed there is complete (what a resumed run skips)
            write_json(run_dir / "metrics.json", _metrics_doc(cfg, data, device, per_seed))
            write_report(run_dir)
    return run_dir


def _resume_progress(run_dir: Path, cfg: TrainConfig) -> tuple[dict, dict]:
    """Per-seed metrics and histories of the seeds a resumed run has already finished."""
    from .runs import read_json
    per_seed, histories = {}, {}
    if (run_dir / "metrics.json").exists():
        done = read_json(run_dir / "metrics.json").get("per_seed", {})
        for seed in cfg.seeds:
            if str(seed) in done and (run_dir / f"seed-{seed}" / "history.json").exists():
                per_seed[str(seed)] = done[str(seed)]
                histories[str(seed)] = read_json(run_dir / f"seed-{seed}" / "history.json")
    if len(per_seed) == len(cfg.seeds):
        raise VaelabError(f"--resume {run_dir}: the run is already complete (all {len(cfg.seeds)} seed(s) have metrics); "
                          f"nothing to resume (`vaelab eval {run_dir}` adds bounds)")
    return per_seed, histories


def _resumable_checkpoint(seed_dir: Path, cfg: TrainConfig, seed: int) -> dict | None:
    """The seed's last checkpoint (on the CPU), checked to belong to this run; None when it has none (start afresh)."""
    path = seed_dir / "checkpoint.pt"
    if not path.exists():
        return None
    ckpt = load_checkpoint(path, "cpu")
    trainer = ckpt.get("trainer") or {}
    if ckpt.get("seed") != seed or "generator" not in trainer.get("batches", {}):
        raise VaelabError(f"{path}: written for another seed, or by a vaelab without exact resume (or whose batch "
                          f"order came from the global RNG); it cannot be continued, start a new run")
    trained_by, world = ckpt.get("world_size", 1), distributed.world()
    if trained_by != world:
        how = (f"torchrun --nproc_per_node {trained_by} -m vaelab train --resume {seed_dir.parent}" if trained_by > 1
               else f"vaelab train --resume {seed_dir.parent} (one process, without torchrun)")
        raise VaelabError(f"{path}: trained by {trained_by} process(es), resumed with {world}; each process's random "
                          f"stream is part of the checkpoint, so resume with as many: {how}")
    saved = {k: v for k, v in ckpt["config"].items() if k not in _NOT_COMPARED}
    now = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_COMPARED}
    if saved != now:
        diff = sorted(k for k in now if saved.get(k) != now[k])
        raise VaelabError(f"{path}: its configuration differs from config.json ({', '.join(diff)}); "
                          f"the run folder was edited, start a new run")
    return ckpt


def _judge(cfg: TrainConfig, device):
    """(classifier, its real test accuracy) that scores generated images; None where it does not apply."""
    ds = load_images(cfg)
    if ds.image_shape is None or len(ds.classes) < 2:   # 2D toy data: no images to judge
        return None
    grey = [t.to(device) for t in (ds.train_x, ds.train_y, ds.test_x, ds.test_y)]
    h, w = ds.image_shape
    judge, acc = load_or_train_judge(f"{cfg.dataset}-{h}x{w}", grey, len(ds.classes))
    return judge, acc, dict(zip(ds.classes, accuracy_by_class(judge, grey[2], grey[3], len(ds.classes))))


def _metrics_doc(cfg, data: DeviceData, device, per_seed: dict) -> dict:
    return {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "data_source": data.source,
        "test_set": (f"{len(data.test_x)} points" if data.image_shape is None else
                     f"{len(data.test_x)} images, "
                     + ("grey levels" if cfg.binarize == "none" else f"fixed binarization seed {STATIC_BINARIZATION_SEED}")),
        "machine": machine_description(device),
        "processes": distributed.world(),   # torchrun --nproc_per_node (1: a plain run)
        "date": datetime.now().isoformat(timespec="seconds"),
        "per_seed": per_seed,
        "mean_se": summarise(per_seed),
    }
