"""Mixture priors: the Gaussian-mixture VAE and the VampPrior VAE.

    GMVAE:     p(z) = (1/k) sum_i N(z | mu_i, diag sigma_i^2)       (uniform weights; mu, sigma^2 learned)
    VampPrior: p(z) = (1/K) sum_k q(z | u_k)                         (Tomczak & Welling 2018: the encoder's
               posteriors at K learned pseudo-inputs u_k, each a pixel vector in [0, 1])

KL(q(z|x) || p(z)) has no closed form for either; it is estimated with the same single sample
z ~ q(z|x) that the reconstruction term uses:  KL ~ log q(z|x) - log p(z).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..densities import gaussian_parameters, log_normal, log_normal_mixture, sample_gaussian
from .options import POSITIVE_NUMBER, option
from .vae import VAE

MAX_COMPONENTS = 20_000   # mixture components, at most: a step evaluates batch x k Gaussians (500 by default)


@dataclass(frozen=True)
class GMVAEOptions:
    """The GMVAE's options (`vaelab train gmvae --help`)."""
    z_dim: int = option(10, "latent dimension")
    hidden: str = option("300,300", "hidden layer sizes of encoder and decoder, comma separated")
    k: int = option(500, "number of mixture components in the prior")
    beta: float = option(1.0, "weight of the KL term in the training objective; reported NELBO always uses 1",
                         rule=POSITIVE_NUMBER)
    iw_k: int = option(1, "importance samples of the training objective (1: the ELBO; k > 1: the IWAE-k bound)")


@dataclass(frozen=True)
class VampOptions:
    """The VampPrior VAE's options (`vaelab train vamp --help`)."""
    z_dim: int = option(40, "latent dimension")
    hidden: str = option("300,300", "hidden layer sizes of encoder and decoder, comma separated")
    k: int = option(500, "number of pseudo-inputs u_k (mixture components of the prior)")
    iw_k: int = option(1, "importance samples of the training objective (1: the ELBO; k > 1: the IWAE-k bound)")


class MixturePrior:
    """p(z) as a uniform mixture of k diagonal Gaussians given by prior(): log p(z), a Monte Carlo KL, draws."""

    k: int

    @classmethod
    def options_for_data(cls, given: dict, channels: int, binarize: str) -> dict:
        """None: the mixture-prior models have the Bernoulli likelihood only."""
        return {}

    def prior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, variances) of the k components, each (1, k, z_dim)."""
        raise NotImplementedError

    def log_pz(self, z: torch.Tensor) -> torch.Tensor:
        m, v = self.prior()
        return log_normal_mixture(z.reshape(-1, self.z_dim), m, v).view(z.shape[:-1])

    def kl_z(self, m: torch.Tensor, v: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return log_normal(z, m, v) - self.log_pz(z)

    def sample_z(self, n: int) -> torch.Tensor:
        m, v = self.prior()
        i = torch.randint(self.k, (n,), device=m.device)   # a component per sample, then a Gaussian draw
        return sample_gaussian(m[0, i], v[0, i])


class GMVAE(MixturePrior, VAE):
    """VAE with a learnable mixture-of-Gaussians prior (Monte Carlo KL).

    encoder, decoder: networks of your own, as vaelab.VAE takes them."""

    DATA_OPTIONS = ()   # MLP nets only: no image_shape

    def __init__(self, x_dim: int = 784, z_dim: int = 10, hidden="300,300", k: int = 500, beta: float = 1.0,
                 iw_k: int = 1, encoder: nn.Module | str | None = None, decoder: nn.Module | str | None = None):
        if not 0 < k <= MAX_COMPONENTS:
            raise ValueError(f"k = {k:,}: the prior needs from 1 to {MAX_COMPONENTS:,} mixture components (each "
                             f"step evaluates every component for every code)")
        super().__init__(x_dim=x_dim, z_dim=z_dim, hidden=hidden, beta=beta, iw_k=iw_k, encoder=encoder,
                         decoder=decoder)
        self.k = k
        # Means and pre-softplus variances, drawn from N(0, 1) / sqrt(k z_dim) as in the course reference.
        self.z_pre = nn.Parameter(torch.randn(1, 2 * k, z_dim) / math.sqrt(k * z_dim))

    def prior(self):
        return gaussian_parameters(self.z_pre, dim=1)


class VampVAE(MixturePrior, VAE):
    """VAE with the VampPrior: a mixture of the encoder's posteriors at K learned pseudo-inputs.

    encoder, decoder: networks of your own, as vaelab.VAE takes them (the encoder also maps the pseudo-inputs)."""

    DATA_OPTIONS = ()   # MLP nets only: no image_shape

    def __init__(self, x_dim: int = 784, z_dim: int = 40, hidden="300,300", k: int = 500, iw_k: int = 1,
                 encoder: nn.Module | str | None = None, decoder: nn.Module | str | None = None):
        if not 0 < k <= MAX_COMPONENTS:
            raise ValueError(f"k = {k:,}: the VampPrior needs from 1 to {MAX_COMPONENTS:,} pseudo-inputs (each is an "
                             f"image the encoder maps at every step)")
        super().__init__(x_dim=x_dim, z_dim=z_dim, hidden=hidden, iw_k=iw_k, encoder=encoder, decoder=decoder)
        self.k = k
        # Pseudo-inputs as pre-sigmoid pixels, starting near grey 0.5 with small noise (Tomczak & Welling
        # initialise them around the data mean): the sigmoid keeps every u_k a valid image in [0, 1].
        self.u_pre = nn.Parameter(0.1 * torch.randn(k, x_dim))
        self._prior_cache = None

    def pseudo_inputs(self) -> torch.Tensor:
        """The K pseudo-inputs u_k, (K, x_dim), pixels in [0, 1]."""
        return torch.sigmoid(self.u_pre)

    def prior(self):
        """q(z | u_k) for every pseudo-input: recomputed at every training step (it moves with the encoder),
        computed once per evaluation (eval mode without gradients: the weights cannot change)."""
        if self.training or torch.is_grad_enabled() or self._prior_cache is None:
            m, v = self.enc(self.pseudo_inputs())
            prior = m.unsqueeze(0), v.unsqueeze(0)
            if self.training or torch.is_grad_enabled():
                return prior
            self._prior_cache = prior
        return self._prior_cache

    def train(self, mode: bool = True):
        self._prior_cache = None   # weights may change from here on
        return super().train(mode)
