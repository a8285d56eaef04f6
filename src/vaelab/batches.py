"""Data on the device, and the endless minibatches the trainer draws from them.

Training data live as tensors on the device; a batch is an index into them plus, for
dynamic binarization, one uniform draw compared with the grey levels. No per-item Python
data pipeline runs inside the loop.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import TrainConfig
from .data import STATIC_BINARIZATION_SEED, binarize_static, open_dataset, resize_images, split_validation
from .errors import VaelabError, arg
from .models import model_class


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
    channels: int = 1            # colour channels of the images (x holds them channels first)
    labelled: bool = True        # False: your own data without labels (train_y / test_y all 0)
    classes: tuple[str, ...] = ()   # the names of the labels 0, 1, ...

    @property
    def x_dim(self) -> int:
        return self.train_x.shape[1]

    @property
    def picture_shape(self) -> tuple[int, ...] | None:
        """How an example is drawn: (H, W) grey, (C, H, W) in colour, None for points."""
        if self.image_shape is None:
            return None
        return tuple(self.image_shape) if self.channels == 1 else (self.channels, *self.image_shape)

    @property
    def conv_shape(self) -> tuple[int, int, int] | None:
        """(C, H, W) for the conv nets; None for points."""
        return None if self.image_shape is None else (self.channels, *self.image_shape)


def load_images(cfg: TrainConfig, given=None):
    """The data set (a registered one by name, or your own: a path, or `given`, read from memory), resized if
    cfg.resize asks for it; your own data are checked against the origin the run recorded."""
    ds = open_dataset(cfg.dataset, cfg.data_dir, cfg.resize, cfg.data_origin, given, cfg.progress)
    if cfg.resize:
        if ds.image_shape is None:
            raise VaelabError(f"{arg('resize', cfg.resize)}: {cfg.dataset} is not an image data set; leave {arg('resize')} out")
        ds.train_x, ds.test_x = (resize_images(t, ds.image_shape, cfg.resize, ds.channels) for t in (ds.train_x, ds.test_x))
        ds.image_shape = (cfg.resize, cfg.resize)
    return ds


def prepare_data(cfg: TrainConfig, device: torch.device, x_dim: int | None = None, given=None) -> DeviceData:
    """Load cfg's data set (or `given`, your own data read from memory) and put its training, validation
    and test tensors on `device`.

    Validation images are held out of the training set (seed 0); evaluation inputs are one fixed,
    seeded binarization of the grey levels unless cfg.binarize is none. x_dim: the size a trained model
    takes; a data set of another size is refused before anything is done to it. Your own data: cfg records
    where they came from (data_origin), and binarize auto is resolved once they are read."""
    ds = load_images(cfg, given)
    if ds.origin is not None:
        cfg.data_origin = ds.origin
    if x_dim is not None and ds.train_x.shape[1] != x_dim:
        raise VaelabError(f"dataset {cfg.dataset!r} has {ds.train_x.shape[1]} values per example, but the run's model "
                          f"takes {x_dim}; give a data set of the same shape")
    cfg.model_options = {**cfg.model_options,   # a new dict: a Run's own config keeps its options
                         **model_class(cfg.model).options_for_data(cfg.model_options, ds.channels, cfg.binarize)}
    _resolve_binarize(cfg, ds)
    train_x, train_y = ds.train_x, ds.train_y
    if cfg.train_classes is not None:   # one-class (or few-class) training; the test set stays whole
        unknown = sorted(set(cfg.train_classes) - set(range(len(ds.classes))))
        if not ds.labelled:
            raise VaelabError(f"{arg('train_classes', cfg.train_classes)}: {cfg.dataset} has no labels; give labelled "
                              f"data (a subfolder per class, or (x, y)), or leave {arg('train_classes')} out")
        if unknown:
            raise VaelabError(f"{arg('train_classes', unknown)}: {cfg.dataset} has classes 0..{len(ds.classes) - 1}")
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
                      ds.sampler if cfg.fresh_batches else None, ds.channels, ds.labelled, tuple(ds.classes))


def _resolve_binarize(cfg: TrainConfig, ds) -> None:
    """binarize auto for your own data, now that they are read: none for points, else the model's default;
    binarizing points (not grey levels in [0, 1]) is refused."""
    if ds.continuous and cfg.binarize not in ("auto", "none"):
        raise VaelabError(f"{arg('binarize', cfg.binarize)}: {cfg.dataset} holds vectors, not grey levels in [0, 1], "
                          f"which cannot be binarized; use {arg('binarize', 'none')} (or auto)")
    if cfg.binarize == "auto":
        cfg.binarize = "none" if ds.continuous else model_class(cfg.model).TRAINING.binarize_for(cfg.model_options)


BATCH_STREAM, LABELLED_STREAM = 2**32, 2 * 2**32   # seed offsets of the data-order streams (user seeds < 2**32)


def check_split(batch_size: int, world: int, what: str) -> None:
    """A global batch must split evenly across the torchrun processes (VaelabError naming `what`)."""
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
                 seed: int = BATCH_STREAM, shard: tuple[int, int] = (0, 1), what: str = arg("batch_size")):
        if batch_size > len(x):
            raise VaelabError(f"{what} {batch_size} is larger than the training set ({len(x)} images); lower it")
        rank, world = shard
        check_split(batch_size, world, what)
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
