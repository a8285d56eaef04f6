"""The training configuration: one dataclass, every field documented, validated before anything runs.

`TrainConfig.validate()` resolves the model-dependent defaults (iterations, binarization,
optimizer) and raises a one-line `VaelabError` for a bad value, naming the option with `errors.arg`:
`batch_size` from Python, `--batch-size` on the command line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import torch

from . import distributed
from .data import BINARIZE_MODES
from .data.registry import is_generated
from .data.toy import is_toy
from .errors import VaelabError, arg
from .evaluate import check_evaluation_sizes
from .models import MODELS, declared_options, model_class
from .models.options import MAX_SEED
from .schedules import parse_duration, parse_schedule
from .machine import check_threads

OPTIMIZERS = ("auto", "adam", "adamw")
PRECISIONS = ("fp32", "bf16")
MAX_STEPS = 10**9   # iterations or epochs: far beyond any real run
MAX_RESIZE = 256     # image side for --resize: 2,000 would need 64 GB for MNIST
RUNTIME_OPTIONS = ("data_dir", "device", "threads", "progress")   # what may change when a run is resumed
# What a resume may also change to extend the run: a longer budget continues the seeds the old one stopped.
EXTENDABLE = ("time_budget",)


@dataclass
class TrainConfig:
    """Everything a training run needs, as saved in RUN/config.json.

    Attributes:
        model: registry name of the model (`vaelab.options()` lists them and their options).
        dataset: data set name (`vaelab.datasets()`; the default is the embedded, offline `mnist-5k`), or
            your own data: a folder of images (one subfolder per class) or an .npz / .npy file, by path;
            from Python also arrays and tensors (see docs/data.md), recorded by the name `array`.
        data_dir: folder holding DATASET/ subfolders of IDX files (None: $VAELAB_DATA, the user cache, ...).
        out: the run folder to create (None: runs/MODEL-DATASET-TIMESTAMP).
        seeds: one training run per seed; metrics are reported as mean ± standard error over them.
        iters: training iterations (None: the model's TRAINING.iters, or `epochs`).
        epochs: train for this many passes over the training set instead (validation, log and
            checkpoint once per epoch).
        patience: with epochs, stop after this many epochs without a better validation loss and keep
            the best epoch's weights.
        resize: resize images to resize x resize first (32: the conv nets' 32x32 form).
        batch_size: images per training step (the global batch under torchrun).
        lr: learning rate of Adam / AdamW.
        binarize: training images as a fresh Bernoulli draw per batch (`dynamic`), one fixed draw
            (`static`) or grey levels (`none`); `auto`: none for continuous data and autoencoders.
        val_size: validation images held out of the training set (at most a tenth of it).
        eval_every: validation every this many iterations.
        log_every: one point of the training curves per this many iterations (their mean).
        checkpoint_every: write seed-S/checkpoint.pt every this many iterations (and at the end).
        iwae_k: importance-weighted bounds computed on the test set after training.
        eval_repeats: Monte Carlo passes over the test set for NELBO / KL / Rec.
        device: `auto` (a GPU when one is visible), `cpu` or `cuda`.
        threads: CPU threads for PyTorch (None: training times 1 thread and all cores and keeps the faster).
        progress: show progress bars.
        model_options: the model's constructor options (`vaelab.options(model)`).
        optimizer: `auto` (the model's TRAINING.optimizer: AdamW for autoencoders, else Adam), `adam`, `adamw`.
        train_classes: train (and validate) on these classes only, e.g. one-class anomaly detection.
        fresh_batches: generated data (the toy sets, dsprites): a fresh draw for every batch instead of the
            fixed training sample.
        precision: `fp32`, or `bf16` (the networks under bfloat16 autocast; log-densities stay float32).
        compile: torch.compile the training step (forward and backward).
        cuda_graph: on a GPU, capture the training step (forward, backward, Adam) as one CUDA graph
            and replay it: one graph launch and a few small kernels per step instead of ~130 (graphs.py).
        warmup: KL warm-up over this many epochs: the KL term's weight rises linearly from 0 to 1
            (VAE-family models; 0: none).
        lr_schedule: `constant`, `step:EPOCHS:FACTOR`, `exp:FACTOR` (per epoch) or `iwae` (Burda et al.'s
            10^(-i/7) for 3^i epochs); see vaelab.schedules.
        adam_eps: Adam's epsilon.
        time_budget: stop each seed's training cleanly after this much training time (`90s`, `15m`,
            `1.5h`), then evaluate as usual; None: no limit. A budget makes the stopping iteration
            depend on the machine's speed, so such runs are not reproducible draw for draw.
        tensorboard: also write the training curves as TensorBoard event files, seed-S/events.out.tfevents.*
            (when the `tensorboard` package is installed: pip install 'vaelab[tensorboard]'; see tracking.py).
        data_origin: set by vaelab for your own data: where it came from (kind, path, shape, dtype, SHA-256,
            split seed), so that the run reads the same data again and refuses data that changed.
    """

    model: str = "vae"
    dataset: str = "mnist-5k"
    data_dir: str | None = None
    out: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    iters: int | None = None
    epochs: int | None = None
    patience: int | None = None
    resize: int | None = None
    batch_size: int = 100
    lr: float = 1e-3
    binarize: str = "auto"
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
    optimizer: str = "auto"
    train_classes: list[int] | None = None
    fresh_batches: bool = False
    precision: str = "fp32"
    compile: bool = False
    cuda_graph: bool = False
    warmup: float = 0.0
    lr_schedule: str = "constant"
    adam_eps: float = 1e-8
    time_budget: str | None = None
    tensorboard: bool = True
    data_origin: dict | None = None

    def validate(self) -> "TrainConfig":
        """Check every field and resolve the `auto` / None defaults; returns self (VaelabError if bad)."""
        cls = model_class(self.model)
        if self.iters is None:
            self.iters = cls.TRAINING.iters
        self._check_counts()
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise VaelabError(f"{arg('lr')} must be a positive number, got {self.lr!r}")
        self._check_seeds()
        if self.binarize not in ("auto", *BINARIZE_MODES):
            raise VaelabError(f"{arg('binarize')} must be one of auto, {', '.join(BINARIZE_MODES)}, got {self.binarize!r}")
        if is_toy(self.dataset) and self.binarize not in ("auto", "none"):
            raise VaelabError(f"{arg('binarize', self.binarize)}: {self.dataset} is continuous data, which cannot be "
                              f"binarized; use {arg('binarize', 'none')} (or auto)")
        # binarize auto is resolved once the data are read (batches.prepare_data): the model's options may then
        # still take a default from the data (Model.options_for_data), and binarizing depends on them
        if self.optimizer not in OPTIMIZERS:
            raise VaelabError(f"{arg('optimizer')} must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.optimizer == "auto":
            self.optimizer = cls.TRAINING.optimizer
        if self.fresh_batches:
            self._check_fresh_batches()
        if self.train_classes is not None and not self.train_classes:
            raise VaelabError(f"{arg('train_classes')} needs at least one class")
        self._check_model_options()
        if not (isinstance(self.warmup, (int, float)) and not isinstance(self.warmup, bool)
                and 0 <= self.warmup < math.inf):
            raise VaelabError(f"{arg('warmup')} must be a number of epochs >= 0, got {self.warmup!r}")
        if self.warmup and not cls.anneals_kl:
            raise VaelabError(f"{arg('warmup')}: {self.model} does not weight its KL term(s) for a warm-up (the models that "
                              f"do: {', '.join(kl_annealing_models())}); leave {arg('warmup')} out")
        parse_schedule(self.lr_schedule)
        if not (isinstance(self.adam_eps, (int, float)) and 0 < self.adam_eps < math.inf):
            raise VaelabError(f"{arg('adam_eps')} must be a positive number, got {self.adam_eps!r}")
        if self.time_budget is not None:
            parse_duration(self.time_budget)
        if self.precision not in PRECISIONS:
            raise VaelabError(f"{arg('precision')} must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        device = resolve_device(self.device)
        if self.cuda_graph:
            self._check_cuda_graph(cls, device)
        return self

    def _check_fresh_batches(self) -> None:
        """Fresh batches come from a generated set's sampler: whole draws at the set's own size."""
        if not is_generated(self.dataset):
            raise VaelabError(f"{arg('fresh_batches')}: only the generated toy and dSprites data sets can draw fresh "
                              f"batches, not {self.dataset}; drop the option")
        for name, value in (("train_classes", self.train_classes), ("resize", self.resize)):
            if value:
                raise VaelabError(f"{arg('fresh_batches')} draws from the whole data set at its own size, which "
                                  f"{arg(name, value)} would not apply to; drop one of the two")

    def _check_model_options(self) -> None:
        """Each declared option's value against its rule (models.options): the CLI's argparse types check the
        same, so a value that a flag would refuse fails here too, before anything is written."""
        known = declared_options(self.model)
        for name, value in self.model_options.items():
            if name not in known or value is None:
                continue
            option = known[name]
            if type(value) is type(option.default) and value == option.default:
                continue
            if option.rule is not None and not option.rule.ok(value):
                raise VaelabError(f"{arg(name)} must be {option.rule.what}, got {value!r}")
        self._check_options_apply(known)

    def _check_options_apply(self, known) -> None:
        """An option given a value of its own that this run would ignore is refused, not stored silently."""
        given = {k: v for k, v in self.model_options.items() if k in known and v != known[k].default}
        effective = {**{k: o.default for k, o in known.items()}, **self.model_options}
        if "sigma" in given and effective.get("likelihood") in ("bernoulli", "logistic"):
            raise VaelabError(f"{arg('sigma', given['sigma'])}: sigma is the Gaussian likelihood's std, and this run's "
                              f"likelihood is {effective['likelihood']}; leave {arg('sigma')} out, or add "
                              f"{arg('likelihood', 'gaussian')}")
        if effective.get("likelihood") == "logistic" and self.binarize in ("dynamic", "static"):
            raise VaelabError(f"{arg('binarize', self.binarize)}: the discretized logistic (likelihood logistic) models "
                              f"8-bit grey levels, not binary pixels; use {arg('binarize', 'none')} (or auto)")
        if "channels" in given and effective.get("net") == "mlp":
            raise VaelabError(f"{arg('channels', given['channels'])}: the channels are the conv nets' widths, and this "
                              f"run's net is mlp; leave {arg('channels')} out, or add {arg('net', 'conv')}")

    def _check_cuda_graph(self, cls, device: torch.device) -> None:
        if not cls.graphable:   # the class says so; an instance may too (pipeline checks the built model)
            raise ungraphable(self.model)
        if self.compile:
            raise VaelabError(f"{arg('cuda_graph')} and {arg('compile')}: give one (a compiled step is not captured as a graph)")
        if device.type != "cuda":
            raise VaelabError(f"{arg('cuda_graph')} needs a CUDA GPU ({arg('device', 'cuda')}); a run trained with it resumes on one")
        if distributed.launched():
            raise VaelabError(f"{arg('cuda_graph')} runs one process: under torchrun the gradient average is not captured; "
                              f"run it without torchrun, or without {arg('cuda_graph')}")

    def _check_counts(self) -> None:
        check_threads(self.threads)   # a count beyond the machine's CPUs crashes OpenMP
        for name in ("epochs", "patience", "resize"):
            value = getattr(self, name)
            if value is not None and not _positive_int(value):
                raise VaelabError(f"{arg(name)} must be a positive integer, got {value!r}")
        if self.resize is not None and not 4 <= self.resize <= MAX_RESIZE:   # 2,000 asked for 64 GB
            raise VaelabError(f"{arg('resize', self.resize)}: give a side from 4 to {MAX_RESIZE} pixels (32: the conv "
                              f"nets' 32x32 form)")
        # a string such as progress="no" would be taken as True; f.type is the annotation's text here (from
        # __future__ import annotations)
        for f in fields(self):
            if f.type == "bool" and not isinstance(getattr(self, f.name), bool):
                raise VaelabError(f"{f.name} must be True or False, got {getattr(self, f.name)!r}")
        if self.patience is not None and self.epochs is None:
            raise VaelabError(f"{arg('patience')} needs {arg('epochs')}: early stopping checks the validation loss once per epoch")
        for name in ("iters", "batch_size", "eval_every", "log_every", "checkpoint_every", "eval_repeats"):
            if not _positive_int(getattr(self, name)):
                raise VaelabError(f"{arg(name)} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("iters", "epochs"):
            if (getattr(self, name) or 0) > MAX_STEPS:   # a typo of many digits would train for ever
                raise VaelabError(f"{arg(name, getattr(self, name))} is more than {MAX_STEPS:,}; give a realistic count")
        if isinstance(self.val_size, bool) or not isinstance(self.val_size, int) or self.val_size < 0:
            raise VaelabError(f"{arg('val_size')} must be a whole number >= 0, got {self.val_size!r}")
        if not isinstance(self.iwae_k, (list, tuple)) or any(not _positive_int(k) for k in self.iwae_k):
            raise VaelabError(f"{arg('iwae_k')} values must be positive integers, got {self.iwae_k!r}")
        check_evaluation_sizes(self.iwae_k, self.eval_repeats)

    def _check_seeds(self) -> None:
        if not self.seeds:
            raise VaelabError(f"{arg('seeds')} needs at least one seed")
        if any(not _whole(s) or not 0 <= s <= MAX_SEED for s in self.seeds):
            raise VaelabError(f"{arg('seeds')} must be whole numbers from 0 to {MAX_SEED}, got {self.seeds}")
        if len(set(self.seeds)) != len(self.seeds):
            raise VaelabError(f"{arg('seeds')} has repeated values {self.seeds}; give distinct seeds")


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def kl_annealing_models() -> list[str]:
    """The registered models whose loss weights a KL term by the warm-up (--warmup)."""
    return [name for name, (cls, _) in MODELS.items() if cls.anneals_kl]


def ungraphable(model: str) -> VaelabError:
    """The refusal of --cuda-graph for a model whose step is not the same device work every time."""
    return VaelabError(f"{arg('cuda_graph')}: {model}'s training step depends on values read or drawn on the host (see the "
                       f"model's graphable) and cannot be captured as a CUDA graph; train it without {arg('cuda_graph')}")


def resolve_device(name: str | torch.device) -> torch.device:
    """The device to compute on; under torchrun on GPUs, this process's own GPU (cuda:LOCAL_RANK)."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise VaelabError(f"{arg('device', 'cuda')}: no CUDA GPU is visible to PyTorch; use 'cpu' or 'auto'")
    if name not in ("cpu", "cuda"):
        raise VaelabError(f"{arg('device')} must be 'auto', 'cpu' or 'cuda', got {name!r}")
    if name == "cuda" and distributed.launched():
        return distributed.local_cuda_device()
    return torch.device(name)
