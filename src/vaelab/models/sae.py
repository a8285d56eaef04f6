"""Sparse autoencoder: the AE with an L_p penalty on its codes, and top-K codes at inference.

    loss = (1/N) sum_n [ rec(x_n, D(E(x_n))) + alpha ||E(x_n)||_p^p ],   ||z||_p^p = sum_k |z_k|^p

With --top-k K > 0 the model in evaluation mode keeps only the K largest-magnitude codes of
each input (the others are set to 0) before decoding. Reported: the fraction of non-zero codes
(|z_k| > ACTIVE_THRESHOLD) on the test set.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .ae import AE, AEOptions
from .options import option


@dataclass(frozen=True)
class SparseAEOptions(AEOptions):
    """The sparse autoencoder's options: the AE's and its penalty's (`vaelab train sae --help`)."""
    alpha: float = option(1e-3, "weight of the sparsity penalty alpha ||E(x)||_p^p")
    p: float = option(1.0, "exponent p of the penalty (1: L1)")
    top_k: int = option(0, "at inference keep only the K largest-magnitude codes (0: keep all)")


ACTIVE_THRESHOLD = 1e-3   # |z_k| above this counts as a non-zero code


def top_k_codes(z: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest |z_j| of each row of z, set the rest to 0."""
    idx = z.abs().topk(k, dim=-1).indices
    return z * torch.zeros_like(z).scatter_(-1, idx, 1.0)


class SparseAE(AE):
    """Sparse autoencoder: alpha ||E(x)||_p^p penalty, optional top-K codes at inference."""

    REPORT = replace(AE.REPORT, figures=("reconstruction", "codes"))

    def __init__(self, x_dim: int = 784, alpha: float = 1e-3, p: float = 1.0, top_k: int = 0, **ae_options):
        super().__init__(x_dim=x_dim, **ae_options)
        if alpha < 0 or p <= 0:
            raise ValueError(f"alpha = {alpha}, p = {p}: need alpha >= 0 and p > 0")
        if not 0 <= top_k <= self.z_dim:
            raise ValueError(f"top_k = {top_k}: must be between 0 (off) and z_dim = {self.z_dim}")
        self.alpha, self.p, self.top_k = alpha, p, top_k

    def posterior_mean(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E(x); in evaluation mode only its top_k largest-magnitude codes (top_k > 0)."""
        z = super().posterior_mean(x)
        return top_k_codes(z, self.top_k) if self.top_k and not self.training else z

    def penalty(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.alpha * z.abs().pow(self.p).sum(-1)

    def evaluate_extra(self, data) -> dict:
        codes = torch.cat([self.posterior_mean(xb) for xb in data.test_x.split(2000)])
        return {**super().evaluate_extra(data), "nonzero_fraction": (codes.abs() > ACTIVE_THRESHOLD).float().mean().item()}
