"""Contractive autoencoder (Rifai et al. 2011): the AE with a penalty on the encoder's Jacobian.

    loss = (1/N) sum_n [ rec(x_n, D(E(x_n))) + alpha ||J_E(x_n)||_F^2 ],   J_E = dE/dx  (L x D)

The squared Frobenius norm is computed
* exactly (--jacobian exact): the full Jacobian by forward- or reverse-mode autodiff, whichever
  needs fewer passes (min(D, L));
* or by a random-projection (Hutchinson) estimate (--jacobian hutchinson): for v with
  E[v v^T] = I (Rademacher entries), E_v ||J v||^2 = tr(J^T J) = ||J||_F^2, so
  (1/M) sum_m ||J v_m||^2 with M = --projections is unbiased; each J v is one forward-mode pass.
--jacobian auto picks exact for inputs of at most EXACT_MAX_DIM dimensions. Evaluation always
reports the exact value.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import jacfwd, jacrev, jvp, vmap

from .ae import AE, AEOptions
from .options import option


@dataclass(frozen=True)
class ContractiveAEOptions(AEOptions):
    """The contractive autoencoder's options: the AE's and its penalty's (`vaelab train cae --help`)."""
    alpha: float = option(1e-2, "weight of the contractive penalty alpha ||dE/dx||_F^2")
    jacobian: str = option("auto", "exact, hutchinson (random projections) or auto (exact for small inputs)")
    projections: int = option(1, "random projections per example for the hutchinson estimate")


EXACT_MAX_DIM = 64


def jacobian_frobenius_exact(f, x: torch.Tensor) -> torch.Tensor:
    """||df/dx (x_n)||_F^2 for every row x_n of x, from the full Jacobian; returns (N,)."""
    d_in, d_out = x.shape[-1], f(x[:1]).shape[-1]
    jac = vmap(jacfwd(f) if d_in <= d_out else jacrev(f))(x)     # (N, d_out, d_in)
    return jac.pow(2).sum((-2, -1))


def jacobian_frobenius_hutchinson(f, x: torch.Tensor, projections: int = 1, generator=None) -> torch.Tensor:
    """Unbiased estimate (1/M) sum_m ||J v_m||^2, v_m Rademacher, of ||df/dx (x_n)||_F^2; returns (N,).

    The M projections of all N rows go through one forward-mode pass on the (M N, D) stacked inputs."""
    xs = x.expand(projections, *x.shape).reshape(-1, x.shape[-1])
    v = torch.randint(0, 2, xs.shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1
    _, jv = jvp(f, (xs,), (v,))
    return jv.pow(2).sum(-1).view(projections, len(x)).mean(0)


class ContractiveAE(AE):
    """Contractive autoencoder: alpha ||dE/dx||_F^2 penalty (exact or Hutchinson estimate)."""

    def __init__(self, x_dim: int = 784, alpha: float = 1e-2, jacobian: str = "auto", projections: int = 1,
                 **ae_options):
        super().__init__(x_dim=x_dim, **ae_options)
        if jacobian not in ("auto", "exact", "hutchinson"):
            raise ValueError(f"unknown jacobian {jacobian!r}: use auto, exact or hutchinson")
        if alpha < 0 or projections <= 0:
            raise ValueError(f"alpha = {alpha}, projections = {projections}: need alpha >= 0 and projections >= 1")
        self.alpha, self.projections = alpha, projections
        self.exact = jacobian == "exact" or (jacobian == "auto" and x_dim <= EXACT_MAX_DIM)

    def penalty(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.exact or not self.training:
            return self.alpha * jacobian_frobenius_exact(self.enc, x)
        return self.alpha * jacobian_frobenius_hutchinson(self.enc, x, self.projections)
