"""Networks: small MLP encoders, decoders and classifiers.

Encoders return the parameters of a diagonal Gaussian (mean, variance); decoders return
the parameters of p(x|z) (Bernoulli logits, or Gaussian means). A label y, when given, is
concatenated to the input as a one-hot vector (conditional and semi-supervised models).

Every network returns its parameters' precision (float32), also under bfloat16 autocast
(`--precision bf16`): the log-densities and KLs downstream never run in bfloat16.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .densities import gaussian_parameters

ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}


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
    """Side of a square single-channel image with x_dim pixels (28 for MNIST, 32 when resized)."""
    side = int(round(x_dim ** 0.5))
    if side * side != x_dim or side not in (28, 32):
        raise ValueError(f"conv nets need square 28x28 or 32x32 single-channel images, got {x_dim} pixels")
    return side


class ConvEncoder(nn.Module):
    """q(z | x [, y]) for square single-channel images: three stride-2 3x3 convolutions
    (16-32-64 channels by default, ELU) then a linear layer to (mean, variance). A label y enters as
    one-hot planes stacked onto the image channel."""

    def __init__(self, x_dim: int, z_dim: int, y_dim: int = 0, channels=(16, 32, 64)):
        super().__init__()
        self.side, self.y_dim = image_side(x_dim), y_dim
        c1, c2, c3 = channels
        self.conv = nn.Sequential(
            nn.Conv2d(1 + y_dim, c1, 3, stride=2, padding=1), nn.ELU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ELU(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.ELU(),
            nn.Flatten(),
        )
        self.out = nn.Linear(c3 * 4 * 4, 2 * z_dim)   # 28 -> 14 -> 7 -> 4 and 32 -> 16 -> 8 -> 4

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        h = x.reshape(-1, 1, self.side, self.side)
        if y is not None:
            h = torch.cat([h, y[:, :, None, None].expand(-1, -1, self.side, self.side)], dim=1)
        return gaussian_parameters(full_precision(self.out(self.conv(h)), self))


class ConvDecoder(nn.Module):
    """p(x | z [, y]): the mirror image of ConvEncoder: linear to 64x4x4, then three stride-2
    3x3 transposed convolutions (64-32-16-1 channels by default). A label y is concatenated to z."""

    def __init__(self, z_dim: int, x_dim: int, y_dim: int = 0, channels=(16, 32, 64)):
        super().__init__()
        self.side = image_side(x_dim)
        c1, c2, c3 = channels
        self.c3 = c3
        first_pad = 0 if self.side == 28 else 1          # 4 -> 7 for 28x28 images, 4 -> 8 for 32x32
        self.inp = nn.Sequential(nn.Linear(z_dim + y_dim, c3 * 4 * 4), nn.ELU())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(c3, c2, 3, stride=2, padding=1, output_padding=first_pad), nn.ELU(),
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1), nn.ELU(),
            nn.ConvTranspose2d(c1, 1, 3, stride=2, padding=1, output_padding=1),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp(_cat(z, y)).reshape(-1, self.c3, 4, 4)
        return full_precision(self.deconv(h), self).view(*z.shape[:-1], self.side * self.side)
