"""Cross-checks of vaelab.densities against torch.distributions, plus extreme values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import (
    Bernoulli,
    Categorical,
    Independent,
    MixtureSameFamily,
    Normal,
    kl_divergence,
)

from vaelab import densities as D
from vaelab.errors import VaelabError

F64 = torch.float64
SEEDS = [0, 1, 2]
SHAPES = [(1,), (7,), (5, 3), (4, 6, 2), (3, 2, 5, 4)]  # last dim is reduced


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(shape, g, dtype=F64):
    return torch.randn(shape, generator=g, dtype=dtype)


def _var(shape, g, dtype=F64):
    """Positive variances spread over a few orders of magnitude."""
    return torch.exp(2.0 * torch.randn(shape, generator=g, dtype=dtype))


def _mvn_diag(m, v):
    return Independent(Normal(m, v.sqrt()), 1)


def _close(actual, expected, rtol=1e-10, atol=1e-10):
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- gaussian_parameters


@pytest.mark.parametrize("seed", SEEDS)
def test_gaussian_parameters_split_and_softplus(seed):
    g = _gen(seed)
    h = _randn((4, 10), g) * 5
    m, v = D.gaussian_parameters(h)
    assert m.shape == v.shape == (4, 5)
    _close(m, h[:, :5], rtol=0, atol=0)
    _close(v, F.softplus(h[:, 5:]) + 1e-8, rtol=1e-12, atol=0)


def test_gaussian_parameters_other_dim_and_eps():
    h = torch.arange(2 * 6 * 3, dtype=F64).reshape(2, 6, 3) - 20.0
    m, v = D.gaussian_parameters(h, dim=1, eps=1e-3)
    assert m.shape == v.shape == (2, 3, 3)
    _close(m, h[:, :3], rtol=0, atol=0)
    _close(v, F.softplus(h[:, 3:]) + 1e-3, rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_gaussian_parameters_variance_stays_positive(dtype):
    h = torch.tensor([[0.0, 0.0, -1e4, -100.0]], dtype=dtype)
    _, v = D.gaussian_parameters(h)
    assert (v > 0).all()
    assert torch.isfinite(v.log()).all()
    torch.testing.assert_close(v[0, 0], torch.tensor(1e-8, dtype=dtype), rtol=1e-6, atol=0)


def test_gaussian_parameters_odd_size_raises():
    with pytest.raises(VaelabError, match="even"):
        D.gaussian_parameters(torch.zeros(3, 5))


# --------------------------------------------------------------------------- sample_gaussian


def test_sample_gaussian_is_m_plus_sqrt_v_times_noise():
    """Pins the parameterisation: v is a VARIANCE (std = sqrt(v)), noise is standard normal."""
    m = torch.tensor([[1.0, -2.0, 0.5]], dtype=F64)
    v = torch.tensor([[4.0, 0.25, 1e-6]], dtype=F64)
    z = D.sample_gaussian(m, v, generator=_gen(3))
    eps = torch.randn((1, 3), generator=_gen(3), dtype=F64)
    _close(z, m + torch.tensor([[2.0, 0.5, 1e-3]], dtype=F64) * eps, rtol=1e-14, atol=0)
    # same generator seed -> same sample, different seed -> different sample
    _close(D.sample_gaussian(m, v, generator=_gen(3)), z, rtol=0, atol=0)
    assert not torch.equal(D.sample_gaussian(m, v, generator=_gen(4)), z)


def test_sample_gaussian_broadcasts_and_keeps_dtype():
    m = torch.zeros(5, 1, 3)
    v = torch.ones(4, 3)
    z = D.sample_gaussian(m, v, generator=_gen(0))
    assert z.shape == (5, 4, 3)
    assert z.dtype == torch.float32


def test_sample_gaussian_empirical_moments():
    n = 200_000
    m = torch.tensor([0.0, 3.0, -5.0, 10.0], dtype=F64)
    v = torch.tensor([1.0, 1e-6, 100.0, 0.04], dtype=F64)
    z = D.sample_gaussian(m.expand(n, 4), v.expand(n, 4), generator=_gen(0))
    mean, var = z.mean(0), z.var(0)
    se_mean = (v / n).sqrt()
    se_var = v * math.sqrt(2.0 / (n - 1))
    assert ((mean - m).abs() < 5 * se_mean).all(), (mean, m)
    assert ((var - v).abs() < 5 * se_var).all(), (var, v)
    # and the standardised samples look standard normal in the tails too
    u = (z - m) / v.sqrt()
    assert abs((u.abs() > 1.96).double().mean().item() - 0.05) < 0.003


def test_sample_gaussian_gradients_flow_to_m_and_v():
    m = torch.tensor([[0.3, -1.0, 2.0]], dtype=F64, requires_grad=True)
    v = torch.tensor([[0.5, 2.0, 1e-3]], dtype=F64, requires_grad=True)
    z = D.sample_gaussian(m, v, generator=_gen(7))
    z.sum().backward()
    eps = torch.randn((1, 3), generator=_gen(7), dtype=F64)
    _close(m.grad, torch.ones_like(m), rtol=0, atol=0)
    _close(v.grad, eps / (2 * v.detach().sqrt()), rtol=1e-12, atol=0)


def test_sample_gaussian_gradcheck():
    m = torch.randn(3, 4, dtype=F64, generator=_gen(1)).requires_grad_()
    v = _var((3, 4), _gen(2)).requires_grad_()
    # a fresh generator per call keeps the noise fixed across gradcheck's evaluations
    assert torch.autograd.gradcheck(lambda a, b: D.sample_gaussian(a, b, generator=_gen(5)), (m, v))


# --------------------------------------------------------------------------- log_normal


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_log_normal_matches_torch(seed, shape):
    g = _gen(seed)
    x, m, v = _randn(shape, g) * 3, _randn(shape, g), _var(shape, g)
    _close(D.log_normal(x, m, v), _mvn_diag(m, v).log_prob(x))


@pytest.mark.parametrize("seed", SEEDS)
def test_log_normal_broadcasting(seed):
    """(k, batch, dim) samples against (batch, dim) or (1, dim) parameters."""
    g = _gen(seed)
    k, batch, dim = 5, 4, 3
    x = _randn((k, batch, dim), g)
    m, v = _randn((batch, dim), g), _var((1, dim), g)
    out = D.log_normal(x, m, v)
    assert out.shape == (k, batch)
    _close(out, _mvn_diag(m.expand(k, batch, dim), v.expand(k, batch, dim)).log_prob(x))
    # a (batch, 1, dim) x against (1, k, dim) parameters gives (batch, k)
    out2 = D.log_normal(x[0].unsqueeze(1), m[:1].unsqueeze(0).expand(1, k, dim), v.expand(1, k, dim))
    assert out2.shape == (batch, k)


def test_log_normal_float32_close_to_float64():
    g = _gen(4)
    x, m, v = _randn((64, 10), g), _randn((64, 10), g), _var((64, 10), g)
    out32 = D.log_normal(x.float(), m.float(), v.float())
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), D.log_normal(x, m, v), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("var", [1e-12, 1e-8, 1e6])
def test_log_normal_extreme_variances(var):
    g = _gen(0)
    m = _randn((6, 4), g)
    v = torch.full((6, 4), var, dtype=F64)
    x = m + v.sqrt() * _randn((6, 4), g)  # typical points under that variance
    expected = _mvn_diag(m, v).log_prob(x)
    assert torch.isfinite(expected).all()
    _close(D.log_normal(x, m, v), expected, rtol=1e-12, atol=1e-9)
    # at the mean the density is exactly the normaliser
    _close(D.log_normal(m, m, v), torch.full((6,), -0.5 * 4 * (math.log(2 * math.pi) + math.log(var)), dtype=F64))


def test_log_normal_tiny_variance_float32():
    m = torch.zeros(2, 3)
    v = torch.full((2, 3), 1e-8)
    x = torch.tensor([[0.0, 1e-4, -1e-4], [0.0, 0.0, 0.0]])
    out = D.log_normal(x, m, v)
    ref = _mvn_diag(m.double(), v.double()).log_prob(x.double())
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-3)


# --------------------------------------------------------------------------- gaussian_log_likelihood


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("log_sigma", [0.0, -3.0, 2.5, -10.0])
def test_gaussian_log_likelihood_scalar_sigma(seed, log_sigma):
    g = _gen(seed)
    x, mean = _randn((8, 5), g), _randn((8, 5), g)
    expected = Independent(Normal(mean, torch.tensor(log_sigma, dtype=F64).exp()), 1).log_prob(x)
    _close(D.gaussian_log_likelihood(x, mean, log_sigma), expected)  # python float
    _close(D.gaussian_log_likelihood(x, mean, torch.tensor(log_sigma, dtype=F64)), expected)  # 0-d tensor
    v = torch.full_like(x, math.exp(2 * log_sigma))
    _close(D.gaussian_log_likelihood(x, mean, log_sigma), D.log_normal(x, mean, v))


@pytest.mark.parametrize("seed", SEEDS)
def test_gaussian_log_likelihood_per_dim_sigma_and_k_batch(seed):
    g = _gen(seed)
    x, mean = _randn((3, 4, 6), g), _randn((4, 6), g)
    log_sigma = _randn((6,), g)
    out = D.gaussian_log_likelihood(x, mean, log_sigma)
    assert out.shape == (3, 4)
    _close(out, Independent(Normal(mean.expand(3, 4, 6), log_sigma.exp().expand(3, 4, 6)), 1).log_prob(x))


def test_gaussian_log_likelihood_learned_sigma_gradient():
    g = _gen(9)
    x, mean = _randn((16, 5), g), _randn((16, 5), g)
    ls = torch.tensor(0.3, dtype=F64, requires_grad=True)
    ls_ref = torch.tensor(0.3, dtype=F64, requires_grad=True)
    D.gaussian_log_likelihood(x, mean, ls).sum().backward()
    Independent(Normal(mean, ls_ref.exp()), 1).log_prob(x).sum().backward()
    _close(ls.grad, ls_ref.grad)
    assert ls.grad.abs() > 1.0  # non-trivial gradient, so the comparison means something


# --------------------------------------------------------------------------- log_bernoulli_with_logits


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_log_bernoulli_matches_torch(seed, shape):
    g = _gen(seed)
    logits = _randn(shape, g) * 4
    x = torch.bernoulli(torch.full(shape, 0.5, dtype=F64), generator=g)
    expected = Independent(Bernoulli(logits=logits), 1).log_prob(x)
    _close(D.log_bernoulli_with_logits(x, logits), expected)
    # and against the textbook formula evaluated in float64 (safe for these logits)
    naive = (x * torch.sigmoid(logits).log() + (1 - x) * torch.sigmoid(-logits).log()).sum(-1)
    _close(D.log_bernoulli_with_logits(x, logits), naive, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_log_bernoulli_non_binary_x(seed):
    g = _gen(seed)
    logits = _randn((6, 9), g) * 3
    x = torch.rand((6, 9), generator=g, dtype=F64)  # e.g. grey-level pixels
    naive = (x * torch.sigmoid(logits).log() + (1 - x) * torch.sigmoid(-logits).log()).sum(-1)
    _close(D.log_bernoulli_with_logits(x, logits), naive, rtol=1e-9, atol=1e-9)
    # x = 0.5 everywhere: 0.5*(log s(l) + log s(-l)) summed
    half = torch.full_like(x, 0.5)
    _close(D.log_bernoulli_with_logits(half, logits), 0.5 * (F.logsigmoid(logits) + F.logsigmoid(-logits)).sum(-1))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("big", [1e4, 80.0])
def test_log_bernoulli_extreme_logits(dtype, big):
    logits = torch.tensor([[big, -big, big, -big]], dtype=dtype, requires_grad=True)
    right = torch.tensor([[1.0, 0.0, 1.0, 0.0]], dtype=dtype)
    wrong = 1 - right
    out_right = D.log_bernoulli_with_logits(right, logits)
    out_wrong = D.log_bernoulli_with_logits(wrong, logits)
    # log sigmoid(big) = -log1p(exp(-big)); exactly 0 to working precision for these logits
    ref_right = torch.tensor([-4 * math.log1p(math.exp(-big))], dtype=dtype)
    torch.testing.assert_close(out_right.detach(), ref_right, rtol=0, atol=1e-12)
    # log sigmoid(-big) = -big - log1p(exp(-big))
    ref_wrong = torch.tensor([4 * (-big - math.log1p(math.exp(-big)))], dtype=dtype)
    torch.testing.assert_close(out_wrong.detach(), ref_wrong, rtol=1e-6, atol=0)
    torch.testing.assert_close(
        out_wrong.detach(), Independent(Bernoulli(logits=logits.detach()), 1).log_prob(wrong), rtol=1e-6, atol=0
    )
    # x = 0.5 with huge logits: half the mismatch cost, not NaN
    out_half = D.log_bernoulli_with_logits(torch.full_like(right, 0.5), logits)
    torch.testing.assert_close(out_half.detach(), ref_wrong / 2, rtol=1e-6, atol=0)
    # gradients stay finite: d/dl = x - sigmoid(l)
    out_wrong.sum().backward()
    assert torch.isfinite(logits.grad).all()
    torch.testing.assert_close(logits.grad, wrong - torch.sigmoid(logits.detach()))


def test_log_bernoulli_k_batch_and_broadcast():
    g = _gen(11)
    k, batch, dim = 4, 3, 7
    logits = _randn((k, batch, dim), g)
    x = torch.bernoulli(torch.full((batch, dim), 0.3, dtype=F64), generator=g)
    out = D.log_bernoulli_with_logits(x, logits)
    assert out.shape == (k, batch)
    _close(out, Independent(Bernoulli(logits=logits), 1).log_prob(x.expand(k, batch, dim)))
    # integer / bool targets are accepted
    _close(D.log_bernoulli_with_logits(x.bool(), logits), out)


# --------------------------------------------------------------------------- kl_normal


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_kl_normal_matches_torch(seed, shape):
    g = _gen(seed)
    qm, qv, pm, pv = _randn(shape, g), _var(shape, g), _randn(shape, g), _var(shape, g)
    expected = kl_divergence(_mvn_diag(qm, qv), _mvn_diag(pm, pv))
    _close(D.kl_normal(qm, qv, pm, pv), expected)


def test_kl_normal_standard_prior_broadcast():
    """The usual VAE case: q (batch, dim) against a scalar-shaped N(0, I) prior."""
    g = _gen(12)
    qm, qv = _randn((10, 4), g), _var((10, 4), g)
    pm, pv = torch.zeros(1, dtype=F64), torch.ones(1, dtype=F64)
    out = D.kl_normal(qm, qv, pm, pv)
    assert out.shape == (10,)
    _close(out, kl_divergence(_mvn_diag(qm, qv), _mvn_diag(torch.zeros_like(qm), torch.ones_like(qv))))
    _close(out, 0.5 * (qv + qm**2 - 1 - qv.log()).sum(-1))


@pytest.mark.parametrize("var", [1e-12, 1e-8, 1e6])
def test_kl_normal_extreme_variances(var):
    g = _gen(1)
    qm = _randn((5, 3), g)
    v = torch.full((5, 3), var, dtype=F64)
    # identical distributions: exactly zero, not NaN
    _close(D.kl_normal(qm, v, qm, v), torch.zeros(5, dtype=F64), rtol=0, atol=1e-12)
    # against a unit prior and against a mismatched variance
    for pv in (torch.ones_like(v), v * 3.0):
        pm = qm + v.sqrt() * _randn((5, 3), g)
        expected = kl_divergence(_mvn_diag(qm, v), _mvn_diag(pm, pv))
        assert torch.isfinite(expected).all()
        _close(D.kl_normal(qm, v, pm, pv), expected, rtol=1e-10, atol=1e-9)


def test_kl_normal_tiny_q_variance_float32():
    qm, qv = torch.zeros(2, 4), torch.full((2, 4), 1e-8)
    out = D.kl_normal(qm, qv, torch.zeros(2, 4), torch.ones(2, 4))
    expected = 4 * 0.5 * (1e-8 - 1 - math.log(1e-8))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.full((2,), expected), rtol=1e-5, atol=0)


@pytest.mark.parametrize("seed", SEEDS)
def test_kl_normal_matches_monte_carlo(seed):
    g = _gen(seed)
    n, dim = 100_000, 3
    qm, qv = _randn((dim,), g) * 0.5, _var((dim,), g) * 0.5
    pm, pv = _randn((dim,), g) * 0.5, _var((dim,), g)
    z = D.sample_gaussian(qm.expand(n, dim), qv.expand(n, dim), generator=g)
    w = D.log_normal(z, qm, qv) - D.log_normal(z, pm, pv)
    mc, se = w.mean(), w.std() / math.sqrt(n)
    kl = D.kl_normal(qm, qv, pm, pv)
    assert kl > 0.05  # a non-trivial KL
    assert (mc - kl).abs() < 4 * se, (mc.item(), kl.item(), se.item())


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-5, 5), min_size=4, max_size=4),
    st.lists(st.floats(-8, 8), min_size=4, max_size=4),
)
def test_kl_normal_nonnegative_and_zero_only_at_equality(means, log_vars):
    qm = torch.tensor(means[:2], dtype=F64)
    pm = torch.tensor(means[2:], dtype=F64)
    qv = torch.tensor(log_vars[:2], dtype=F64).exp()
    pv = torch.tensor(log_vars[2:], dtype=F64).exp()
    kl = D.kl_normal(qm, qv, pm, pv)
    assert kl >= -1e-12
    _close(kl, kl_divergence(_mvn_diag(qm, qv), _mvn_diag(pm, pv)), rtol=1e-9, atol=1e-9)
    assert D.kl_normal(qm, qv, qm, qv).abs() < 1e-12


# --------------------------------------------------------------------------- kl_cat


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(1, 2), (6, 5), (3, 4, 10)])
def test_kl_cat_matches_torch(seed, shape):
    g = _gen(seed)
    q = torch.softmax(_randn(shape, g) * 2, -1)
    p = torch.softmax(_randn(shape, g) * 2, -1)
    expected = kl_divergence(Categorical(probs=q), Categorical(probs=p))
    _close(D.kl_cat(q, q.log(), p.log()), expected)


def test_kl_cat_exact_zeros_in_q():
    q = torch.tensor([[0.0, 0.5, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]], dtype=F64)
    p = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.0, 0.0], [0.4, 0.3, 0.2, 0.1]], dtype=F64)
    log_q, log_p = q.log(), p.log()  # contain -inf
    out = D.kl_cat(q, log_q, log_p)
    assert torch.isfinite(out).all()
    expected = kl_divergence(Categorical(probs=q), Categorical(probs=p))
    _close(out, expected)
    _close(out[1], torch.tensor(math.log(2.0), dtype=F64))
    # KL(q || q) = 0 even with zeros in q
    _close(D.kl_cat(q, log_q, log_q), torch.zeros(3, dtype=F64), rtol=0, atol=0)


def test_kl_cat_gradients_finite_with_zeros():
    """Leaf inputs, so only kl_cat's own backward is tested (log's backward at 0 is 0/0 anyway)."""
    q = torch.tensor([[0.6, 0.0, 0.4]], dtype=F64, requires_grad=True)
    log_q = torch.tensor([[math.log(0.6), -math.inf, math.log(0.4)]], dtype=F64, requires_grad=True)
    log_p = torch.tensor([[math.log(0.2), -math.inf, math.log(0.8)]], dtype=F64, requires_grad=True)
    out = D.kl_cat(q, log_q, log_p)
    _close(out, torch.tensor([0.6 * math.log(3.0) + 0.4 * math.log(0.5)], dtype=F64))
    out.sum().backward()
    for t in (q, log_q, log_p):
        assert torch.isfinite(t.grad).all(), t.grad
    # d/dq = log q - log p on the support, 0 off it; d/dlog_q = q; d/dlog_p = -q
    _close(q.grad, torch.tensor([[math.log(3.0), 0.0, math.log(0.5)]], dtype=F64))
    _close(log_q.grad, q.detach())
    _close(log_p.grad, -q.detach())


def test_kl_cat_infinite_when_p_misses_q_support():
    q = torch.tensor([[0.5, 0.5]], dtype=F64)
    p = torch.tensor([[1.0, 0.0]], dtype=F64)
    out = D.kl_cat(q, q.log(), p.log())
    assert torch.isposinf(out).all()
    assert torch.isposinf(kl_divergence(Categorical(probs=q), Categorical(probs=p))).all()


# --------------------------------------------------------------------------- log_sum_exp / log_mean_exp


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape,dim", [((7,), -1), ((5, 3), -1), ((5, 3), 0), ((4, 6, 2), 1), ((4, 6, 2), -1)])
def test_log_sum_exp_and_mean_match_torch(seed, shape, dim):
    g = _gen(seed)
    x = _randn(shape, g) * 10
    _close(D.log_sum_exp(x, dim), torch.logsumexp(x, dim))
    _close(D.log_mean_exp(x, dim), torch.logsumexp(x, dim) - math.log(x.shape[dim]))
    # against the direct formula (safe for these magnitudes in float64)
    _close(D.log_mean_exp(x, dim), x.exp().mean(dim).log())


def test_log_sum_exp_default_dim_is_last():
    x = torch.arange(6, dtype=F64).reshape(2, 3)
    _close(D.log_sum_exp(x), torch.logsumexp(x, -1))
    _close(D.log_mean_exp(x), torch.logsumexp(x, -1) - math.log(3))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_log_sum_exp_large_values_do_not_overflow(dtype):
    x = torch.tensor([[1000.0, 1000.0], [-1000.0, -1000.0], [1e4, 0.0]], dtype=dtype)
    torch.testing.assert_close(
        D.log_sum_exp(x), torch.tensor([1000 + math.log(2), -1000 + math.log(2), 1e4], dtype=dtype)
    )
    torch.testing.assert_close(D.log_mean_exp(x), torch.tensor([1000.0, -1000.0, 1e4 - math.log(2)], dtype=dtype))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_log_sum_exp_infinities(dtype):
    inf = math.inf
    x = torch.tensor(
        [
            [-inf, -inf, -inf],  # all -inf -> -inf, not NaN
            [-inf, 0.0, math.log(2.0)],  # mixed -> log(1 + 2)
            [inf, 1.0, -inf],  # +inf -> +inf
            [-inf, -inf, 5.0],  # one finite entry
        ],
        dtype=dtype,
    )
    lse = D.log_sum_exp(x)
    lme = D.log_mean_exp(x)
    assert not torch.isnan(lse).any() and not torch.isnan(lme).any()
    assert torch.isneginf(lse[0]) and torch.isneginf(lme[0])
    torch.testing.assert_close(lse[1], torch.tensor(math.log(3.0), dtype=dtype))
    torch.testing.assert_close(lme[1], torch.tensor(0.0, dtype=dtype), rtol=0, atol=1e-6)
    assert torch.isposinf(lse[2]) and torch.isposinf(lme[2])
    torch.testing.assert_close(lse[3], torch.tensor(5.0, dtype=dtype))
    torch.testing.assert_close(lme[3], torch.tensor(5.0 - math.log(3), dtype=dtype))
    torch.testing.assert_close(lse, torch.logsumexp(x, -1))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_log_sum_exp_of_terms_far_below_the_largest_matches_torch(dtype):
    # a mixture prior's far components: most shifted values below -87, where exp() is slow and underflows
    g = _gen(3)
    x = (-2000 * torch.rand(64, 500, generator=g, dtype=F64)).to(dtype)
    x[:, 0] = 0.0
    x[1, 1:10] = -79.0                       # just above the clamp: counted as they are
    x = x.requires_grad_()
    out = D.log_sum_exp(x)
    ref = torch.logsumexp(x.detach().double(), -1)
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-12)
    out.sum().backward()
    torch.testing.assert_close(x.grad.double(), torch.softmax(x.detach().double(), -1), rtol=1e-5, atol=1e-30)


def test_log_sum_exp_of_an_empty_dim_is_neg_inf_as_torch():
    for x, dim in [(torch.zeros(3, 0), -1), (torch.zeros(0, 4), 0)]:
        torch.testing.assert_close(D.log_sum_exp(x, dim), torch.logsumexp(x, dim))


def test_log_sum_exp_gradients_finite_with_neg_inf_entries():
    x = torch.tensor([[-math.inf, 0.0, 1.0], [2.0, -math.inf, -math.inf], [3.0, 1e3, -5.0]], dtype=F64)
    x.requires_grad_()
    D.log_mean_exp(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    _close(x.grad, torch.softmax(x.detach(), -1))  # gradient of logsumexp is the softmax
    assert x.grad[0, 0] == 0 and x.grad[1, 0] == 1


def test_log_mean_exp_empty_dim_raises():
    with pytest.raises(VaelabError):
        D.log_mean_exp(torch.zeros(3, 0))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.floats(-300, 300), st.just(-math.inf)), min_size=1, max_size=8))
def test_log_mean_exp_property(values):
    x = torch.tensor(values, dtype=F64)
    out = D.log_mean_exp(x)
    finite = x[torch.isfinite(x)]
    if finite.numel() == 0:
        assert torch.isneginf(out)
    else:
        # bounded by max - log n  <=  lme  <=  max
        assert finite.max() - math.log(len(values)) - 1e-9 <= out <= finite.max() + 1e-9
        _close(out, torch.logsumexp(finite, 0) - math.log(len(values)), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- log_normal_mixture


def _torch_mixture(m, v):
    k = m.shape[-2]
    mix = Categorical(logits=torch.zeros(m.shape[:-1], dtype=m.dtype))
    assert mix.probs.shape[-1] == k
    return MixtureSameFamily(mix, _mvn_diag(m, v))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("batch,k,dim", [(1, 1, 1), (5, 3, 2), (8, 10, 4)])
def test_log_normal_mixture_matches_torch(seed, batch, k, dim):
    g = _gen(seed)
    z = _randn((batch, dim), g) * 2
    m, v = _randn((batch, k, dim), g), _var((batch, k, dim), g)
    out = D.log_normal_mixture(z, m, v)
    assert out.shape == (batch,)
    _close(out, _torch_mixture(m, v).log_prob(z))


@pytest.mark.parametrize("seed", SEEDS)
def test_log_normal_mixture_shared_components(seed):
    """m, v of shape (1, k, dim): a prior shared by the whole batch (VampPrior / GMVAE)."""
    g = _gen(seed)
    batch, k, dim = 6, 4, 3
    z = _randn((batch, dim), g)
    m, v = _randn((1, k, dim), g), _var((1, k, dim), g)
    out = D.log_normal_mixture(z, m, v)
    assert out.shape == (batch,)
    _close(out, _torch_mixture(m.expand(batch, k, dim), v.expand(batch, k, dim)).log_prob(z))
    # and by hand
    manual = torch.stack([_mvn_diag(m[0, i], v[0, i]).log_prob(z) for i in range(k)], -1)
    _close(out, torch.logsumexp(manual, -1) - math.log(k))


@pytest.mark.parametrize("v_scale", [1e-4, 1.0, 1e3])
def test_log_normal_mixture_shared_components_matrix_road_equals_elementwise(v_scale):
    """GMVAE sizes in float32: the (1, k, dim) road (a float32 matrix product, the nearest components
    again from differences) gives the values and gradients of the plain (batch, k, dim) computation,
    computed here in float64 as the reference."""
    g = _gen(3)
    z = (3 * _randn((100, 10), g)).float().requires_grad_()
    m = (3 * _randn((1, 500, 10), g)).float().requires_grad_()
    v = (v_scale * _var((1, 500, 10), g)).float().requires_grad_()
    out = D.log_normal_mixture(z, m, v)
    assert out.dtype == torch.float32 and out.shape == (100,)
    z64, m64, v64 = (t.detach().double().requires_grad_() for t in (z, m, v))
    ref = D.log_mean_exp(D.log_normal(z64.unsqueeze(-2), m64, v64), dim=-1)
    torch.testing.assert_close(out.double(), ref.detach(), rtol=1e-6, atol=1e-5)
    w = torch.randn(100, generator=g)
    (out * w).sum().backward()
    (ref * w.double()).sum().backward()
    for got, want in ((z.grad, z64.grad), (m.grad, m64.grad), (v.grad, v64.grad)):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-6 * want.abs().max().item())


@pytest.mark.parametrize("v_scale", [1e-4, 1e-2])
def test_log_normal_mixture_float32_near_its_components_matches_float64(v_scale):
    """VampPrior sizes (k = 500, z = 40: 15 informative dimensions with small variances, 25 near N(0, 1))
    and z drawn close to a component, where the matrix road's expansion cancels most: float32 values
    within 1e-4 nats of float64, and within float32 rounding for z far from all components."""
    g = _gen(5)
    k, dim = 500, 40
    m, v = torch.zeros(1, k, dim, dtype=F64), torch.ones(1, k, dim, dtype=F64)
    m[0, :, :15] = 2 * _randn((k, 15), g)
    v[0, :, :15] = v_scale * _randn((k, 15), g).exp()
    v[0, :, 15:] = 0.9 + 0.1 * torch.rand(k, 25, generator=g, dtype=F64)
    i = torch.randint(k, (1000,), generator=g)
    near = m[0, i] + 2 * v[0, i].sqrt() * _randn((1000, dim), g)
    far = 3 * _randn((1000, dim), g)
    m, v = m.float().double(), v.float().double()   # the float32 inputs exactly, so only the computation differs
    for z in (near.float().double(), far.float().double()):
        ref = D.log_mean_exp(D.log_normal(z.unsqueeze(-2), m, v), dim=-1)
        out = D.log_normal_mixture(z.float(), m.float(), v.float())
        assert out.dtype == torch.float32
        torch.testing.assert_close(out.double(), ref, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_log_normal_mixture_far_apart_components(dtype):
    k, dim = 5, 2
    m = torch.zeros(1, k, dim, dtype=dtype)
    m[0, 1:] = 1e3 * torch.arange(1, k, dtype=dtype).unsqueeze(-1)  # others 1e3+ away
    v = torch.ones(1, k, dim, dtype=dtype)
    # z near component 0, and one z 40 std from it: exp(log density) underflows to 0
    z = torch.tensor([[0.0, 0.0], [0.5, -1.0], [40.0, -40.0]], dtype=dtype)
    out = D.log_normal_mixture(z, m, v)
    expected = D.log_normal(z, m[0, 0], v[0, 0]) - math.log(k)
    assert torch.isfinite(out).all()
    assert (expected[2] < -1600).item()  # naive log(mean(exp(.))) would give -inf here
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(
        out.double(), _torch_mixture(m.double(), v.double()).log_prob(z.double()), rtol=1e-6, atol=1e-4
    )


def test_log_normal_mixture_gradients_finite_when_far():
    m = torch.tensor([[[0.0], [1e3], [-1e3]]], dtype=F64, requires_grad=True)
    v = torch.ones(1, 3, 1, dtype=F64, requires_grad=True)
    z = torch.tensor([[30.0]], dtype=F64, requires_grad=True)
    D.log_normal_mixture(z, m, v).sum().backward()
    for t in (z, m, v):
        assert torch.isfinite(t.grad).all()
    _close(z.grad, torch.tensor([[-30.0]], dtype=F64))  # d/dz log N(z | 0, 1)


# --------------------------------------------------------------------------- duplicate


def test_duplicate_layout():
    x = torch.arange(6).reshape(3, 2)
    out = D.duplicate(x, 2)
    assert out.tolist() == [[0, 1], [2, 3], [4, 5], [0, 1], [2, 3], [4, 5]]
    assert torch.equal(D.duplicate(x, 1), x)


@pytest.mark.parametrize("rep", [1, 3, 5])
@pytest.mark.parametrize("shape", [(4,), (4, 3), (2, 1, 5, 5)])
def test_duplicate_shapes_and_blocks(rep, shape):
    x = torch.randn(shape, generator=_gen(rep))
    out = D.duplicate(x, rep)
    assert out.shape == (rep * shape[0], *shape[1:])
    assert torch.equal(out, torch.cat([x] * rep, 0))
    blocks = out.reshape(rep, *shape)
    for r in range(rep):
        assert torch.equal(blocks[r], x)
    # the same as x.repeat along the batch axis, unlike repeat_interleave
    assert torch.equal(out, x.repeat(rep, *([1] * (x.dim() - 1))))
    if rep > 1 and shape[0] > 1:
        assert not torch.equal(out, x.repeat_interleave(rep, 0))


def test_duplicate_gradient_sums_copies():
    x = torch.randn(3, 2, dtype=F64, requires_grad=True)
    w = torch.arange(4 * 3 * 2, dtype=F64).reshape(12, 2)
    (D.duplicate(x, 4) * w).sum().backward()
    _close(x.grad, w.reshape(4, 3, 2).sum(0), rtol=0, atol=0)


def test_duplicate_iwae_round_trip():
    """The IWAE use: duplicate the batch, evaluate, reshape to (rep, batch) and reduce over rep."""
    g = _gen(2)
    rep, batch, dim = 6, 4, 3
    x = _randn((batch, dim), g)
    m, v = _randn((batch, dim), g), _var((batch, dim), g)
    lp = D.log_normal(D.duplicate(x, rep), D.duplicate(m, rep), D.duplicate(v, rep)).reshape(rep, batch)
    _close(D.log_mean_exp(lp, dim=0), D.log_normal(x, m, v))


def test_the_discretized_logistic_sums_to_one_and_matches_torch_distributions():
    """Over the 256 levels its probabilities sum to 1 (per pixel); a middle bin's log-mass equals the log of
    torch.distributions' logistic CDF difference (the logistic as a transformed uniform)."""
    from torch.distributions import AffineTransform, SigmoidTransform, TransformedDistribution, Uniform

    from vaelab.densities import log_discretized_logistic

    gen = torch.Generator().manual_seed(0)
    mean = torch.rand(5, generator=gen, dtype=torch.float64) * 1.4 - 0.2   # some outside [0, 1]
    log_scale = torch.rand(5, generator=gen, dtype=torch.float64) * 4 - 6   # scales e^-6 .. e^-2
    levels = torch.arange(256, dtype=torch.float64) / 255
    per_level = torch.stack([log_discretized_logistic(levels[k].expand(1, 1), mean[:, None], log_scale[:, None])
                             for k in range(256)])
    assert torch.allclose(per_level.exp().sum(0), torch.ones(5, dtype=torch.float64), atol=1e-6)
    loc, scale = torch.tensor(0.4, dtype=torch.float64), torch.tensor(0.05, dtype=torch.float64)
    logistic = TransformedDistribution(Uniform(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)),
                                       [SigmoidTransform().inv, AffineTransform(loc, scale)])
    for k in (60, 102, 140):
        x = torch.tensor(k / 255, dtype=torch.float64)
        expected = torch.log(logistic.cdf(x + 0.5 / 255) - logistic.cdf(x - 0.5 / 255))
        got = log_discretized_logistic(x.reshape(1, 1), loc, scale.log())
        assert torch.allclose(got, expected.reshape(1), rtol=1e-9)
    far = log_discretized_logistic(torch.tensor([[0.5]]), torch.tensor(0.0), torch.tensor(-7.0))   # a far tail bin
    assert torch.isfinite(far).all() and far.item() < -100
