"""Gaussian-mixture VAE: the VAE with a learnable mixture-of-Gaussians prior.

    p(z) = (1/k) sum_i N(z | mu_i, diag sigma_i^2)   (uniform weights; mu, sigma^2 learned)

KL(q(z|x) || p(z)) has no closed form; it is estimated with the same single sample z ~ q(z|x)
that the reconstruction term uses:  KL ~ log q(z|x) - log p(z).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..densities import gaussian_parameters, log_normal, log_normal_mixture, sample_gaussian
from .vae import VAE

OPTIONS = {
    "z_dim": (int, 10, "latent dimension"),
    "hidden": (str, "300,300", "hidden layer sizes of encoder and decoder, comma separated"),
    "k": (int, 500, "number of mixture components in the prior"),
    "beta": (float, 1.0, "weight of the KL term in the training objective; reported NELBO always uses 1"),
}


class GMVAE(VAE):
    """VAE with a learnable mixture-of-Gaussians prior (Monte Carlo KL)."""

    def __init__(self, x_dim: int = 784, z_dim: int = 10, hidden="300,300", k: int = 500, beta: float = 1.0):
        if k <= 0:
            raise ValueError(f"k = {k}: the prior needs at least one mixture component")
        super().__init__(x_dim=x_dim, z_dim=z_dim, hidden=hidden, beta=beta)
        self.k = k
        # Means and pre-softplus variances, drawn from N(0, 1) / sqrt(k z_dim) as in the course reference.
        self.z_pre = nn.Parameter(torch.randn(1, 2 * k, z_dim) / math.sqrt(k * z_dim))

    def prior(self):
        """(means, variances) of the k components, each (1, k, z_dim)."""
        return gaussian_parameters(self.z_pre, dim=1)

    def log_pz(self, z: torch.Tensor) -> torch.Tensor:
        m, v = self.prior()
        return log_normal_mixture(z.reshape(-1, self.z_dim), m, v).view(z.shape[:-1])

    def kl_z(self, m: torch.Tensor, v: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return log_normal(z, m, v) - self.log_pz(z)

    def sample_z(self, n: int) -> torch.Tensor:
        m, v = self.prior()
        i = torch.randint(self.k, (n,), device=m.device)   # a component per sample, then a Gaussian draw
        return sample_gaussian(m[0, i], v[0, i])
