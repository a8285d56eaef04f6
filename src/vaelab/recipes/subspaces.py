"""The linear algebra of the ae-pca-mnist recipe: PCA, principal angles, distance distortion and the JL bound.

    pca = fit_pca(train_x)                      # exact: SVD of the centred data, in float64
    pca.reconstruct(x, L)                       # mean + V_L V_L^T (x - mean), the best rank-L affine map
    principal_angles(W_decoder, pca.basis(L))   # radians, ascending; 0 = the same subspace
    summary = distortion(x, f(x))               # ||f(x_i) - f(x_j)|| / ||x_i - x_j|| over all pairs i < j
    jl_epsilon(L, n)                            # the Johnson-Lindenstrauss epsilon for L dimensions, n points

Each is a small function of tensors, tested on its own (tests/test_subspaces.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import VaelabError


@dataclass
class PCA:
    """Principal components of a data matrix: its mean and the right singular vectors of the centred data."""
    mean: torch.Tensor          # (D,)
    components: torch.Tensor    # (D, K) orthonormal columns, by decreasing variance
    singular_values: torch.Tensor   # (K,) of the centred data matrix

    def basis(self, rank: int) -> torch.Tensor:
        """The top-`rank` principal directions as the columns of a (D, rank) matrix."""
        if not 1 <= rank <= self.components.shape[1]:
            raise VaelabError(f"rank {rank}: choose a code size between 1 and {self.components.shape[1]} "
                              f"(the number of principal components)")
        return self.components[:, :rank]

    def encode(self, x: torch.Tensor, rank: int) -> torch.Tensor:
        """The PCA code of x: its coordinates V_L^T (x - mean) in the top-`rank` principal directions."""
        return (x.to(self.mean.dtype) - self.mean) @ self.basis(rank)

    def reconstruct(self, x: torch.Tensor, rank: int) -> torch.Tensor:
        """mean + V_L V_L^T (x - mean): the orthogonal projection of x onto the rank-`rank` principal subspace."""
        return self.mean + self.encode(x, rank) @ self.basis(rank).T

    def mse(self, x: torch.Tensor, rank: int) -> float:
        """Mean squared error per coordinate of the rank-`rank` reconstruction of x."""
        return (self.reconstruct(x, rank) - x.to(self.mean.dtype)).pow(2).mean().item()

    def variance(self, n: int) -> torch.Tensor:
        """The variance along each principal direction (eigenvalues of the covariance), for n data rows."""
        return self.singular_values ** 2 / n


def fit_pca(x: torch.Tensor) -> PCA:
    """PCA of the rows of x, computed exactly in float64 (thin SVD of the centred data)."""
    x = x.detach().to(torch.float64)
    mean = x.mean(0)
    _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
    return PCA(mean, vt.T.contiguous(), s)


def orthonormal_basis(a: torch.Tensor) -> torch.Tensor:
    """Orthonormal columns spanning the column space of a (D, k) matrix of rank k (reduced QR, float64)."""
    q, r = torch.linalg.qr(a.detach().to(torch.float64))
    if r.diagonal().abs().min() <= 1e-10 * r.diagonal().abs().max():
        raise VaelabError("principal angles: the matrix has dependent columns (rank below its column count); "
                          "pass a basis of full column rank")
    return q


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The principal angles (radians, ascending) between the column spaces of a (D, k) and b (D, m).

    Their cosines are the singular values of Q_a^T Q_b, Q_a and Q_b orthonormal bases (Björck and
    Golub 1973); min(k, m) angles, 0 where the subspaces share a direction, pi/2 where orthogonal."""
    if a.shape[0] != b.shape[0]:
        raise VaelabError(f"principal angles: the bases live in different spaces ({a.shape[0]} and {b.shape[0]} rows); "
                          "pass two matrices with the same number of rows")
    cosines = torch.linalg.svdvals(orthonormal_basis(a).T @ orthonormal_basis(b)).clamp(-1.0, 1.0)
    return torch.arccos(cosines)


