"""Networks: small MLP encoders, decoders and classifiers.

Encoders return the parameters of a diagonal Gaussian (mean, variance); decoders return
the parameters of p(x|z) (Bernoulli logits, or Gaussian means). A label y, when given, is
concatenated to the input as a one-hot vector (conditional and semi-supervised models).

Every network returns its parameters' precision (float32), also under bfloat16 autocast
(`--precision bf16`): the log-densities and KLs downstream never run in bfloat16.
"""
from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from torch import nn

from .densities import gaussian_parameters
from .errors import first_line


class Tanh(nn.Module):
    """tanh(x); under torch.compile computed as 2 sigmoid(2x) - 1. A CPU's vectorised tanh costs about three
    sigmoids (0.95 against 0.28 ms for 300,000 values, one thread), and fused into one loop the sigmoid form
    made the two-layer model's compiled IWAE evaluation 6-11% faster. Uncompiled it would be four kernels
    forward and back (3-7% slower per training step of that model, in two measurements), so eager code keeps torch.tanh
    (benchmarks/tanh_speed.py measures all three). The two agree within 2e-7 (absolute: near x = 0 the subtraction rounds to float32's
    spacing at 1; 1.8e-7 the largest seen), both exactly -1 and 1 far out."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():
            return 2 * torch.sigmoid(2 * x) - 1
        return torch.tanh(x)


ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": Tanh, "leaky_relu": nn.LeakyReLU, "softplus": nn.Softplus}


def check_activation(activation: str) -> None:
    """Refuse an activation name mlp() does not know, naming the known ones."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}: use {', '.join(ACTIVATIONS)}")


