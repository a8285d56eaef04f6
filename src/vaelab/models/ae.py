"""Autoencoder: a deterministic encoder E and decoder D trained to reconstruct their input.

    z = E(x),   x_hat = D(z),   loss = (1/N) sum_n [ rec(x_n, x_hat_n) + penalty(x_n) ]
    rec = (1/D) ||x - x_hat||^2  (MSE, default)   or   (1/D) sum_d BCE(x_d, sigmoid(logit_d))  (--loss bce)

The plain AE has no penalty; the sparse, contractive and denoising autoencoders (sae.py, cae.py,
dae.py) subclass it. Defaults follow the 2D toy case of the course text: MLP x-128-64-32-L and
back, L = 16, ReLU, trained with AdamW.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..nets import ACTIVATIONS, check_activation, full_precision, mlp
from .base import Model
from .options import option
from .policy import ReportPolicy, TrainingDefaults
from .vae import parse_hidden


@dataclass(frozen=True)
class AEOptions:
    """The autoencoder's options (`vaelab train ae --help`); the sparse, contractive and denoising
    autoencoders extend them."""
    z_dim: int = option(16, "code dimension L")
    hidden: str = option("128,64,32", "encoder hidden sizes (the decoder mirrors them), comma separated")
    loss: str = option("mse", "reconstruction loss: mse (continuous data) or bce (images in [0, 1])")
    activation: str = option("relu", f"hidden activation: {', '.join(ACTIVATIONS)}")


def psnr(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio of images in [0, 1], per image: 10 log10(1 / MSE) in dB."""
    mse = (x - x_hat).pow(2).mean(-1).clamp_min(1e-10)
    return -10.0 * torch.log10(mse)


class AE(Model):
    """Autoencoder (deterministic), MSE or BCE reconstruction loss."""

    TERMS = ("loss", "rec", "penalty", "mse")      # what terms returns (an AE has no likelihood, so no ELBO)
    deterministic = True                           # one evaluation pass is exact
    # trained on grey levels / continuous values (not binarized), with AdamW
    TRAINING = TrainingDefaults(iters=10_000, optimizer="adamw", binarize="none")
    REPORT = ReportPolicy(curves=("loss", "rec", "penalty"), figures=("reconstruction",),
                          anomaly_score="reconstruction MSE")

    def __init__(self, x_dim: int = 784, z_dim: int = 16, hidden="128,64,32", loss: str = "mse",
                 activation: str = "relu"):
        super().__init__()
        if loss not in ("mse", "bce"):
            raise ValueError(f"unknown loss {loss!r}: use mse or bce")
        check_activation(activation)
        if z_dim <= 0:
            raise ValueError(f"z_dim = {z_dim}: the code needs at least one dimension")
        hidden = parse_hidden(hidden)
        self.x_dim, self.z_dim, self.loss_name = x_dim, z_dim, loss
        self.likelihood = "bernoulli" if loss == "bce" else "gaussian"   # which data it can model
        self.enc = mlp([x_dim, *hidden, z_dim], activation)
        self.dec = mlp([z_dim, *reversed(hidden), x_dim], activation)

    # -- the model ----------------------------------------------------------------------
    def posterior_mean(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The code E(x) (an autoencoder's "posterior" is a point)."""
        return full_precision(self.enc(x), self.enc)   # float32 also under bf16 autocast

    def mean_x_given_z(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """D(z): the reconstruction (probabilities for --loss bce)."""
        out = full_precision(self.dec(z), self.dec)
        return torch.sigmoid(out) if self.loss_name == "bce" else out

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """The input the encoder sees during training: x itself (the denoising AE corrupts it)."""
        return x

    def penalty(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per-example regulariser; 0 for the plain AE."""
        return torch.zeros(len(x), dtype=x.dtype, device=x.device)

    def terms(self, x: torch.Tensor, y: torch.Tensor | None = None, reduce: bool = True):
        """(loss, rec, penalty, mse) per example (batch means with reduce=True).

        rec is the training reconstruction loss (MSE or BCE, mean over coordinates), mse the
        mean squared error of the reconstruction, loss = rec + penalty."""
        x_in = self.corrupt(x) if self.training else x
        z = self.posterior_mean(x_in)
        out = self.dec(z)
        if self.loss_name == "bce":
            rec = F.binary_cross_entropy_with_logits(out, x, reduction="none").mean(-1)
            mse = (torch.sigmoid(out) - x).pow(2).mean(-1)
        else:
            rec = mse = (out - x).pow(2).mean(-1)
        pen = self.penalty(x_in, z)
        terms = (rec + pen, rec, pen, mse)
        return tuple(t.mean() for t in terms) if reduce else terms

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None):
        loss, rec, pen, mse = self.terms(x)
        return loss, {"rec": rec, "penalty": pen, "mse": mse}

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """Per-example reconstruction error (MSE) of the clean input."""
        return (self.mean_x_given_z(self.posterior_mean(x)) - x).pow(2).mean(-1)

    def evaluate_extra(self, data) -> dict:
        """PSNR (dB) of the test reconstructions, for images in [0, 1]."""
        if data.image_shape is None:
            return {}
        x = data.test_x_grey
        return {"psnr": torch.cat([psnr(xb, self.mean_x_given_z(self.posterior_mean(xb)))
                                   for xb in x.split(2000)]).mean().item()}