def align_basis(a: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis of a's column space rotated to be as close as possible to target's columns
    (orthogonal Procrustes: Q_a R with R = U V^T from the SVD U S V^T of Q_a^T target)."""
    q = orthonormal_basis(a)
    u, _, vt = torch.linalg.svd(q.T @ target.to(torch.float64))
    return q @ u @ vt


def random_projection(d: int, rank: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A (d, rank) Gaussian random projection scaled by 1/sqrt(rank): E ||x R||^2 = ||x||^2."""
    return torch.randn(d, rank, generator=generator, dtype=torch.float64) / math.sqrt(rank)


def distance_ratios(x: torch.Tensor, fx: torch.Tensor) -> torch.Tensor:
    """||f(x_i) - f(x_j)|| / ||x_i - x_j|| for every pair i < j with x_i != x_j."""
    if len(x) != len(fx) or len(x) < 2:
        raise VaelabError(f"distance ratios: need the same number (at least 2) of points and images, "
                          f"got {len(x)} and {len(fx)}")
    dx, df = torch.pdist(x.to(torch.float64)), torch.pdist(fx.to(torch.float64))
    keep = dx > 0
    return df[keep] / dx[keep]


def distortion(x: torch.Tensor, fx: torch.Tensor) -> dict[str, float]:
    """The distribution of the pairwise distance ratios of a map f (see distance_ratios): median, 5% and
    95% quantiles, max |log ratio|, and max |log(ratio / median)| (the spread about its own scale)."""
    r = distance_ratios(x, fx)
    log_r = r.log()
    median = r.median()
    return {"pairs": len(r), "median": median.item(), "q05": torch.quantile(r, 0.05).item(),
            "q95": torch.quantile(r, 0.95).item(), "max_abs_log": log_r.abs().max().item(),
            "max_abs_log_median": (log_r - median.log()).abs().max().item()}


def _jl_margin(eps: float) -> float:
    return eps ** 2 / 2 - eps ** 3 / 3


def jl_min_dim(n: int, eps: float) -> int:
    """The Johnson-Lindenstrauss dimension for n points and distortion eps in (0, 1) (Dasgupta and Gupta
    2003; sklearn's johnson_lindenstrauss_min_dim, which rounds down): the least L >= 4 ln n / (eps^2/2 - eps^3/3)."""
    if not 0 < eps < 1 or n < 2:
        raise VaelabError(f"jl_min_dim(n={n}, eps={eps}): give n >= 2 points and eps strictly between 0 and 1")
    return math.ceil(4 * math.log(n) / _jl_margin(eps))


def jl_epsilon(rank: int, n: int) -> float:
    """The smallest eps in (0, 1) with rank >= 4 ln n / (eps^2/2 - eps^3/3): a Gaussian projection to `rank`
    dimensions keeps every squared pairwise distance of n points within a factor [1 - eps, 1 + eps] with
    probability at least 1/n (each pair fails with probability at most 2/n^2). math.inf when no eps < 1
    qualifies (rank < 24 ln n): the bound then says nothing."""
    if rank < 1 or n < 2:
        raise VaelabError(f"jl_epsilon(rank={rank}, n={n}): give a code size >= 1 and n >= 2 points")
    need = 4 * math.log(n) / rank
    if need >= _jl_margin(1.0):
        return math.inf
    lo, hi = 0.0, 1.0   # the margin rises on (0, 1): bisect for margin(eps) = need
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _jl_margin(mid) < need else (lo, mid)
    return hi


def jl_pair_failure(rank: int, eps: float) -> float:
    """The exact probability that a Gaussian projection (random_projection) moves one pair's squared distance
    out of [1 - eps, 1 + eps] times its own: rank * ratio^2 is chi-square with `rank` degrees of freedom."""
    k, lo, hi = torch.tensor(rank / 2, dtype=torch.float64), rank * (1 - eps) / 2, rank * (1 + eps) / 2
    below = torch.special.gammainc(k, torch.tensor(max(lo, 0.0), dtype=torch.float64))
    return (below + torch.special.gammaincc(k, torch.tensor(hi, dtype=torch.float64))).item()
