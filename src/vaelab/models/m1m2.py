"""M1+M2 (Kingma, Rezende, Mohamed & Welling 2014): the semi-supervised VAE on a VAE's latent space.

    M1:  p(z1) = N(0, I),  p(x | z1) = Bernoulli(decoder(z1)),  q(z1 | x)        -- a VAE (vae.py)
    M2:  p(y) uniform,  p(z2) = N(0, I),  p(z1 | y, z2) = N(decoder(z2, y), diag sigma^2),
         q(y | z1),  q(z2 | z1, y)                                            -- SSVAE (ssvae.py) on z1

sigma is one learned std per dim of z1 (z1_sigma="dim"), or the decoder's second output, a log-std per dim
and example (z1_sigma="decoder": Kingma et al.'s M2 on M1's features, whose decoder gives a mean and a
log-variance, the same up to a factor 2), kept within [e^-7, e^7] so that no runaway output overflows.

One run, two stages: the first m1_iters iterations fit M1 alone (its own NELBO, p(z1) = N(0, I));
after that M1 is frozen and M2 is fit to samples z1 ~ q(z1 | x) with SSVAE's objective
gw * NELBO_M2(z1) + cw * CE(q(y | z1) on the labelled batch). A test image is classified by
q(y | z1 = mean of q(z1 | x)).

M2 may model only M1's active units (m1_active=, --m1-active; Kingma et al. keep the dims whose q(z1 | x)
mean has a std above 0.1 over the data): the other dims carry no information about x, only noise that the
classifier would see in training and not at test. They are chosen once, from the first M2 batch, and keep
M1's own prior N(0, 1) in the bound (the extra -log N(z1_rest; 0, I) term).

M1 may instead come from a finished `vae` run (m1_run=, --m1-run): M1 trained as long as one likes, with the
VAE's own time budget, KL warm-up and schedule, then every iteration of this run trains M2 on it.

The reported bound is on log p(x) of the stacked model, M2 being the prior over z1 (the same bound
in both stages, so validation curves run through the switch):

    NELBO(x) = Rec + KL,   Rec = -log p(x | z1),   KL = log q(z1 | x) + NELBO_M2(z1),   z1 ~ q(z1 | x)

where NELBO_M2(z1) = KL_y + KL_z2 - sum_y q(y|z1) log p(z1 | y, z2_y) >= -log p(z1) (ssvae.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file as load_safetensors
from torch import nn

from .. import distributed
from ..errors import VaelabError, first_line, arg
from ..storage import read_json
from ..densities import gaussian_log_likelihood, kl_normal, log_normal, sample_gaussian
from .options import SEED, option, option_defaults
from .policy import TrainingDefaults
from .ssvae import SSVAE, SSVAEOptions
from ..nets import Decoder
from .vae import VAE, VAEOptions, parse_hidden


@dataclass(frozen=True)
class M1Options:
    """M1's options in the stacked model; M1M2Options puts them before the SSVAE's."""
    z1_dim: int = option(50, "M1's latent dimension: the features M2 models and classifies")
    m1_hidden: str = option("600,600", "M1 encoder and decoder hidden layer sizes, comma separated")
    m1_iters: int | None = option(None, "stage 1: iterations that train M1 alone; the remaining --iters train M2 "
                                        "(default: 10,000, or 0 with --m1-run)")
    m1_run: str | None = option(None, "a finished vae run folder whose weights M1 starts from (its --z-dim and "
                                      "--hidden must equal --z1-dim and --m1-hidden)")
    m1_seed: int = option(0, "with --m1-run: the training seed of that run whose weights M1 takes", rule=SEED)
    m1_active: float = option(0.0, "M2 models only the z1 dims whose q(z1|x) mean has a std above this over the "
                                   "first M2 batch (Kingma et al.: 0.1); the others keep M1's N(0, I) prior (0: every "
                                   "dim)")


@dataclass(frozen=True)
class M1M2Options(SSVAEOptions, M1Options):
    """M1+M2's options (`vaelab train m1m2 --help`): M1's, then the SSVAE's (M2's) with z_dim the z2 of M2."""
    z_dim: int = option(50, "M2's latent dimension z2")
    z1_sigma: str = option("dim", "std of p(z1 | y, z2): 'dim' (one learned per dim of z1) or 'decoder' (the decoder "
                                  "gives one per dim and example, as Kingma et al.)")


Z1_SIGMAS = ("dim", "decoder")
_LOG_SIGMA_BOUND = 7.0   # z1_sigma="decoder": |log std| at most this (std 1e-3 to 1e3 against codes of size ~1)


class M1M2(SSVAE):
    """M2 (semi-supervised VAE) stacked on M1 (a VAE), trained one after the other in one run."""

    TERMS = ("nelbo", "kl", "rec", "kl_y", "kl_z2")
    TRAINING = TrainingDefaults(iters=40_000)   # 10,000 for M1, then 30,000 for M2
    WEIGHT_OPTIONS = ("m1_run", "m1_seed")   # they only choose M1's first weights
    graphable = False   # the loss reads its stage (steps_done) on the host

    def __init__(self, x_dim: int = 784, z1_dim: int = 50, m1_hidden="600,600", m1_iters: int | None = None,
                 z_dim: int = 50, hidden="300,300", n_classes: int = 10, gw: float = 1.0, cw: float = 100.0,
                 labels_per_class: int = 10, label_seed: int = 0, lw: float = 0.0, m1_run: str | None = None,
                 m1_seed: int = 0, m1_active: float = 0.0, z1_sigma: str = "dim", activation: str | None = None):
        if m1_iters is None:
            m1_iters = 0 if m1_run else 10_000
        if m1_iters < 0:
            raise ValueError(f"m1_iters = {m1_iters}: give the number of stage-1 iterations (0 or more)")
        if not 0 <= m1_active < float("inf"):
            raise ValueError(f"m1_active = {m1_active}: give a posterior-mean std threshold >= 0 ("
                             f"Kingma et al. 0.1, 0 keeps every dim)")
        if z1_sigma not in Z1_SIGMAS:
            raise ValueError(f"z1_sigma = {z1_sigma!r}: give 'dim' (one learned std per dim of z1) or 'decoder'")
        super().__init__(x_dim=z1_dim, z_dim=z_dim, hidden=hidden, n_classes=n_classes, gw=gw, cw=cw,
                         labels_per_class=labels_per_class, label_seed=label_seed, lw=lw, activation=activation)
        self.z1_sigma = z1_sigma
        if z1_sigma == "decoder":   # the decoder's output: z1's mean, then its log-std
            self.dec = Decoder(z_dim, 2 * z1_dim, parse_hidden(hidden), y_dim=n_classes,
                               activation=activation or "elu")
        self.x_dim, self.z1_dim, self.m1_iters = x_dim, z1_dim, m1_iters
        self.m1 = VAE(x_dim, z1_dim, m1_hidden)
        if m1_run:
            self.m1.load_state_dict(_trained_m1(m1_run, m1_seed, x_dim, z1_dim, m1_hidden).state_dict())
        if z1_sigma == "dim":   # p(z1 | y, z2): one learned std per dimension
            self.log_sigma = nn.Parameter(torch.zeros(z1_dim))
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))   # training steps so far (stage)
        self.trains_every_parameter = False   # each stage trains only its own networks (DDP must know)
        self.m1_active = m1_active
        if m1_active:   # 1 for the dims M2 models; chosen at the first M2 step (then active_chosen)
            self.register_buffer("active", torch.ones(z1_dim))
            self.register_buffer("active_chosen", torch.zeros((), dtype=torch.bool))
        else:
            self.active = None

    # -- M1's active units: what M2 sees of z1 ---------------------------------------------
    def m2_input(self, z1: torch.Tensor) -> torch.Tensor:
        """z1 as M2's networks see it: the inactive dims set to 0 (their prior mean)."""
        return z1 if self.active is None else z1 * self.active

    def choose_active(self, m: torch.Tensor) -> None:
        """Keep the dims whose posterior means m (a batch of q(z1 | x) means) have a std above m1_active,
        pooled over every process so that all choose the same dims."""
        d = m.shape[1]
        sums = distributed.sum_across(torch.cat([m.new_tensor([len(m)]), m.sum(0), m.pow(2).sum(0)]))
        mean = sums[1:1 + d] / sums[0]
        std = (sums[1 + d:] / sums[0] - mean.pow(2)).clamp_min(0).sqrt()
        if not (std > self.m1_active).any():
            raise VaelabError(f"m1_active = {self.m1_active}: no dim of M1's z1 has a posterior-mean std above it "
                              f"(largest {std.max().item():.3g}); lower {arg('m1_active')} or train M1 longer")
        self.active.copy_((std > self.m1_active).to(self.active.dtype))
        self.active_chosen.fill_(True)

    def nelbo_m2(self, z1: torch.Tensor):
        """Per-example (NELBO_M2, KL_y, KL_z2) of z1: M2's bound on its active dims plus -log N(0, I) of the rest."""
        nelbo, kl_y, kl_z2, _ = super().negative_elbo_bound(self.m2_input(z1), reduce=False)
        if self.active is not None:   # log N(z1_rest; 0, I), summed over the inactive dims only
            rest = 1 - self.active
            nelbo = nelbo + (rest * (0.5 * z1.pow(2) + 0.5 * math.log(2 * math.pi))).sum(-1)
        return nelbo, kl_y, kl_z2

    # -- M2's likelihood: a Gaussian over M1's features ------------------------------------
    def p_z1(self, z2: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log-std) of p(z1 | y, z2); y one-hot."""
        out = self.dec(z2, y)
        if self.z1_sigma == "dim":
            return out, self.log_sigma
        mean, log_sigma = out.chunk(2, -1)
        return mean, log_sigma.clamp(-_LOG_SIGMA_BOUND, _LOG_SIGMA_BOUND)

    def log_px_given_zy(self, z1: torch.Tensor, z2: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log p(z1 | y, z2), over the active dims when M2 models only those."""
        mean, log_sigma = self.p_z1(z2, y)
        if self.active is None:
            return gaussian_log_likelihood(z1, mean, log_sigma)
        keep = self.active.bool()
        return gaussian_log_likelihood(z1[:, keep], mean[:, keep], log_sigma[..., keep])

    def check_training(self, iters: int, continuous: bool) -> None:
        """Stage 2 must get iterations: refuse iters <= m1_iters."""
        super().check_training(iters, continuous)
        if self.m1_iters >= iters:
            raise VaelabError(f"{arg('iters')} = {iters} leaves no iterations after stage 1 ({arg('m1_iters')} = {self.m1_iters}); "
                              f"raise {arg('iters')} above {self.m1_iters} or lower {arg('m1_iters')}")

    def sample_z1(self, x: torch.Tensor):
        """(m, v, z1): q(z1 | x) and one reparameterised sample of it."""
        m, v = self.m1.enc(x)
        return m, v, sample_gaussian(m, v)

    def negative_elbo_bound(self, x: torch.Tensor, y: torch.Tensor | None = None, reduce: bool = True):
        """(NELBO, KL, Rec, KL_y, KL_z2) of the stacked model (y is not used): batch means, or per-example."""
        m, v, z1 = self.sample_z1(x)
        rec = -self.m1.log_px_given_z(x, z1)
        nelbo_m2, kl_y, kl_z2 = self.nelbo_m2(z1)
        kl = log_normal(z1, m, v) + nelbo_m2
        terms = (rec + kl, kl, rec, kl_y, kl_z2)
        return tuple(t.mean() for t in terms) if reduce else terms

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None, labelled=None):
        """Stage 1: M1's NELBO. Stage 2: gw * NELBO_M2(z1) + cw * CE(labelled z1) [+ lw * labelled NELBO_M2].
        The logged terms are the stacked model's bound (and M1's own NELBO, m1_nelbo) in both stages;
        the labels y of the unlabelled batch are never used."""
        stage1 = self.training and int(self.steps_done) < self.m1_iters
        if self.training:
            self.steps_done += 1
        xl, yl = labelled
        with torch.set_grad_enabled(stage1 and torch.is_grad_enabled()):
            m, v, z1 = self.sample_z1(x)
            rec = -self.m1.log_px_given_z(x, z1)
            m1_nelbo = rec + kl_normal(m, v, self.m1.z_prior_m, self.m1.z_prior_v)
            z1l = self.sample_z1(xl)[2]
        if self.active is not None and not stage1 and self.training and not self.active_chosen:
            self.choose_active(m.detach())
        with torch.set_grad_enabled(not stage1 and torch.is_grad_enabled()):
            nelbo_m2, kl_y, kl_z2 = self.nelbo_m2(z1.detach())
            labelled_loss, labelled_terms = self.labelled_loss(self.m2_input(z1l.detach()), yl)
        kl = log_normal(z1, m, v) + nelbo_m2
        terms = {"nelbo": (rec + kl).mean(), "kl": kl.mean(), "rec": rec.mean(), "kl_y": kl_y.mean(),
                 "kl_z2": kl_z2.mean(), **labelled_terms, "m1_nelbo": m1_nelbo.mean()}
        loss = m1_nelbo.mean() if stage1 else self.gw * nelbo_m2.mean() + labelled_loss
        return loss, {k: t.detach() for k, t in terms.items()}

    # -- classification and pictures go through M1 -------------------------------------------
    def classifier_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls(self.m2_input(self.m1.enc(x)[0]))

    def posterior_mean(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean of q(z2 | z1 = mean of q(z1|x), y)."""
        return super().posterior_mean(self.m2_input(self.m1.enc(x)[0]), y)

    def mean_x_given_z(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """E[x | z1 = E[z1 | z2, y]]: M1's Bernoulli means of M2's mean features (inactive dims at 0)."""
        return self.m1.mean_x_given_z(self.m2_input(self.p_z1(z, F.one_hot(y, self.n_classes).float())[0]))


def _trained_m1(path: str, seed: int, x_dim: int, z1_dim: int, m1_hidden) -> VAE:
    """The VAE of a finished `vae` run, checked to be the M1 that (x_dim, z1_dim, m1_hidden) describe. Read
    from the folder's files (config.json, metrics.json, seed-S/model.safetensors: the weights the seed's
    results come from): a model opens no Run."""
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"m1_run = {path!r}: {folder.resolve()}: no such folder; give a finished `vae` run folder")
    try:
        cfg = read_json(folder / "config.json")
        done = read_json(folder / "metrics.json").get("per_seed", {}) if (folder / "metrics.json").exists() else {}
    except VaelabError as e:
        raise ValueError(f"m1_run = {path!r}: {e}") from None
    if not isinstance(cfg, dict) or cfg.get("model") != "vae":
        model = cfg.get("model") if isinstance(cfg, dict) else None
        raise ValueError(f"m1_run = {path!r} holds a run of {model}; M1 is a VAE: give a finished `vae` run")
    seeds, finished = cfg.get("seeds", []), [int(s) for s in done]
    if seed not in seeds:
        raise ValueError(f"m1_seed = {seed}: m1_run = {path!r} has seeds {seeds}; choose m1_seed among them")
    weights = folder / f"seed-{seed}" / "model.safetensors"
    if seed not in finished or not weights.is_file():
        raise ValueError(f"m1_run = {path!r}: seed {seed} has not finished training (finished: "
                         f"{finished or 'none'}); resume that run or choose m1_seed among the finished")
    opts = {**option_defaults(VAEOptions), **cfg.get("model_options", {})}
    if (any(opts.get(k) for k in ("encoder", "decoder", "n_classes")) or opts["net"] != "mlp"
            or opts["likelihood"] != "bernoulli"):
        raise ValueError(f"m1_run = {path!r}: M1 is the Bernoulli VAE with dense layers; that run's options "
                         f"{cfg.get('model_options')} build another network")
    if (opts["z_dim"], parse_hidden(str(opts["hidden"]))) != (z1_dim, parse_hidden(m1_hidden)):
        raise ValueError(f"m1_run = {path!r} has z_dim {opts['z_dim']} and hidden {opts['hidden']!r}; pass "
                         f"z1_dim={opts['z_dim']} and m1_hidden={opts['hidden']!r}")
    m1 = VAE(x_dim, z1_dim, m1_hidden)
    try:
        m1.load_state_dict(load_safetensors(weights))
    except (RuntimeError, OSError, ValueError) as e:   # a size mismatch: another data set's images
        raise ValueError(f"m1_run = {path!r}: its weights do not fit an M1 of {x_dim} values per example "
                         f"({first_line(e, 120)}); train M1 on the same data set") from None
    return m1
