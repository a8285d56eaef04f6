"""The linear algebra of the ae-pca-mnist recipe (vaelab.recipes.subspaces): PCA, principal angles, the JL bound."""
import math

import pytest
import torch

from vaelab.errors import VaelabError
from vaelab.recipes.subspaces import (align_basis, distance_ratios, distortion, fit_pca, jl_epsilon, jl_min_dim,
                                      jl_pair_failure, principal_angles, random_projection)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_principal_angles_of_a_subspace_with_itself_are_zero():
    a = torch.randn(20, 4, generator=_gen(), dtype=torch.float64)
    mixed = a @ torch.randn(4, 4, generator=_gen(1), dtype=torch.float64)   # another basis of the same span
    assert principal_angles(a, mixed).abs().max() < 1e-6
    assert principal_angles(a, a).shape == (4,)


def test_principal_angles_of_orthogonal_subspaces_are_right_angles():
    eye = torch.eye(10, dtype=torch.float64)
    angles = principal_angles(eye[:, :3], eye[:, 3:7] @ torch.randn(4, 2, generator=_gen(), dtype=torch.float64))
    assert torch.allclose(angles, torch.full((2,), math.pi / 2, dtype=torch.float64))


@pytest.mark.parametrize("theta", [0.1, 0.7, 1.2])
def test_principal_angle_of_a_rotated_line_and_plane_is_the_rotation(theta):
    e = torch.eye(5, dtype=torch.float64)
    line = e[:, :1]
    rotated = math.cos(theta) * e[:, :1] + math.sin(theta) * e[:, 1:2]
    assert principal_angles(line, rotated).item() == pytest.approx(theta, abs=1e-9)
    plane = torch.cat([e[:, 2:3], e[:, :1]], 1)               # shares e2 with the rotated plane below
    turned = torch.cat([e[:, 2:3], rotated], 1)
    assert principal_angles(plane, turned).tolist() == pytest.approx([0.0, theta], abs=1e-7)


def test_principal_angles_refuse_mismatched_or_dependent_bases():
    with pytest.raises(VaelabError, match="same number of rows"):
        principal_angles(torch.ones(4, 1), torch.ones(5, 1))
    with pytest.raises(VaelabError, match="full column rank"):
        principal_angles(torch.ones(4, 2), torch.eye(4)[:, :1])


def test_pca_reconstruction_is_the_best_rank_L_affine_approximation():
    """Eckart-Young: mean + V_L V_L^T (x - mean) is the truncated SVD of the centred data, and no other rank-L
    projection (here: random subspaces, and the mean of the raw, uncentred SVD) does better."""
    g = _gen()
    x = torch.randn(60, 12, generator=g, dtype=torch.float64) @ torch.randn(12, 12, generator=g, dtype=torch.float64)
    x = x + 3.0
    pca = fit_pca(x)
    centred = x - x.mean(0)
    u, s, vt = torch.linalg.svd(centred, full_matrices=False)
    for rank in (1, 3, 6):
        truncated = x.mean(0) + u[:, :rank] @ torch.diag(s[:rank]) @ vt[:rank]
        assert torch.allclose(pca.reconstruct(x, rank), truncated, atol=1e-10)
        best = pca.mse(x, rank)
        assert best == pytest.approx((s[rank:] ** 2).sum().item() / x.numel())   # the discarded singular values
        for seed in range(5):
            q, _ = torch.linalg.qr(torch.randn(12, rank, generator=_gen(seed), dtype=torch.float64))
            other = x.mean(0) + centred @ q @ q.T
            assert ((other - x) ** 2).mean().item() >= best - 1e-12
    assert pca.mse(x, 12) < 1e-20 and pca.variance(len(x))[0] == pytest.approx(s[0].item() ** 2 / len(x))
    with pytest.raises(VaelabError, match="between 1 and 12"):
        pca.basis(13)


def test_align_basis_rotates_a_basis_of_the_same_span_onto_the_target():
    target, _ = torch.linalg.qr(torch.randn(30, 4, generator=_gen(), dtype=torch.float64))
    other = target @ torch.randn(4, 4, generator=_gen(1), dtype=torch.float64)
    aligned = align_basis(other, target)
    assert torch.allclose(aligned, target, atol=1e-8)
    assert torch.allclose(aligned.T @ aligned, torch.eye(4, dtype=torch.float64), atol=1e-10)


