"""Conditional VAE (Sohn, Lee & Yan 2015): the VAE with the label given to both networks.

    p(z) = N(0, I),   p(x | z, y) = Bernoulli(decoder(z, y)),   q(z | x, y) = N(encoder(x, y))
    NELBO(x, y) = -E_q[log p(x | z, y)] + KL(q(z | x, y) || p(z))

With --net conv the label enters the encoder as one-hot planes stacked onto the image and
the decoder as a one-hot vector concatenated to z. Samples of a chosen class: z ~ N(0, I)
decoded with that label.
"""
from __future__ import annotations

from dataclasses import dataclass

from .options import option, option_table
from .vae import VAE, VAEOptions


@dataclass(frozen=True)
class CVAEOptions(VAEOptions):
    """The CVAE's options: the VAE's, with defaults as in the course text's conditional VAE: conv nets,
    latent 128 (train it on fashion-mnist with --resize 32 --epochs 50 --batch-size 256 --binarize none)."""
    z_dim: int = option(128, "latent dimension")
    net: str = option("conv", option_table(VAEOptions)["net"].help)
    n_classes: int = option(10, "number of classes of the label y")


class CVAE(VAE):
    """Conditional VAE: q(z|x,y), p(x|z,y); samples class by class."""

    conditional = True

    def __init__(self, x_dim: int = 784, n_classes: int = 10, z_dim: int = 128, net: str = "conv", **options):
        if n_classes < 2:
            raise ValueError(f"n_classes = {n_classes}: a conditional model needs at least 2 classes")
        super().__init__(x_dim=x_dim, n_classes=n_classes, z_dim=z_dim, net=net, **options)
