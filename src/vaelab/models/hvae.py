"""A VAE with two stochastic layers (Burda, Grosse & Salakhutdinov 2016, the IWAE paper's "2 layers").

    p(z2) = N(0, I),   p(z1 | z2) = N(mu(z2), diag s(z2)),   p(x | z1) = Bernoulli(decoder(z1))
    q(z1 | x) = N(encoder_1(x)),   q(z2 | z1) = N(encoder_2(z1))

with the paper's sizes: x -> 200-200 -> z1 (100) -> 100-100 -> z2 (50) and the mirror image,
tanh hidden units. One sample (z1, z2) ~ q gives the log-weight

    log w = log p(x | z1) + log p(z1 | z2) + log p(z2) - log q(z1 | x) - log q(z2 | z1),

NELBO = -E_q[log w] = Rec + KL with Rec = -log p(x | z1) and KL = E_q[log q(z1, z2 | x) - log p(z1, z2)]
(a Monte Carlo KL: one sample), and IWAE-k = -log (1/k) sum_i w_i. iw_k > 1 trains on the IWAE bound.
Pictures use the top layer: z = z2, decoded through the mean of p(z1 | z2).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..densities import log_bernoulli_with_logits, log_normal, sample_gaussian
from ..nets import Decoder, Encoder
from .options import option
from .variational import VariationalModel
from .vae import check_samples_per_point, parse_hidden


@dataclass(frozen=True)
class HVAEOptions:
    """The two-layer VAE's options (`vaelab train hvae --help`)."""
    z_dim: int = option(50, "top latent dimension z2")
    z1_dim: int = option(100, "bottom latent dimension z1")
    hidden: str = option("200,200", "hidden sizes between x and z1 (and back), comma separated")
    hidden2: str = option("100,100", "hidden sizes between z1 and z2 (and back), comma separated")
    iw_k: int = option(1, "importance samples of the training objective (1: the ELBO; k > 1: the IWAE-k bound)")


class HVAE(VariationalModel):
    """VAE with two stochastic layers x -> z1 -> z2 (the IWAE paper's two-layer model); ELBO or IWAE objective."""

    anneals_kl = True

    def __init__(self, x_dim: int = 784, z_dim: int = 50, z1_dim: int = 100, hidden="200,200", hidden2="100,100",
                 iw_k: int = 1):
        super().__init__()
        check_samples_per_point(iw_k)
        if z_dim <= 0 or z1_dim <= 0:
            raise ValueError(f"z_dim = {z_dim}, z1_dim = {z1_dim}: both latent layers need at least one dimension")
        h1, h2 = parse_hidden(hidden), parse_hidden(hidden2, what="hidden2 sizes", example="100,100")
        self.x_dim, self.z_dim, self.z1_dim, self.iw_k = x_dim, z_dim, z1_dim, iw_k
        self.q_z1 = Encoder(x_dim, z1_dim, h1, activation="tanh")      # q(z1 | x)
        self.q_z2 = Encoder(z1_dim, z_dim, h2, activation="tanh")      # q(z2 | z1)
        self.p_z1 = Encoder(z_dim, z1_dim, tuple(reversed(h2)), activation="tanh")   # p(z1 | z2): mean, variance
        self.p_x = Decoder(z1_dim, x_dim, tuple(reversed(h1)), activation="tanh")    # p(x | z1): logits
        self.register_buffer("z_prior_m", torch.zeros(z_dim))
        self.register_buffer("z_prior_v", torch.ones(z_dim))

    # -- the model, as the maths is written ---------------------------------------------------
    def _log_weight_terms(self, x: torch.Tensor, k: int):
        """(log p(x | z1), log p(z1, z2) - log q(z1, z2 | x)) for k samples (z1, z2) ~ q: each (k, batch)."""
        m1, v1 = self.q_z1(x)
        z1 = sample_gaussian(m1.expand(k, *m1.shape), v1.expand(k, *v1.shape))
        m2, v2 = self.q_z2(z1.reshape(-1, self.z1_dim))
        z2 = sample_gaussian(m2, v2)
        pm1, pv1 = self.p_z1(z2)
        log_p = (log_normal(z2, self.z_prior_m, self.z_prior_v) + log_normal(z1.reshape(-1, self.z1_dim), pm1, pv1))
        log_q = log_normal(z1, m1, v1).reshape(-1) + log_normal(z2, m2, v2)
        log_px = log_bernoulli_with_logits(x, self.p_x(z1))   # x broadcasts over the k samples
        return log_px, (log_p - log_q).view(k, len(x))

    def negative_elbo_bound(self, x: torch.Tensor, y: torch.Tensor | None = None, reduce: bool = True):
        """(NELBO, KL, Rec) from one sample (z1, z2) ~ q: batch means, or per-example with reduce=False."""
        log_px, log_ratio = self._log_weight_terms(x, 1)
        rec, kl = -log_px[0], -log_ratio[0]
        terms = (rec + kl, kl, rec)
        return tuple(t.mean() for t in terms) if reduce else terms

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """-ELBO (iw_k = 1) or -IWAE-k, with the KL part weighted by kl_weight (warm-up); ELBO terms logged."""
        log_px, log_ratio = self._log_weight_terms(x, self.iw_k)
        if self.iw_k > 1:
            return self.importance_weighted_loss(log_px, log_ratio)
        rec, kl = -log_px.mean(), -log_ratio.mean()
        return rec + self.kl_weight * kl, {"nelbo": rec + kl, "kl": kl, "rec": rec}

    def log_importance_weights(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None) -> torch.Tensor:
        log_px, log_ratio = self._log_weight_terms(x, k)
        return log_px + log_ratio

    # -- pictures: the top layer ----------------------------------------------------------------
    def sample_z(self, n: int) -> torch.Tensor:
        return sample_gaussian(self.z_prior_m.expand(n, -1), self.z_prior_v.expand(n, -1))

    def posterior_mean(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The mean of q(z2 | z1 = mean of q(z1 | x))."""
        return self.q_z2(self.q_z1(x)[0])[0]

    def mean_x_given_z(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z1 = mean of p(z1 | z2 = z)]: Bernoulli probabilities."""
        return torch.sigmoid(self.p_x(self.p_z1(z)[0]))