def mlp(sizes: list[int], activation: str = "elu") -> nn.Sequential:
    """Linear layers of the given sizes with `activation` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def full_precision(out: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """out in the dtype of module's parameters (undoes autocast's bfloat16; a no-op otherwise)."""
    return out.to(next(module.parameters()).dtype)


def _cat(x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    return x if y is None else torch.cat([x, y], dim=-1)


class Encoder(nn.Module):
    """q(z | x [, y]) = N(m, diag v): MLP (x_dim [+ y_dim]) - hidden - (2 z_dim), v = softplus + eps."""

    def __init__(self, x_dim: int, z_dim: int, hidden=(300, 300), y_dim: int = 0, activation="elu"):
        super().__init__()
        self.net = mlp([x_dim + y_dim, *hidden, 2 * z_dim], activation)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        return gaussian_parameters(full_precision(self.net(_cat(x, y)), self))

    def forward_every_label(self, x: torch.Tensor, n_classes: int):
        """q(z | x, y) for every label y of every x: (m, v) of shape (n_classes * batch, z_dim), label-major.

        Same values as forward(x.repeat(K, 1), one-hot labels), but the first layer's x part is
        computed once per image: W [x; e_y] + b = (W_x x + b) + W_y[:, y]."""
        first = self.net[0]
        x_dim = first.in_features - n_classes
        h = F.linear(x, first.weight[:, :x_dim], first.bias)                  # (b, h1)
        h = h.unsqueeze(0) + first.weight[:, x_dim:].t().unsqueeze(1)          # (K, b, h1)
        return gaussian_parameters(full_precision(self.net[1:](h.reshape(-1, h.shape[-1])), self))


class Decoder(nn.Module):
    """p(x | z [, y]): MLP (z_dim [+ y_dim]) - hidden - x_dim, returning logits or means."""

    def __init__(self, z_dim: int, x_dim: int, hidden=(300, 300), y_dim: int = 0, activation="elu"):
        super().__init__()
        self.net = mlp([z_dim + y_dim, *hidden, x_dim], activation)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return full_precision(self.net(_cat(z, y)), self)


class Classifier(nn.Module):
    """q(y | x): MLP x_dim - hidden - n_classes, returning logits."""

    def __init__(self, x_dim: int, n_classes: int = 10, hidden=(300, 300), activation="relu"):
        super().__init__()
        self.net = mlp([x_dim, *hidden, n_classes], activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return full_precision(self.net(x), self)


def image_side(x_dim: int) -> int:
    """Side of a square single-channel image with x_dim pixels (28 for MNIST, 32 when resized): the shape the
    conv nets assume when given no image_shape."""
    side = int(round(x_dim ** 0.5))
    if side * side != x_dim or side not in (28, 32):
        raise ValueError(f"conv nets need square 28x28 or 32x32 single-channel images, got {x_dim} pixels; for "
                         f"other images pass image_shape=(channels, height, width)")
    return side


# The conv nets' linear layer, at most: it grows with the image, (H/8) x (W/8) x c3 inputs after three
# stride-2 convolutions (a 64-channel 1024x1024 image and z_dim 128 would need 268 million weights, 1 GB).
MAX_CONV_LINEAR_WEIGHTS = 50_000_000
MIN_CONV_SIDE = 4   # 4 -> 2 -> 1 -> 1: smaller sides leave the later convolutions only padding to read


def check_image_shape(image_shape, x_dim: int) -> tuple[int, int, int]:
    """image_shape as a tuple (C, H, W) of positive whole numbers holding x_dim values (ValueError otherwise)."""
    dims = tuple(image_shape) if isinstance(image_shape, (list, tuple)) else None
    if dims is None or len(dims) != 3 or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d <= 0
                                             for d in dims):
        raise ValueError(f"image_shape {image_shape!r}: give (channels, height, width), three positive whole numbers")
    c, h, w = (int(d) for d in dims)
    if c * h * w != x_dim:
        raise ValueError(f"image_shape {dims} holds {c} x {h} x {w} = {c * h * w:,} values, but x_dim is {x_dim:,}; "
                         f"give the shape of the data's images, channels first")
    return c, h, w


def conv_sizes(x_dim: int, image_shape=None, channels=(16, 32, 64), n_out: int = 0):
    """(C, [(H, W) before and after each of the conv nets' three stride-2 convolutions]), s -> ceil(s / 2) per
    axis, checked: image_shape None means a 28x28 or 32x32 single-channel image (image_side); sides under
    MIN_CONV_SIDE and a linear layer (c3 h3 w3 x n_out weights) over MAX_CONV_LINEAR_WEIGHTS are refused."""
    if image_shape is None:
        c, h, w = 1, image_side(x_dim), image_side(x_dim)
    else:
        c, h, w = check_image_shape(image_shape, x_dim)
    if min(h, w) < MIN_CONV_SIDE:
        raise ValueError(f"conv nets need images of at least {MIN_CONV_SIDE}x{MIN_CONV_SIDE} pixels (three stride-2 "
                         f"convolutions), got {h}x{w}; image_shape is (channels, height, width), channels first")
    sizes = [(h, w)]
    for _ in range(3):
        sizes.append(tuple(-(-s // 2) for s in sizes[-1]))
    (h3, w3), c3 = sizes[-1], channels[-1]
    if c3 * h3 * w3 * n_out > MAX_CONV_LINEAR_WEIGHTS:
        fit = 8 * max(1, int((MAX_CONV_LINEAR_WEIGHTS / (c3 * n_out)) ** 0.5))
        raise ValueError(f"conv nets on {h}x{w} images need a linear layer of {c3 * h3 * w3 * n_out:,} weights "
                         f"({c3} channels x {h3} x {w3} pixels after three stride-2 convolutions, times {n_out} latent "
                         f"values), over the {MAX_CONV_LINEAR_WEIGHTS:,} allowed: resize the images (to about "
                         f"{fit}x{fit} pixels or fewer), or use fewer channels or a smaller z_dim")
    return c, sizes


class ConvEncoder(nn.Module):
    """q(z | x [, y]) for images of shape (C, H, W): three stride-2 3x3 convolutions (16-32-64 channels by
    default, ELU; each side s -> ceil(s / 2)) then a linear layer to (mean, variance). A label y enters as
    one-hot planes stacked onto the image's channels. image_shape None: a 28x28 or 32x32 single-channel image."""

    def __init__(self, x_dim: int, z_dim: int, y_dim: int = 0, channels=(16, 32, 64),
                 image_shape: tuple[int, int, int] | None = None):
        super().__init__()
        n_channels, sizes = conv_sizes(x_dim, image_shape, channels, 2 * z_dim)
        self.image_shape, self.y_dim = (n_channels, *sizes[0]), y_dim
        c1, c2, c3 = channels
        self.conv = nn.Sequential(
            nn.Conv2d(self.image_shape[0] + y_dim, c1, 3, stride=2, padding=1), nn.ELU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ELU(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.ELU(),
            nn.Flatten(),
        )
        self.out = nn.Linear(c3 * sizes[3][0] * sizes[3][1], 2 * z_dim)   # 28 -> 14 -> 7 -> 4, 32 -> 16 -> 8 -> 4

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        c, h, w = self.image_shape
        x = x.reshape(-1, c, h, w)
        if y is not None:
            x = torch.cat([x, y[:, :, None, None].expand(-1, -1, h, w)], dim=1)
        return gaussian_parameters(full_precision(self.out(self.conv(x)), self))


class ConvDecoder(nn.Module):
    """p(x | z [, y]): the mirror image of ConvEncoder: linear to c3 x h3 x w3 (64x4x4 for 28x28 or 32x32),
    then three stride-2 3x3 transposed convolutions (64-32-16-C channels by default) whose output padding
    (0 for an odd side, 1 for an even one) restores each of the encoder's sizes. A label y is concatenated to z."""

    def __init__(self, z_dim: int, x_dim: int, y_dim: int = 0, channels=(16, 32, 64),
                 image_shape: tuple[int, int, int] | None = None):
        super().__init__()
        n_channels, sizes = conv_sizes(x_dim, image_shape, channels, z_dim + y_dim)
        self.image_shape, self.x_dim, self.start = (n_channels, *sizes[0]), x_dim, sizes[3]
        c1, c2, c3 = channels
        self.c3 = c3
        # s = 2 s' - 1 + output padding from s' = ceil(s / 2): 4 -> 7 for 28x28 images, 4 -> 8 for 32x32
        pad = [tuple(1 - s % 2 for s in size) for size in sizes[:3]]   # per axis, for the sizes to restore
        self.inp = nn.Sequential(nn.Linear(z_dim + y_dim, c3 * sizes[3][0] * sizes[3][1]), nn.ELU())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(c3, c2, 3, stride=2, padding=1, output_padding=pad[2]), nn.ELU(),
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=pad[1]), nn.ELU(),
            nn.ConvTranspose2d(c1, n_channels, 3, stride=2, padding=1, output_padding=pad[0]),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp(_cat(z, y)).reshape(-1, self.c3, *self.start)
        return full_precision(self.deconv(h), self).view(*z.shape[:-1], self.x_dim)


# ---------------------------------------------------------------------------------------
# Networks of the user's own
# ---------------------------------------------------------------------------------------
class UserEncoder(nn.Module):
    """A user's encoder network as q(z | x [, y]).

    The network is called as net(x) (conditional models: net(x, y_onehot)) on x of shape
    (batch, x_dim) and must return either
      * a pair (mean, variance), each (batch, z_dim), variance > 0, or
      * one tensor (batch, 2 * z_dim): the mean, then a pre-softplus variance
        (variance = softplus(second half) + 1e-8, as the built-in encoders do).
    Images arrive flattened: reshape them inside the network (x.view(-1, 1, 28, 28)).
    """

    def __init__(self, net: nn.Module, x_dim: int, z_dim: int, n_classes: int = 0):
        super().__init__()
        self.net, self.x_dim, self.z_dim, self.n_classes = net, x_dim, z_dim, n_classes

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        out = self.net(x) if y is None else self.net(x, y)
        if isinstance(out, (tuple, list)) and len(out) == 2:
            m, v = out
        elif torch.is_tensor(out) and out.shape == (len(x), 2 * self.z_dim):
            m, v = gaussian_parameters(out.float())   # in float16, softplus + 1e-8 could round to 0
        else:
            got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise ValueError(f"encoder returned {got}; expected (batch, 2 * z_dim) = ({len(x)}, {2 * self.z_dim}) or a "
                             f"(mean, variance) pair of shape ({len(x)}, {self.z_dim}) each")
        if m.shape != (len(x), self.z_dim) or v.shape != m.shape:
            raise ValueError(f"encoder returned mean {tuple(m.shape)} and variance {tuple(v.shape)}; expected "
                             f"({len(x)}, {self.z_dim}) each (z_dim = {self.z_dim})")
        return m.float(), v.float()


class UserDecoder(nn.Module):
    """A user's decoder network as p(x | z [, y]).

    Called as net(z) (conditional: net(z, y_onehot)) on z of shape (n, z_dim); returns Bernoulli
    logits (likelihood bernoulli) or Gaussian means, (n, x_dim) or any shape with x_dim values per
    row (e.g. (n, 1, 28, 28)). Leading sample dimensions (L or k, batch, z_dim) are flattened for it.
    """

    def __init__(self, net: nn.Module, z_dim: int, x_dim: int, n_classes: int = 0):
        super().__init__()
        self.net, self.z_dim, self.x_dim, self.n_classes = net, z_dim, x_dim, n_classes

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        lead = z.shape[:-1]
        flat = z.reshape(-1, z.shape[-1])
        out = self.net(flat) if y is None else self.net(flat, y.reshape(-1, y.shape[-1]))
        if not torch.is_tensor(out) or out.numel() != flat.shape[0] * self.x_dim:
            got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise ValueError(f"decoder returned {got} for {flat.shape[0]} codes; expected ({flat.shape[0]}, "
                             f"{self.x_dim}) (x_dim = {self.x_dim} values per example)")
        return out.reshape(*lead, self.x_dim).float()


@torch.no_grad()
def check_networks(enc: UserEncoder, dec: UserDecoder) -> None:
    """Run the user's networks once on a dummy batch of 2 (uniform values, as images in [0, 1], from a
    generator of its own: the global random stream is left as it was), so that a wrong output shape, or a
    variance that is not positive, is an error at once rather than a non-finite loss in training."""
    modes = [m.training for m in (enc, dec)]
    enc.eval(), dec.eval()
    try:
        y = torch.zeros(2, enc.n_classes) if enc.n_classes else None
        if y is not None:
            y[:, 0] = 1
        called = "" if y is None else f" and the one-hot label (2, {enc.n_classes}) (a conditional model calls net(x, y))"
        try:
            x = torch.rand(2, enc.x_dim, generator=torch.Generator().manual_seed(0))
            m, v = enc(x, y)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"encoder failed on a batch of shape (2, {enc.x_dim}) (x_dim = {enc.x_dim}){called}: "
                             f"{first_line(e)}") from None
        if not bool(torch.isfinite(v).all()) or not bool((v > 0).all()):
            raise ValueError(f"encoder returned a variance <= 0 or not finite (from {v.min().item():.3g} to "
                             f"{v.max().item():.3g}) on a batch of uniform values: return (mean, variance) with "
                             f"0 < variance < inf (e.g. softplus(h) + 1e-8), or one tensor (batch, 2 * z_dim) for "
                             f"vaelab to apply softplus to its second half")
        if not bool(torch.isfinite(m).all()):
            raise ValueError("encoder returned a mean that is not finite on a batch of uniform values")
        try:
            dec(m, y)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"decoder failed on codes of shape (2, {dec.z_dim}) (z_dim = {dec.z_dim})"
                             f"{called.replace('net(x, y)', 'net(z, y)')}: "
                             f"{first_line(e)}") from None
    finally:
        enc.train(modes[0]), dec.train(modes[1])
