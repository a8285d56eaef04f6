"""Variational autoencoder (Kingma & Welling 2014) and beta-VAE (Higgins et al. 2017).

    p(z) = N(0, I),   p(x|z) = Bernoulli(logits = decoder(z))  or  N(decoder(z), sigma^2 I),
    q(z|x) = N(m(x), diag v(x)).

    NELBO = Rec + KL,   Rec = -E_q[log p(x|z)] ~ -(1/L) sum_l log p(x|z_l),  z_l ~ q(z|x),
    KL = KL(q(z|x) || p(z))  (closed form for the standard normal prior).

L = --mc-samples (default 1). With the Gaussian likelihood and a fixed sigma0,
-log p(x|z) = ||x - mu(z)||^2 / (2 sigma0^2) + D log(sigma0 sqrt(2 pi)); with --sigma learned the
log-normaliser D log sigma is what stops sigma from shrinking to 0, so it is always included.

The training objective is Rec + beta * KL; `negative_elbo_bound` always returns the true
bound (beta = 1), so numbers stay comparable across beta.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import VaelabError
from ..densities import (gaussian_log_likelihood, kl_normal, log_bernoulli_with_logits, log_discretized_logistic,
                         log_normal, sample_gaussian)
from ..nets import (ConvDecoder, ConvEncoder, Decoder, Encoder, UserDecoder, UserEncoder, check_image_shape,
                    check_networks)
from .base import resolve
from .options import POSITIVE_NUMBER, option
from .policy import TrainingDefaults
from .variational import VariationalModel

LIKELIHOODS = ("bernoulli", "gaussian", "logistic")

# Samples per data point in a training step (iw_k, mc_samples), at most: a step holds batch x samples
# decoder rows (100 x 1,000 rows of 784 pixels is 300 MB per tensor; the IWAE paper trains with k <= 50).
MAX_SAMPLES_PER_POINT = 1_000


def check_samples_per_point(iw_k, mc_samples: int = 1) -> None:
    """iw_k and mc_samples: whole numbers from 1 to MAX_SAMPLES_PER_POINT (ValueError naming them)."""
    if isinstance(iw_k, bool) or not isinstance(iw_k, int) or iw_k < 1:
        raise ValueError(f"iw_k = {iw_k!r}: the importance-weighted objective needs k >= 1 samples (1: the ELBO)")
    if mc_samples <= 0:
        raise ValueError(f"mc_samples = {mc_samples}: needs at least one sample per data point")
    for name, value in (("iw_k", iw_k), ("mc_samples", mc_samples)):
        if value > MAX_SAMPLES_PER_POINT:
            raise ValueError(f"{name} = {value:,}: at most {MAX_SAMPLES_PER_POINT:,} samples per data point (a "
                             f"training step holds batch x {name} decoder rows in memory)")


@dataclass(frozen=True)
class VAEOptions:
    """The VAE's options (`vaelab train vae --help`, `vaelab.options("vae")`)."""
    z_dim: int = option(10, "latent dimension")
    hidden: str = option("300,300", "hidden layer sizes of encoder and decoder, comma separated")
    beta: float = option(1.0, "weight of the KL term in the training objective (beta-VAE); reported NELBO always "
                              "uses 1", rule=POSITIVE_NUMBER)
    likelihood: str = option("bernoulli", "p(x|z): bernoulli (binary data), gaussian (continuous data) or logistic "
                                          "(8-bit grey or colour levels: a discretized logistic, also reported in bits "
                                          "per dim; the default for colour images)")
    sigma: str = option("0.1", "gaussian likelihood only: fixed observation std, or 'learned'")
    net: str = option("mlp", "encoder/decoder: mlp, or conv (stride-2 convolutions; images of any size and channels)")
    channels: str = option("16,32,64", "conv nets only: channels of the encoder's three convolutions (the decoder "
                                       "mirrors them)")
    mc_samples: int = option(1, "Monte Carlo samples z_l ~ q(z|x) per data point for the reconstruction term")
    iw_k: int = option(1, "importance samples of the training objective: k > 1 trains on the IWAE-k bound "
                          "(Burda et al. 2016), 1 on the ELBO")


