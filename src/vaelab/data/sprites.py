"""dSprites rendered by vaelab: the factor grid of Matthey et al. (2017), drawn in code, offline.

The original (github.com/deepmind/dsprites-dataset) holds 737,280 binary 64x64 images, one for
every combination of its factors, stored in the factor order (colour, shape, scale, orientation,
posX, posY), posY varying fastest:

    colour       1 value (white)
    shape        square, ellipse, heart (values 1, 2, 3)
    scale        6 values, linspace(0.5, 1, 6)
    orientation  40 values, linspace(0, 2 pi, 40) radians (0 and 2 pi both present, as in the original)
    posX, posY   32 values each, linspace(0, 1, 32)

``render`` draws any of them from its factor indices, so the grid needs no file (``draw`` takes factor
values, on the grid or between its points); ``index_to_factors`` and ``factors_to_index`` map grid
rows to factor indices and back. ``load_sprites`` makes the data sets ``dsprites`` and
``dsprites-colour``: a fixed sample of the grid and a sampler of fresh grid images. The geometry
follows the original's images (measured on the 320 frames of its published ``dsprites.gif``):

* positions: the shape's centre is at 16 + 32 * pos pixels (a quarter to three quarters of the
  image), posX along the columns (0 = left), posY along the rows (0 = top row), so no shape ever
  leaves the frame; a step of the position moves the shape by 32/31 pixels.
* sizes at scale 1 (they shrink in proportion to the scale): the square's side is 20 pixels; the
  ellipse's semi-axes are 12.8 and 7.15 pixels (long axis horizontal at orientation 0); the heart is
  19.2 pixels wide and 17.5 high, lobes up and tip down at orientation 0, from two discs of radius
  5.3 each joined to the tip by its tangents (its centre of mass about 2 pixels above the centre).
* rotation: about the position, counter-clockwise on the screen as the orientation grows.
* a pixel is 1 when its centre lies inside the shape, else 0.

What differs from the original: its shapes were vector drawings (Love2D) rasterised by a graphics
card; here they are analytic regions sampled at pixel centres, so edge pixels differ (at scale 1 a
few pixels of the heart's outline; the original's rotated squares cover about 8% fewer pixels than
its upright ones, 368 against 400, while these keep their area), and the heart is a construction
of this module fitted to the original's heart (the same bounding box and, at scale 1, all but a
couple of pixels the same), not the original's mesh. The factor values and their order are the
original's.

``dsprites-colour`` adds a colour factor of 6 saturated hues (red, yellow, green, cyan, blue,
magenta, at hue 0, 60, ..., 300 degrees): the same shapes in that colour on black, 3 channels,
4,423,680 grid images, colour varying slowest. Each channel is still 0 or 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vaelab.data.dataset import Dataset
from vaelab.errors import VaelabError

SIZE = 64                                      # image side, pixels
SHAPES = ("square", "ellipse", "heart")
COLOURS = ("red", "yellow", "green", "cyan", "blue", "magenta")
FACTOR_NAMES = ("colour", "shape", "scale", "orientation", "posX", "posY")   # the original's order


def _linspace(a: float, b: float, n: int) -> tuple[float, ...]:
    return tuple(torch.linspace(a, b, n, dtype=torch.float64).tolist())


FACTORS: dict[str, tuple[float, ...]] = {   # the original's latent values (colour 1.0: white)
    "colour": (1.0,),
    "shape": (1.0, 2.0, 3.0),
    "scale": _linspace(0.5, 1.0, 6),
    "orientation": _linspace(0.0, 2 * math.pi, 40),
    "posX": _linspace(0.0, 1.0, 32),
    "posY": _linspace(0.0, 1.0, 32),
}
COLOUR_FACTORS: dict[str, tuple[float, ...]] = {**FACTORS, "colour": tuple(60.0 * k for k in range(6))}   # hue, degrees
_RGB = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]], dtype=torch.float32)

# The geometry, in pixels of the 64x64 image at scale 1 (see the module docstring).
CENTRE_FROM, CENTRE_SPAN = 16.0, 32.0          # centre = CENTRE_FROM + CENTRE_SPAN * pos
SQUARE_SIDE = 20.0
ELLIPSE_AXES = (12.8, 7.15)                    # semi-axes: along the orientation, across it
HEART_LOBE, HEART_HALF_WIDTH, HEART_TOP, HEART_TIP = 5.3, 9.6, 9.1, 8.4   # lobe radius; extents from the centre
CHUNK = 2048                                   # images rendered at once: bounds the memory to ~0.3 GB


def factor_values(colour: bool = False) -> dict[str, tuple[float, ...]]:
    """The factors' values in the original's order: FACTORS, or COLOUR_FACTORS for the colour variant."""
    return COLOUR_FACTORS if colour else FACTORS


def factor_sizes(colour: bool = False) -> tuple[int, ...]:
    """How many values each factor has: (1, 3, 6, 40, 32, 32), or (6, 3, 6, 40, 32, 32) with colour."""
    return tuple(len(v) for v in factor_values(colour).values())


def factor_grid_size(colour: bool = False) -> int:
    """Images in the whole grid: 737,280 (the original's count), or 4,423,680 with 6 colours."""
    return math.prod(factor_sizes(colour))


def _strides(colour: bool) -> torch.Tensor:
    sizes = factor_sizes(colour)
    return torch.tensor([math.prod(sizes[i + 1:]) for i in range(len(sizes))], dtype=torch.int64)


def _check_factors(factors, colour: bool) -> torch.Tensor:
    f = torch.as_tensor(factors)
    if f.dtype.is_floating_point or f.dtype == torch.bool or f.shape[-1:] != (len(FACTOR_NAMES),):
        raise VaelabError(f"sprite factors must be integer indices of shape (..., {len(FACTOR_NAMES)}) "
                          f"({', '.join(FACTOR_NAMES)}), got {f.dtype} of shape {tuple(f.shape)}")
    f = f.to(torch.int64)
    sizes = torch.tensor(factor_sizes(colour))
    bad = ((f < 0) | (f >= sizes)).reshape(-1, len(sizes)).any(0)
    if bad.any():
        k = int(bad.nonzero()[0])
        raise VaelabError(f"sprite factor {FACTOR_NAMES[k]} must be an index 0..{int(sizes[k]) - 1}, "
                          f"found {int(f[..., k].min())}..{int(f[..., k].max())}")
    return f


def factors_to_index(factors, colour: bool = False) -> torch.Tensor:
    """Grid indices of factor indices (..., 6): the image's row in the original's order (posY fastest)."""
    return (_check_factors(factors, colour) * _strides(colour)).sum(-1)


def index_to_factors(index, colour: bool = False) -> torch.Tensor:
    """Factor indices (..., 6) of grid indices (an int or a tensor), the inverse of factors_to_index."""
    i = torch.as_tensor(index, dtype=torch.int64)
    n = factor_grid_size(colour)
    if i.numel() and (int(i.min()) < 0 or int(i.max()) >= n):
        raise VaelabError(f"sprite grid index must be 0..{n - 1}, found {int(i.min())}..{int(i.max())}")
    sizes = torch.tensor(factor_sizes(colour))
    return torch.div(i.unsqueeze(-1), _strides(colour), rounding_mode="floor") % sizes


# --------------------------------------------------------------------------- rendering


def _square(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.maximum(u.abs(), w.abs()) <= SQUARE_SIDE / 2


def _ellipse(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    a, b = ELLIPSE_AXES
    return (u / a) ** 2 + (w / b) ** 2 <= 1


def _lobe_hull(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The right lobe's disc and the tip, with the region between them: their convex hull."""
    r = HEART_LOBE
    cx, cy = HEART_HALF_WIDTH - r, HEART_TOP - r       # the disc's centre
    vx, vy = cx, cy + HEART_TIP                         # tip -> centre
    length = math.hypot(vx, vy)
    tangent = math.sqrt(length ** 2 - r ** 2)           # tip -> the points where the tangents touch
    along = (u * vx + (w + HEART_TIP) * vy) / length
    across = (u * vy - (w + HEART_TIP) * vx).abs() / length
    cone = (along >= 0) & (along <= tangent ** 2 / length) & (across <= along * r / tangent)
    return cone | ((u - cx) ** 2 + (w - cy) ** 2 <= r ** 2)


def _heart(u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return _lobe_hull(u, w) | _lobe_hull(-u, w)


_SHAPE_TESTS = (_square, _ellipse, _heart)


# How far from its centre any shape reaches at scale 1: each image is computed in a window this wide
REACH = max(SQUARE_SIDE / math.sqrt(2), ELLIPSE_AXES[0], HEART_TIP,
            math.hypot(HEART_HALF_WIDTH - HEART_LOBE, HEART_TOP - HEART_LOBE) + HEART_LOBE)


def _inside(shape, scale, orientation, pos_x, pos_y) -> torch.Tensor:
    """(n, SIZE*SIZE) bool: which pixel centres lie inside each image's shape (values, not indices).

    Only a window around each shape's centre that holds all of it is computed (32x32 at scale 1)."""
    n = len(shape)
    side = min(SIZE, 2 * math.ceil(REACH * float(scale.max())) + 2)
    cx, cy = (CENTRE_FROM + CENTRE_SPAN * p.float() for p in (pos_x, pos_y))
    ox, oy = ((c.floor().long() - side // 2).clamp(0, SIZE - side) for c in (cx, cy))   # the window's corner
    cols, rows = (o[:, None] + torch.arange(side) for o in (ox, oy))
    dx = (cols + 0.5 - cx[:, None])[:, None, :]      # pixel centres relative to the shape's centre
    up = (cy[:, None] - rows - 0.5)[:, :, None]      # screen y points down
    theta = orientation.double()
    cos, sin = (v.float()[:, None, None] for v in (theta.cos(), theta.sin()))
    scale = scale.float()[:, None, None]
    u = (cos * dx + sin * up) / scale     # rotated back by theta into the shape's own frame
    w = (cos * up - sin * dx) / scale
    window = torch.zeros(u.shape, dtype=torch.bool)
    for k, test in enumerate(_SHAPE_TESTS):
        these = shape == k
        if these.any():
            window[these] = test(u[these], w[these])
    inside = torch.zeros(n, SIZE, SIZE, dtype=torch.bool)
    inside[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]] = window
    return inside.reshape(n, SIZE * SIZE)


def draw(shape, scale, orientation, pos_x, pos_y, colour=None) -> torch.Tensor:
    """Shapes at any factor values, on the grid or between its points: float32 (N, C*64*64) in [0, 1].

    ``shape``: int indices into SHAPES; ``scale`` (1: the original's largest), ``orientation``
    (radians), ``pos_x``, ``pos_y`` (0..1): numbers, one per image (tensors of length N, or scalars).
    ``colour``: None for one binary channel, else int indices into COLOURS (three channels).
    Rendered CHUNK images at a time, without a Python loop over images.
    """
    shape = torch.as_tensor(shape, dtype=torch.int64).reshape(-1)
    values = [torch.as_tensor(v, dtype=torch.float64).reshape(-1) for v in (scale, orientation, pos_x, pos_y)]
    n = max(len(shape), *(len(v) for v in values))
    shape, *values = (v.expand(n) if len(v) == 1 else v for v in (shape, *values))
    if len(shape) != n or any(len(v) != n for v in values):
        raise VaelabError(f"draw: give one value per image, or one for all; got lengths "
                          f"{[len(v) for v in (shape, *values)]}")
    channels = 1 if colour is None else 3
    if colour is not None:
        colour = torch.as_tensor(colour, dtype=torch.int64).reshape(-1).expand(n)
    out = torch.empty(n, channels * SIZE * SIZE, dtype=torch.float32)
    for start in range(0, n, CHUNK):
        part = slice(start, start + CHUNK)
        inside = _inside(shape[part], *(v[part] for v in values)).to(torch.float32)
        if colour is not None:
            inside = (_RGB[colour[part]][:, :, None] * inside[:, None, :]).reshape(len(inside), -1)
        out[part] = inside
    return out


def render(factors, colour: bool = False) -> torch.Tensor:
    """The grid images of factor indices (N, 6) as float32 (N, C*64*64) in [0, 1], channels first.

    ``colour`` False: one channel, 1 inside the shape and 0 outside (the colour index must be 0,
    white). True: three channels, the shape in the colour factor's hue (COLOURS) on black.
    """
    f = _check_factors(factors, colour).reshape(-1, len(FACTOR_NAMES))
    value = {name: torch.tensor(v, dtype=torch.float64) for name, v in FACTORS.items()}
    return draw(f[:, 1], value["scale"][f[:, 2]], value["orientation"][f[:, 3]], value["posX"][f[:, 4]],
                value["posY"][f[:, 5]], f[:, 0] if colour else None)


# --------------------------------------------------------------------------- the data sets


@dataclass(frozen=True)
class SpriteSpec:
    name: str
    description: str
    colour: bool
    n_train: int
    n_test: int

    @property
    def channels(self) -> int:
        return 3 if self.colour else 1


SPRITE_DATASETS: dict[str, SpriteSpec] = {
    "dsprites": SpriteSpec("dsprites", "dSprites rendered by vaelab: 64x64 binary shapes, a fixed sample of "
                           "20,000 + 5,000 of the 737,280 grid images, labels: the shape", False, 20_000, 5_000),
    "dsprites-colour": SpriteSpec("dsprites-colour", "dSprites in 6 colours on black, rendered by vaelab: 64x64 RGB, "
                                  "10,000 + 2,500 of the 4,423,680 grid images, labels: the shape", True, 10_000, 2_500),
}
SAMPLE_SEED = 0        # the permutation of the grid whose first n_train images train and next n_test test
SAMPLER_SEED = 1_000   # fresh batches: seed SAMPLER_SEED + 1, + 2, ... one per batch


def is_sprites(name: str) -> bool:
    return str(name).strip().lower().replace("_", "-") in SPRITE_DATASETS


def sample_indices(spec: SpriteSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The grid indices of the fixed training and test samples: disjoint, the same on every machine."""
    order = torch.randperm(factor_grid_size(spec.colour), generator=torch.Generator().manual_seed(SAMPLE_SEED))
    return order[:spec.n_train], order[spec.n_train:spec.n_train + spec.n_test]


class SpriteSampler:
    """Fresh grid images for training: sampler(n) -> (x, y) on the CPU, a new seed each call.

    Draws grid images uniformly, with replacement, from all but the test sample's; y is the shape.
    ``factors`` holds the factor indices (n, 6) of the last draw."""

    def __init__(self, spec: SpriteSpec, test_index: torch.Tensor, seed: int = SAMPLER_SEED):
        self.spec, self.seed, self.factors = spec, seed, None
        self.held_out = torch.zeros(factor_grid_size(spec.colour), dtype=torch.bool)
        self.held_out[test_index] = True

    def __call__(self, n: int):
        self.seed += 1
        g = torch.Generator().manual_seed(self.seed)
        index = torch.randint(len(self.held_out), (n,), generator=g)
        while (again := self.held_out[index]).any():   # the test images are 0.1% of the grid: rarely drawn
            index[again] = torch.randint(len(self.held_out), (int(again.sum()),), generator=g)
        self.factors = index_to_factors(index, self.spec.colour)
        return render(self.factors, self.spec.colour), self.factors[:, 1].clone()


def load_sprites(name: str) -> Dataset:
    """The dSprites set `name` (dsprites, dsprites-colour) as a Dataset, rendered now.

    Labels are the shape (classes square, ellipse, heart); ``factors`` holds every factor:
    {"names": FACTOR_NAMES, "values": {name: values}, "train": (n_train, 6), "test": (n_test, 6)}
    int64 factor indices, and ``sampler`` draws fresh grid images for ``fresh_batches``.
    """
    key = str(name).strip().lower().replace("_", "-")
    if key not in SPRITE_DATASETS:
        raise VaelabError(f"unknown sprite dataset {name!r}; choose one of: {', '.join(SPRITE_DATASETS)}")
    spec = SPRITE_DATASETS[key]
    train_index, test_index = sample_indices(spec)
    train_f, test_f = index_to_factors(train_index, spec.colour), index_to_factors(test_index, spec.colour)
    values = {k: list(v) for k, v in factor_values(spec.colour).items()}
    return Dataset(name=key, train_x=render(train_f, spec.colour), train_y=train_f[:, 1].clone(),
                   test_x=render(test_f, spec.colour), test_y=test_f[:, 1].clone(), image_shape=(SIZE, SIZE),
                   classes=list(SHAPES), channels=spec.channels, sampler=SpriteSampler(spec, test_index),
                   source=f"generated by vaelab (the dSprites grid rendered analytically; sample seed {SAMPLE_SEED})",
                   factors={"names": list(FACTOR_NAMES), "values": values, "train": train_f, "test": test_f})
