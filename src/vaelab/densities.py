"""Log-densities, KL divergences and sampling helpers shared by every model.

Conventions (those of the Stanford CS236 VAE homework, "the course reference"):

* A diagonal Gaussian is given by its mean ``m`` and its VARIANCE ``v``
  (not the standard deviation, not the log-variance).
* Every log-density and KL sums over the LAST dimension and returns the
  remaining (batch) shape: inputs of shape ``(..., dim)`` give ``(...,)``.
  Leading dimensions are free, so ``(k, batch, dim)`` tensors of importance
  samples work as well as ``(batch, dim)`` ones. Arguments broadcast against
  each other before the sum.
* Everything is written as the maths is written and is numerically stable for
  the values a VAE meets: logits of +-1e4, variances from 1e-12 to 1e6,
  log-weights of -inf.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vaelab.errors import VaelabError

__all__ = [
    "gaussian_parameters",
    "sample_gaussian",
    "log_normal",
    "gaussian_log_likelihood",
    "log_bernoulli_with_logits",
    "kl_normal",
    "kl_cat",
    "log_sum_exp",
    "log_mean_exp",
    "log_normal_mixture",
    "duplicate",
]

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_parameters(h: torch.Tensor, dim: int = -1, eps: float = 1e-8):
    """Split an encoder output into a Gaussian mean and variance.

    ``h``: ``(..., 2 * d, ...)``, split into two halves along ``dim``.
    Returns ``(m, v)``, each with ``h``'s shape except ``d`` along ``dim``;
    ``v = softplus(second half) + eps`` is strictly positive.
    """
    size = h.size(dim)
    if size % 2 != 0:
        raise VaelabError(
            f"gaussian_parameters needs an even size along dim {dim}, got {size}; "
            "make the encoder output 2 * latent_dim features"
        )
    m, raw = torch.split(h, size // 2, dim=dim)
    v = F.softplus(raw) + eps
    return m, v


def sample_gaussian(m: torch.Tensor, v: torch.Tensor, generator: torch.Generator | None = None):
    """Reparameterised sample ``z = m + sqrt(v) * eps`` with ``eps ~ N(0, I)``.

    ``m``, ``v``: broadcastable; ``z`` has their broadcast shape. Gradients flow
    to ``m`` and ``v``. ``generator`` (on ``m``'s device) fixes the noise.
    """
    shape = torch.broadcast_shapes(m.shape, v.shape)
    dtype = torch.promote_types(m.dtype, v.dtype)
    eps = torch.randn(shape, generator=generator, dtype=dtype, device=m.device)
    return m + v.sqrt() * eps


def log_normal(x: torch.Tensor, m: torch.Tensor, v: torch.Tensor):
    """``log N(x | m, diag(v))``, summed over the last dimension.

    ``x``, ``m``, ``v``: broadcastable to ``(..., dim)``; returns ``(...,)``.
    """
    element_wise = -0.5 * (_LOG_2PI + v.log() + (x - m).pow(2) / v)
    return element_wise.sum(-1)


def gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_sigma):
    """``log N(x | mean, sigma^2 I)`` with ``sigma = exp(log_sigma)``, summed over the last dim.

    Includes the normaliser ``-dim * (log sigma + log(2 pi) / 2)``. ``log_sigma``
    is a float, a 0-d tensor (e.g. one learned parameter) or any tensor that
    broadcasts against ``x`` (e.g. ``(dim,)`` per-pixel). ``x``, ``mean``:
    ``(..., dim)``; returns ``(...,)``. Same value as
    ``log_normal(x, mean, exp(2 * log_sigma))``, computed without the exp/log round trip.
    """
    log_sigma = torch.as_tensor(log_sigma, dtype=mean.dtype, device=mean.device)
    element_wise = -0.5 * _LOG_2PI - log_sigma - 0.5 * (x - mean).pow(2) * torch.exp(-2.0 * log_sigma)
    return element_wise.sum(-1)


def log_bernoulli_with_logits(x: torch.Tensor, logits: torch.Tensor):
    """``sum_last_dim [x log sigmoid(l) + (1 - x) log sigmoid(-l)]``, computed stably.

    ``x`` in ``[0, 1]`` (binary or not), ``logits``: broadcastable to ``(..., dim)``;
    returns ``(...,)``. Exact for logits of any magnitude (e.g. +-1e4).
    """
    # x·l − softplus(l) per pixel, summed: exact at any |l| (softplus(l) = l above 20). addcmul does the
    # product and the difference in one pass over the large broadcast batches of IWAE evaluation, one pass
    # fewer than a product and a subtraction (the same values to the bit for binary x, within float32
    # rounding for grey x), and fewer still than binary_cross_entropy_with_logits.
    return -torch.addcmul(F.softplus(logits), x.to(logits.dtype), logits, value=-1).sum(-1)


def log_discretized_logistic(x: torch.Tensor, mean: torch.Tensor, log_scale, levels: int = 256):
    """``log P(x)`` of 8-bit (``levels``) grey levels ``x = k / (levels - 1)`` under a logistic of ``mean`` and
    ``scale = exp(log_scale)`` discretised into bins of width ``1 / (levels - 1)`` centred on the levels, the
    two end bins reaching to -inf and +inf (PixelCNN++, Salimans et al. 2017); summed over the last dim.

    P(x) = F(x + h) - F(x - h), h = half a bin, F the logistic CDF sigmoid((x - mean) / scale); the lowest
    level takes F(x + h), the highest 1 - F(x - h). Where the difference of two sigmoids would round to 0
    (a bin far in a tail), the density at the bin's centre times its width stands in for it. ``x``,
    ``mean``: ``(..., dim)``; ``log_scale`` broadcasts against them; returns ``(...,)``.
    """
    log_scale = torch.as_tensor(log_scale, dtype=mean.dtype, device=mean.device)
    half = 0.5 / (levels - 1)
    centred = x.to(mean.dtype) - mean
    inv_scale = torch.exp(-log_scale)
    plus, minus = (centred + half) * inv_scale, (centred - half) * inv_scale
    log_cdf_plus = plus - F.softplus(plus)              # log sigmoid(plus): the lowest level's bin
    log_one_minus_cdf_minus = -F.softplus(minus)        # log (1 - sigmoid(minus)): the highest level's
    delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    mid = centred * inv_scale
    log_pdf_mid = mid - log_scale - 2.0 * F.softplus(mid)   # log of the logistic density at the bin's centre
    inner = torch.where(delta > 1e-5, torch.log(delta.clamp_min(1e-12)), log_pdf_mid + math.log(2 * half))
    element_wise = torch.where(x < half, log_cdf_plus, torch.where(x > 1 - half, log_one_minus_cdf_minus, inner))
    return element_wise.sum(-1)


def kl_normal(qm: torch.Tensor, qv: torch.Tensor, pm: torch.Tensor, pv: torch.Tensor):
    """Closed-form ``KL(N(qm, diag qv) || N(pm, diag pv))``, summed over the last dim.

    All four broadcastable to ``(..., dim)``; returns ``(...,)``, always >= 0
    up to rounding.
    """
    element_wise = 0.5 * (pv.log() - qv.log() + qv / pv + (qm - pm).pow(2) / pv - 1.0)
    return element_wise.sum(-1)


def kl_cat(q: torch.Tensor, log_q: torch.Tensor, log_p: torch.Tensor):
    """``KL(q || p) = sum_last_dim q (log q - log p)`` for categorical distributions.

    ``q``: probabilities ``(..., k)``; ``log_q``, ``log_p``: log-probabilities,
    broadcastable to it. Uses ``0 log 0 = 0``: where ``q == 0`` the term is 0 even
    if ``log_q`` or ``log_p`` is -inf (and gradients stay finite there). Where
    ``q > 0`` but ``log_p = -inf`` the KL is +inf. Returns ``(...,)``.
    """
    support = q > 0
    zero = torch.zeros((), dtype=log_q.dtype, device=log_q.device)
    # Mask both logs before subtracting so masked entries never see inf - inf,
    # neither in the forward pass nor in the backward pass.
    log_q = torch.where(support, log_q, zero)
    log_p = torch.where(support, log_p, zero)
    return (q * (log_q - log_p)).sum(-1)


# exp() of an argument below about -87 (a float32 result that is subnormal or 0) takes a slow path in PyTorch's
# CPU kernels, 10-40x the cost of an ordinary argument, and the log-probabilities of a mixture prior's far
# components sit there: a third of a trained VampPrior's (benchmarks/log_sum_exp_speed.py). A term e^-80 times the largest is below the
# rounding of float32 and float64 sums, so clamping the shifted values there changes no sum and keeps exp fast.
_EXP_FLOOR = -80.0


def log_sum_exp(x: torch.Tensor, dim: int = -1):
    """Stable ``log(sum(exp(x), dim))``; removes ``dim``.

    A slice that is all -inf gives -inf; a slice holding +inf gives +inf;
    -inf entries in an otherwise finite slice contribute 0 (and get zero gradient):
    the semantics of ``torch.logsumexp`` (whose gradient is NaN where a slice is all -inf;
    here 0). Terms below e^-80 times the largest, nothing in float32 or float64 rounding, are
    taken at e^-80 with zero gradient, which keeps exp() on its fast path (see _EXP_FLOOR).
    """
    if x.shape[dim] == 0:   # amax has no identity to reduce with; the sum of nothing is 0: log 0 = -inf
        return torch.logsumexp(x, dim)
    m = x.detach().amax(dim, keepdim=True)
    shift = torch.where(torch.isfinite(m), m, torch.zeros_like(m))   # all -inf, or a +inf: nothing to shift
    out = (x - shift).clamp_min(_EXP_FLOOR).exp().sum(dim).log() + shift.squeeze(dim)
    m = m.squeeze(dim)
    return torch.where(torch.isneginf(m), m, out)


def log_mean_exp(x: torch.Tensor, dim: int = -1):
    """Stable ``log(mean(exp(x), dim))`` = ``log_sum_exp(x, dim) - log(x.size(dim))``; removes ``dim``."""
    n = x.size(dim)
    if n == 0:
        raise VaelabError("log_mean_exp of an empty dimension is undefined; pass at least one sample")
    return log_sum_exp(x, dim) - math.log(n)


def log_normal_mixture(z: torch.Tensor, m: torch.Tensor, v: torch.Tensor):
    """Log-density of the uniform mixture ``(1/k) sum_i N(z | m_i, diag v_i)``.

    ``z``: ``(batch, dim)``; ``m``, ``v``: ``(batch or 1, k, dim)``.
    Returns ``(batch,)``. Stable when ``z`` is far from every component but one.

    Components shared by the batch (``m``, ``v`` of shape ``(1, k, dim)``, the GMVAE and VampPrior
    priors) take a faster road: with a = 1/v and every vector shifted by c, the components' mean,
    ``log N(z | m_i, v_i) = -1/2 ([(z - c)^2, z - c, 1] . [a_i, -2 (m_i - c) a_i, b_i])``,
    ``b_i = sum_d (m_id - c_d)^2 a_id + dim log 2 pi + sum_d log v_id``: one matrix product over
    ``(batch, 2 dim + 1) x (2 dim + 1, k)`` instead of a ``(batch, k, dim)`` tensor, in the inputs'
    precision. The expansion cancels where z is near a component, and the nearest component decides
    the sum, so each row's largest term is computed again from the differences; the others, which
    weigh less, keep the expansion's rounding. In float32 this stays within 1e-4 nats of the float64
    value (tests/test_densities.py).
    """
    if m.shape[0] == 1 and v.shape[0] == 1 and z.dim() == 2 and m.dim() == 3:
        m0, v0 = m[0], v[0]                                                   # (k, dim)
        c = m0.detach().mean(0)                   # any shift is exact; the mean keeps the terms small
        zc, mc, a = z - c, m0 - c, 1.0 / v0
        const = z.shape[-1] * _LOG_2PI + v0.log().sum(-1)                     # (k,)
        rows = torch.cat([zc * zc, zc, torch.ones_like(zc[:, :1])], -1)
        cols = torch.cat([a, -2.0 * mc * a, ((mc * mc * a).sum(-1) + const).unsqueeze(-1)], -1)
        log_probs = rows @ (-0.5 * cols).t()                                  # (batch, k)
        top = log_probs.detach().argmax(-1, keepdim=True)                     # (batch, 1)
        d = z.unsqueeze(-2) - m0[top]
        exact = -0.5 * (const[top] + (d * d / v0[top]).sum(-1))
        return log_mean_exp(log_probs.scatter(-1, top, exact), dim=-1)
    log_probs = log_normal(z.unsqueeze(-2), m, v)  # (batch, k)
    return log_mean_exp(log_probs, dim=-1)


def duplicate(x: torch.Tensor, rep: int):
    """Stack ``rep`` copies of ``x`` into the batch: ``(batch, ...)`` -> ``(rep * batch, ...)``.

    Layout ``[x; x; ...; x]`` (copy ``r`` is rows ``r * batch`` to ``(r + 1) * batch``),
    so ``out.reshape(rep, batch, ...)[r] == x``. As ``ut.duplicate`` in the course reference.
    """
    return x.expand(rep, *x.shape).reshape(-1, *x.shape[1:])