def binarize_unless_logistic(options: dict) -> str:
    """The VAE's default binarization: grey levels (none) for the discretized logistic, which models
    them; else dynamic (a new Bernoulli draw of every image per batch)."""
    return "none" if options.get("likelihood") == "logistic" else "dynamic"


def parse_hidden(hidden, what: str = "hidden sizes", example: str = "300,300") -> tuple[int, ...]:
    """'300,300' -> (300, 300); '' -> () (a single linear layer); from Python also 300 -> (300,) and
    [300, 300] -> (300, 300)."""
    if not isinstance(hidden, str):
        sizes = (hidden,) if isinstance(hidden, int) else tuple(hidden) if isinstance(hidden, (list, tuple)) else None
        if sizes is None or any(isinstance(h, bool) or not isinstance(h, int) or h <= 0 for h in sizes):
            raise ValueError(f"{what} {hidden!r}: give positive integers separated by commas, e.g. {example!r} "
                             f"(or a list of them)")
        return sizes
    if hidden.strip() and not hidden.replace(",", "").strip():
        raise ValueError(f"{what} {hidden!r}: no sizes given; give positive integers separated by commas, e.g. "
                         f"{example} (or an empty string for none)")
    try:
        sizes = tuple(int(h) for h in hidden.split(",") if h.strip())
    except ValueError:
        raise ValueError(f"{what} {hidden!r}: give positive integers separated by commas, e.g. {example}") from None
    if any(h <= 0 for h in sizes):
        raise ValueError(f"{what} {hidden!r}: every size must be positive")
    return sizes


def _network(net, what: str) -> nn.Module:
    """A user network: the module itself, or built from the import path module:Class (no arguments)."""
    if isinstance(net, str):
        cls = resolve(net, what)
        try:
            net = cls()
        except TypeError as e:
            raise ValueError(f"{what} {net!r} cannot be built without arguments ({e}); pass the model itself: "
                             f"vaelab.load_run(path, model=vaelab.VAE({what}=..., ...))") from None
    if not isinstance(net, nn.Module):
        raise ValueError(f"{what} must be a torch.nn.Module (or the import path module:Class of one), "
                         f"got {type(net).__name__}")
    return net


