"""The VAE family's contract: a Model with a likelihood p(x), bounded below by an ELBO.

    negative_elbo_bound(x, y)  ->  (NELBO, its terms...)   named by TERMS, batch means
                                                           (per example with reduce=False)

A variational model's test-set terms are its bound's: `terms` is `negative_elbo_bound`, NELBO first,
and the `elbo` verb is -NELBO per example. Every VAE of vaelab (vae, gmvae, vamp, hvae, cvae, ssvae,
m1m2) is one. A model of your own with an ELBO subclasses this class and writes negative_elbo_bound
(and log_importance_weights, or has_iwae = False); a model without one (an autoencoder) subclasses
Model and writes `terms` itself, with no negative_elbo_bound at all.
"""
from __future__ import annotations

from typing import ClassVar

import torch

from .base import Model


class VariationalModel(Model):
    """Base class of the VAE family: negative_elbo_bound is its maths, its test terms and its `elbo`."""

    TERMS: ClassVar[tuple[str, ...]] = ("nelbo", "kl", "rec")   # what negative_elbo_bound returns, in order
    has_likelihood = True
    has_iwae = True

    def negative_elbo_bound(self, x: torch.Tensor, y: torch.Tensor | None = None, reduce: bool = True):
        """(NELBO, terms...) named by TERMS: batch means, or per-example values with reduce=False."""
        raise NotImplementedError

    def terms(self, x: torch.Tensor, y: torch.Tensor | None = None, reduce: bool = True):
        """The test-set terms: the negative ELBO and its parts (negative_elbo_bound)."""
        return self.negative_elbo_bound(x, y, reduce=reduce)

    @torch.no_grad()
    def elbo(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The evidence lower bound on log p(x) per example (nats; one Monte Carlo sample): -NELBO.

        An evaluation: no gradient is kept (the training objective is loss())."""
        x = self._inputs(x)
        return -self.negative_elbo_bound(x, self._labels(y, len(x)), reduce=False)[0]