def test_distance_ratios_of_scalings_and_projections():
    x = torch.randn(40, 6, generator=_gen(), dtype=torch.float64)
    assert torch.allclose(distance_ratios(x, 2.5 * x), torch.full((40 * 39 // 2,), 2.5, dtype=torch.float64))
    d = distortion(x, x[:, :3])        # a coordinate projection only shrinks distances
    assert d["pairs"] == 780 and d["q95"] <= 1 + 1e-12 and d["q05"] <= d["median"] <= d["q95"]
    assert distortion(x, 3 * x)["max_abs_log_median"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(VaelabError, match="same number"):
        distance_ratios(x, x[:5])


def test_jl_epsilon_inverts_the_min_dim_formula():
    # sklearn's johnson_lindenstrauss_min_dim(1e6, eps=[0.5, 0.1]) gives 663 and 11841 (4 ln n / margin = 663.1 and
    # 11841.9, rounded down); rounded up, the inequality L >= 4 ln n / margin holds
    assert jl_min_dim(10 ** 6, 0.5) == 664 and jl_min_dim(10 ** 6, 0.1) == 11842 and jl_min_dim(1000, 0.5) == 332
    for n, eps in ((1000, 0.5), (100, 0.3), (50_000, 0.8)):
        size = jl_min_dim(n, eps)
        assert jl_epsilon(size, n) <= eps < jl_epsilon(size - 1, n)
    assert jl_epsilon(100, 1000) == math.inf          # below 24 ln n dimensions the bound says nothing
    assert jl_epsilon(165, 1000) == math.inf and jl_epsilon(166, 1000) < 1   # 24 ln 1000 = 165.8
    with pytest.raises(VaelabError, match="eps strictly between 0 and 1"):
        jl_min_dim(10, 1.5)


def test_random_projections_keep_distances_within_the_jl_epsilon_as_often_as_expected():
    """Random data, Gaussian projections at the JL dimension: each pair leaves [1 - eps, 1 + eps] (squared ratio)
    with the exact chi-square probability, below the Dasgupta-Gupta bound 2 exp(-L (eps²/2 - eps³/3) / 2) <= 2/n²;
    and every pair stays inside in (far) more than the guaranteed 1/n of the draws."""
    n, dim, eps, trials = 30, 400, 0.5, 200
    size = jl_min_dim(n, eps)                         # 109
    exact = jl_pair_failure(size, eps)
    bound = 2 * math.exp(-size * (eps ** 2 / 2 - eps ** 3 / 3) / 2)
    assert exact <= bound <= 2 / n ** 2 + 1e-15
    g = _gen()
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    failed, all_kept = 0, 0
    for _ in range(trials):
        sq = distance_ratios(x, x @ random_projection(dim, size, g)) ** 2
        bad = ((sq < 1 - eps) | (sq > 1 + eps)).sum().item()
        failed, all_kept = failed + bad, all_kept + (bad == 0)
    pairs = trials * n * (n - 1) // 2
    assert failed / pairs <= bound
    assert abs(failed / pairs - exact) < 5 * math.sqrt(exact / pairs) + 1e-5
    assert all_kept / trials >= 1 - n * (n - 1) / 2 * bound > 1 / n


def test_one_pair_under_many_projections_follows_the_exact_chi_square_law():
    """L ratio² is chi-square with L degrees of freedom: its mean is 1 and it leaves [1 - eps, 1 + eps] with
    probability jl_pair_failure(L, eps), whatever the pair."""
    g = _gen()
    pair = torch.randn(2, 50, generator=g, dtype=torch.float64)
    sq = torch.cat([distance_ratios(pair, pair @ random_projection(50, 10, g)) ** 2 for _ in range(4000)])
    assert sq.mean().item() == pytest.approx(1.0, abs=0.03)    # sd of the mean: sqrt(2/10/4000) = 0.007
    exact = jl_pair_failure(10, 0.5)
    freq = ((sq < 0.5) | (sq > 1.5)).double().mean().item()
    assert 0.1 < exact < 0.3 and abs(freq - exact) < 5 * math.sqrt(exact * (1 - exact) / len(sq))