class VAE(VariationalModel):
    """Variational autoencoder (beta-VAE with --beta); Bernoulli or Gaussian p(x|z).

    encoder, decoder: networks of your own (any nn.Module, or the import path module:Class of one
    that takes no arguments) instead of the built-in MLP / conv nets; see vaelab.nets.UserEncoder
    for what they must return. Conditional (n_classes > 0): they are called as net(input, y_onehot).

    image_shape: the data's images as (channels, height, width), C x H x W = x_dim, for the conv nets
    (net="conv"); None: square single-channel 28x28 or 32x32 images. The MLP nets need only x_dim.
    """

    TERMS = ("nelbo", "kl", "rec")   # what negative_elbo_bound returns, in order
    DATA_OPTIONS = ("image_shape",)
    TRAINING = TrainingDefaults(iters=20_000, binarize=binarize_unless_logistic)
    anneals_kl = True

    def __init__(self, x_dim: int = 784, z_dim: int = 10, hidden="300,300", beta: float = 1.0,
                 likelihood: str = "bernoulli", sigma="0.1", net: str = "mlp", mc_samples: int = 1, n_classes: int = 0,
                 channels="16,32,64", encoder: nn.Module | str | None = None, decoder: nn.Module | str | None = None,
                 iw_k: int = 1, image_shape: tuple[int, int, int] | None = None):
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}: use {', '.join(LIKELIHOODS)}")
        if net not in ("mlp", "conv"):
            raise ValueError(f"unknown net {net!r}: use mlp or conv")
        check_samples_per_point(iw_k, mc_samples)
        if isinstance(z_dim, bool) or not isinstance(z_dim, numbers.Integral) or z_dim <= 0:
            raise ValueError(f"z_dim = {z_dim!r}: the latent space needs a positive whole number of dimensions")
        z_dim = int(z_dim)   # a numpy integer too
        self.x_dim, self.z_dim, self.beta, self.likelihood = x_dim, z_dim, float(beta), likelihood
        self.n_classes, self.conditional = n_classes, n_classes > 0   # the label y: one-hot into both networks
        self.mc_samples = mc_samples
        if iw_k > 1 and (beta != 1.0 or mc_samples != 1):
            raise ValueError(f"iw_k = {iw_k} trains on the IWAE bound, which has no beta or mc_samples; leave them "
                             f"at 1 (or use iw_k = 1)")
        self.iw_k = iw_k
        self.image_shape = None if image_shape is None else check_image_shape(image_shape, x_dim)
        if (encoder is None) != (decoder is None):
            raise ValueError("give both encoder and decoder (your own networks), or neither (the built-in ones)")
        if encoder is not None:
            self.enc = UserEncoder(_network(encoder, "encoder"), x_dim, z_dim, n_classes)
            self.dec = UserDecoder(_network(decoder, "decoder"), z_dim, x_dim, n_classes)
        elif net == "conv":
            channels = parse_hidden(channels, what="channels", example="16,32,64")
            if len(channels) != 3:
                raise ValueError(f"channels {','.join(map(str, channels))}: the conv nets take three counts, e.g. 16,32,64")
            self.enc = ConvEncoder(x_dim, z_dim, n_classes, channels, self.image_shape)
            self.dec = ConvDecoder(z_dim, x_dim, n_classes, channels, self.image_shape)
        else:
            hidden = parse_hidden(hidden)
            self.enc, self.dec = Encoder(x_dim, z_dim, hidden, n_classes), Decoder(z_dim, x_dim, hidden, n_classes)
        self.register_buffer("z_prior_m", torch.zeros(z_dim))
        self.register_buffer("z_prior_v", torch.ones(z_dim))
        if encoder is not None:   # a wrong output shape is an error now, not at the first training step
            check_networks(self.enc, self.dec)
        if likelihood == "gaussian":
            learned = str(sigma) == "learned"
            if not learned:
                try:
                    ok = math.isfinite(float(sigma)) and float(sigma) > 0
                except ValueError:
                    ok = False
                if not ok:
                    raise ValueError(f"sigma {sigma!r}: give a positive number (e.g. 0.1) or 'learned'")
            log_sigma = torch.tensor(0.0 if learned else math.log(float(sigma)))
            if learned:
                self.log_sigma = nn.Parameter(log_sigma)
            else:
                self.register_buffer("log_sigma", log_sigma)
        if likelihood == "logistic":   # one learned scale per pixel, as the mean comes from the decoder
            self.log_scale = nn.Parameter(torch.full((x_dim,), math.log(0.1)))

    @classmethod
    def options_for_data(cls, given: dict, channels: int, binarize: str) -> dict:
        """Colour images (3 or 4 channels of 8-bit levels) default to the discretized logistic, the likelihood of
        their levels, unless a likelihood or a binarization of them was asked for; grey and binary data keep
        the Bernoulli default."""
        if "likelihood" in given or channels < 3 or binarize in ("dynamic", "static") or "encoder" in given:
            return {}
        return {"likelihood": "logistic"}

    @property
    def reports_bits_per_dim(self) -> bool:
        """The discretized logistic is a probability of 8-bit levels: its bounds read in bits per dimension."""
        return self.likelihood == "logistic"

    def saved_options(self) -> dict:
        """Model.saved_options, less the options of the built-in networks (hidden, net, channels) when the
        model has networks of your own: they were not used, and a report listing them would mislead.
        image_shape is recorded as a list [C, H, W] (as config.json reads back), and left out when None."""
        out = super().saved_options()
        if out.get("image_shape") is None:
            out.pop("image_shape", None)
        else:
            out["image_shape"] = list(self.image_shape)
        if out.get("encoder") is not None:
            for name in ("hidden", "net", "channels"):
                out.pop(name, None)
        return out

    def onehot(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """The label as the networks take it: one-hot for conditional models, None otherwise."""
        if not self.conditional:
            return None
        if y is None:
            raise VaelabError(f"{type(self).__name__} is conditional: pass the labels y (class indices)")
        return F.one_hot(y, self.n_classes).to(self.z_prior_m.dtype)

    # -- the model, as the maths is written -------------------------------------------
    def log_pz(self, z: torch.Tensor) -> torch.Tensor:
        return log_normal(z, self.z_prior_m, self.z_prior_v)

    def kl_z(self, m: torch.Tensor, v: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || p(z)): closed form for the standard normal prior (z is unused)."""
        return kl_normal(m, v, self.z_prior_m, self.z_prior_v)

    def log_px_given_z(self, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self.dec(z, y)
        if self.likelihood == "bernoulli":
            return log_bernoulli_with_logits(x, out)
        if self.likelihood == "logistic":   # scales floored at e^-7, as PixelCNN++: a bin's mass stays finite
            return log_discretized_logistic(x, out, self.log_scale.clamp_min(-7.0))
        return gaussian_log_likelihood(x, out, self.log_sigma)

    def negative_elbo_bound(self, x: torch.Tensor, y: torch.Tensor | None = None, reduce: bool = True):
        """(NELBO, KL, Rec): batch means (or per-example values with reduce=False).

        Rec and a Monte Carlo KL are averaged over L = mc_samples draws z_l ~ q(z|x) (shape (L, batch, z_dim)).
        y, the labels, is used by conditional models only."""
        y = self.onehot(y)
        m, v = self.enc(x, y)
        L = self.mc_samples
        z = sample_gaussian(m.expand(L, *m.shape), v.expand(L, *v.shape))
        rec = -self.log_px_given_z(x, z, None if y is None else y.expand(L, *y.shape)).mean(0)
        kl = self.kl_z(m, v, z).expand(L, len(x)).mean(0)   # a closed-form KL is constant in z
        nelbo = rec + kl
        if reduce:
            return nelbo.mean(), kl.mean(), rec.mean()
        return nelbo, kl, rec

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """The training objective and the terms to log.

        iw_k = 1: Rec + beta * kl_weight * KL (the negative ELBO at beta = kl_weight = 1).
        iw_k > 1: the negative IWAE-k bound -log (1/k) sum_i w_i, w_i = p(x|z_i) [p(z_i) / q(z_i|x)]^kl_weight,
        logged beside the ELBO's terms estimated from the same k samples."""
        if self.iw_k == 1:
            nelbo, kl, rec = self.negative_elbo_bound(x, y)
            weight = self.beta * self.kl_weight
            # (under --cuda-graph with a warm-up, kl_weight is a device tensor: no comparison on the host)
            loss = nelbo if not torch.is_tensor(weight) and weight == 1.0 else rec + weight * kl
            return loss, {"nelbo": nelbo, "kl": kl, "rec": rec}
        return self.importance_weighted_loss(*self._log_weight_terms(x, self.iw_k, y))

    def _log_weight_terms(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None):
        """(log p(x | z_i [, y]), log p(z_i) - log q(z_i | x [, y])) for k samples z_i ~ q(z|x): each (k, batch)."""
        y = self.onehot(y)
        m, v = self.enc(x, y)
        z = sample_gaussian(m.expand(k, *m.shape), v.expand(k, *v.shape))
        yk = None if y is None else y.expand(k, *y.shape)
        return self.log_px_given_z(x, z, yk), self.log_pz(z) - log_normal(z, m, v)   # x broadcasts over k

    def log_importance_weights(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x, z_i [| y]) - log q(z_i | x [, y]) for k samples z_i ~ q(z|x): shape (k, batch)."""
        log_px, log_ratio = self._log_weight_terms(x, k, y)
        return log_px + log_ratio

    # -- generation ----------------------------------------------------------------------
    def sample_z(self, n: int) -> torch.Tensor:
        return sample_gaussian(self.z_prior_m.expand(n, -1), self.z_prior_v.expand(n, -1))

    def posterior_mean(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The mean of q(z|x [, y]), for latent-space pictures."""
        return self.enc(x, self.onehot(y))[0]

    def mean_x_given_z(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z [, y]]: Bernoulli probabilities, Gaussian means or the logistic's location (in [0, 1]),
        for pictures."""
        out = self.dec(z, self.onehot(y))
        if self.likelihood == "logistic":
            return out.clamp(0.0, 1.0)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out
