"""The model contract: what every vaelab model is and can do, written down once.

Every model is a `Model` (an `nn.Module`). The trainer, the evaluators, the figures, the CLI
and the explorer talk to models through this class only: a capability is a declared attribute
here, never a probe at the call site.

The maths, as each model file writes it:

    terms(x, y)                ->  its test-set terms         named by TERMS, batch means (the VAE
                                                             family, VariationalModel: negative_elbo_bound,
                                                             (NELBO, its terms...))
    loss(x, y[, labelled])     ->  (objective, terms to log)  what the optimizer minimises
    posterior_mean(x, y)       ->  E[z | x (, y)]             the code, for pictures
    mean_x_given_z(z, y)       ->  E[x | z (, y)]             Bernoulli probabilities or means
    sample_z(n)                ->  z ~ p(z)
    log_importance_weights(x, k, y) -> log p(x, z_i) - log q(z_i | x), shape (k, batch)
                                                             (models with has_iwae)

and the user-facing verbs built on them: `encode`, `decode`, `sample`, `reconstruct`, `elbo`
(VariationalModel), `iwae` (models with `has_iwae`) and (models with `classifies`) `classify`.

What the layers above ask of a model besides its maths, its training defaults and report policy, is
declared apart as TRAINING and REPORT (models/policy.py): read by the trainer's configuration and the
run folder, never by the model itself.

Labels: `y` is a tensor of class indices (long, shape (batch,)). Conditional models
(`conditional = True`) need it in encode / decode / elbo / iwae; `sample` draws classes
uniformly when it is left out. Unconditional models refuse it (they take no label).
"""
from __future__ import annotations

import inspect
from typing import ClassVar

import torch
from torch import nn

from ..densities import log_mean_exp
from ..errors import VaelabError, at_most, positive_int, arg
from ..machine import check_memory
from .policy import ReportPolicy, TrainingDefaults

# Rows of the decoder input per forward pass when evaluating IWAE bounds. On a CPU, small enough that each
# pass's (rows, 784) tensors stay in cache, which there is faster than larger passes; on a GPU, large enough
# that each kernel's work outruns its launch (a pass of 1,000 rows leaves an H200 idle between launches).
IWAE_ROWS_PER_PASS = 1_000
# Importance samples per example, at most: the bound barely tightens past a few thousand, and the time
# grows with k (IWAE-5000 of a 10,000-image test set is 50 million decoder rows).
MAX_IWAE_K = 1_000_000
IWAE_K_LIMIT = "the time grows with k, and the bound barely tightens past a few thousand"
IWAE_ROWS_PER_PASS_GPU = 100_000


def iwae_rows_per_pass(device: torch.device | str) -> int:
    """Decoder rows per IWAE evaluation pass on `device`: IWAE_ROWS_PER_PASS, or IWAE_ROWS_PER_PASS_GPU on CUDA."""
    return IWAE_ROWS_PER_PASS_GPU if torch.device(device).type == "cuda" else IWAE_ROWS_PER_PASS


def iwae_per_example(model, x: torch.Tensor, k: int, y: torch.Tensor | None = None,
                     rows: int | None = None, weights=None) -> torch.Tensor:
    """log (1/k) sum_i w_ni for every row of x: the IWAE-k bound on log p(x_n), in passes of about
    `rows` decoder rows (default: iwae_rows_per_pass of x's device), so any k fits in memory.
    weights: the function giving each pass's log w (default model.log_importance_weights; evaluation
    may pass a compiled copy of it)."""
    rows = rows or iwae_rows_per_pass(x.device)
    weights = weights or model.log_importance_weights
    chunk = max(1, min(k, rows))          # importance samples per pass
    batch = max(1, rows // chunk)         # images per pass
    out = []
    for i in range(0, len(x), batch):
        xb, yb = x[i:i + batch], None if y is None else y[i:i + batch]
        log_w = torch.cat([weights(xb, min(chunk, k - s), yb) for s in range(0, k, chunk)])
        out.append(log_mean_exp(log_w, dim=0))
    return torch.cat(out)


def iwae_k_count(k) -> int:
    """An IWAE k: a positive integer, at most MAX_IWAE_K (VaelabError naming the argument k)."""
    return at_most("k", positive_int("k", k, "importance samples per example"), MAX_IWAE_K, IWAE_K_LIMIT)


def checked_model(model) -> "Model":
    """model itself if it is a vaelab Model, else a VaelabError with the fix (a Run holds one model per seed)."""
    if not isinstance(model, Model):
        raise VaelabError(f"model must be a vaelab model, got {type(model).__name__}: pass a model such as "
                          f"run.model() (a Run holds one model per seed: run.model(seed))")
    return model


def import_path(cls: type) -> str:
    """module:QualName of a class, the form `resolve` imports again."""
    return f"{cls.__module__}:{cls.__qualname__}"


def resolve(path: str, what: str) -> type:
    """The class at module:QualName (VaelabError naming `what` if it cannot be imported)."""
    import importlib

    module, _, qualname = path.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, ValueError):
        raise VaelabError(f"{what} {path!r} cannot be imported here; define or import that class first, or pass "
                          f"the model itself: vaelab.load_run(path, model=...)") from None
    return obj


class Model(nn.Module):
    """Base class of every vaelab model (see the module docstring for the contract)."""

    # -- declared capabilities (class attributes; a model overrides what differs) -------------
    TERMS: ClassVar[tuple[str, ...]]              # what terms returns, in order; the first is validated on
    deterministic: ClassVar[bool] = False         # evaluation needs one pass (no Monte Carlo noise)
    has_likelihood: ClassVar[bool] = False        # an ELBO on log p(x) exists (VariationalModel: the VAE family)
    has_iwae: ClassVar[bool] = False              # log_importance_weights, so IWAE-k bounds, exist
    classifies: ClassVar[bool] = False            # has a classifier q(y | x): classify, accuracy
    conditional: bool = False                     # encoder and decoder take the label y
    n_classes: int = 0                            # classes of y (conditional or semi-supervised), else 0
    labels_per_class: int = 0                     # semi-supervised: labelled images per class, every step
    label_seed: int = 0                           # semi-supervised: the seed that picks them
    likelihood: str = "bernoulli"                 # p(x|z): bernoulli (binary data), gaussian or logistic (8-bit)
    graphable: bool = True                        # its loss does the same device work every step, whatever
                                                  # the data (no host read of a tensor, no host-drawn random
                                                  # number): --cuda-graph may capture it
    trains_every_parameter: bool = True           # False: some parameters get no gradient (DDP must know)
    anneals_kl: ClassVar[bool] = False            # its loss honours kl_weight (KL warm-up, --warmup)
    # Options that only choose first weights (e.g. M1M2's m1_run): a saved model is rebuilt without them,
    # its checkpoint holding every weight, so the run opens even where their source is gone.
    WEIGHT_OPTIONS: ClassVar[tuple[str, ...]] = ()
    # Constructor arguments that describe the data, as x_dim does, not options of the user's (none is a declared option):
    # image_shape, (C, H, W), for the models whose conv nets need it. build_model takes them besides the declared options,
    # and load_model passes a checkpoint's image_shape to them.
    DATA_OPTIONS: ClassVar[tuple[str, ...]] = ()
    registered_name: ClassVar[str | None] = None   # set on the registry's own classes (models/__init__.py)
    kl_weight: float = 1.0                        # the trainer's warm-up weight of the KL term, 0..1 (a 0-dim
                                                  # device tensor while a --cuda-graph run warms up)
    z_dim: int
    x_dim: int
    # -- policy of the layers above (models/policy.py), not maths: Model's are the VAE's ---------------
    TRAINING: ClassVar[TrainingDefaults] = TrainingDefaults()   # iters, optimizer, binarize that auto means
    REPORT: ClassVar[ReportPolicy] = ReportPolicy()             # training curves, extra figures, anomaly score

    # The constructor arguments of the outermost __init__ call, recorded for every subclass, so that
    # a model can be saved as (class, options) and built again: see options().
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            return
        init = cls.__init__
        signature = inspect.signature(init)

        def recording_init(self, *args, **kw):
            if "_init_options" not in self.__dict__:   # outermost call only (subclasses call super)
                try:
                    bound = signature.bind(self, *args, **kw)
                except TypeError as e:   # inspect's message does not say whose arguments
                    raise TypeError(f"{cls.__name__}(): {e}") from None
                bound.apply_defaults()
                opts = {}
                for name, value in list(bound.arguments.items())[1:]:
                    kind = signature.parameters[name].kind
                    if kind is inspect.Parameter.VAR_KEYWORD:
                        opts.update(value)
                    elif kind is not inspect.Parameter.VAR_POSITIONAL:
                        opts[name] = value
                self.__dict__["_init_options"] = opts
            init(self, *args, **kw)

        recording_init.__wrapped__ = init
        recording_init.__doc__, recording_init.__name__, recording_init.__qualname__ = (
            init.__doc__, init.__name__, init.__qualname__)
        cls.__init__ = recording_init

    def options(self) -> dict:
        """The constructor arguments this model was built with (x_dim included)."""
        return dict(self.__dict__.get("_init_options", {}))

    def registry_name(self) -> str:
        """The name a run records for this model: its registry name (vae, gmvae, ...), or for a class of
        your own the import path module:Class that builds it again."""
        return type(self).__dict__.get("registered_name") or import_path(type(self))   # not a subclass's

    def saved_options(self) -> dict:
        """options() as a run's config.json records them: networks by the import path of their class
        (rebuilt with no arguments when the run is loaded), x_dim left to the data."""
        out = {}
        for k, v in self.options().items():
            if k == "x_dim":
                continue
            if isinstance(v, nn.Module):
                v = import_path(type(v))
            elif not isinstance(v, (str, int, float, bool, type(None), list, tuple)):
                raise VaelabError(f"option {k}={v!r} of {type(self).__name__} cannot be saved in a run's config.json; "
                                  "give numbers, strings or networks")
            out[k] = v
        return out

    # -- the maths each model writes --------------------------------------------------------
    def terms(self, x: torch.Tensor, y: torch.Tensor | None = None, reduce: bool = True):
        """Its test-set terms, named by TERMS: batch means, or per-example values with reduce=False
        (VariationalModel: negative_elbo_bound; an autoencoder: loss, rec, penalty, mse)."""
        raise NotImplementedError

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None, labelled=None):
        """(training objective, {term: value}) on a batch; `labelled` is the semi-supervised labelled batch."""
        raise NotImplementedError

    def posterior_mean(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E[z | x (, y)]: the code of x."""
        raise NotImplementedError

    def mean_x_given_z(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z (, y)]: Bernoulli probabilities or Gaussian means."""
        raise NotImplementedError

    def sample_z(self, n: int) -> torch.Tensor:
        """n draws from the prior p(z); an autoencoder decodes N(0, I) draws (it has no prior)."""
        p = next(self.parameters())
        return torch.randn(n, self.z_dim, dtype=p.dtype, device=p.device)

    def log_importance_weights(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x, z_i [| y]) - log q(z_i | x [, y]) for k samples z_i ~ q(z|x): shape (k, batch)."""
        raise VaelabError(f"{type(self).__name__} has no importance-weighted bound (has_iwae is False); "
                          "use a model with has_iwae (vae, gmvae, vamp, hvae, cvae) for IWAE-k")

    def importance_weighted_loss(self, log_px: torch.Tensor, log_ratio: torch.Tensor):
        """The IWAE-k training objective from k samples' log p(x|z_i) and log p(z_i) - log q(z_i|x) (each (k, batch)):
        -log (1/k) sum_i p(x|z_i) [p(z_i) / q(z_i|x)]^kl_weight, and the ELBO's terms estimated from the same samples."""
        niwae = -log_mean_exp(log_px + self.kl_weight * log_ratio, dim=0).mean()
        rec, kl = -log_px.mean(), -log_ratio.mean()
        return niwae, {"niwae_train": niwae.detach(), "nelbo": (rec + kl).detach(), "kl": kl.detach(), "rec": rec.detach()}

    # -- hooks with defaults ----------------------------------------------------------------
    @classmethod
    def options_for_data(cls, given: dict, channels: int, binarize: str) -> dict:
        """Options whose default depends on the data, for the options `given` (what was asked for), once the
        data are read: {name: value} to add to them (recorded with the run); none by default."""
        return {}

    @property
    def reports_bits_per_dim(self) -> bool:
        """Whether its bounds are probabilities of discrete data, also reported in bits per dimension."""
        return False

    def check_training(self, iters: int, continuous: bool) -> None:
        """Refuse, before anything is written, a training run this model cannot do (VaelabError)."""
        if continuous and self.likelihood == "logistic":
            raise VaelabError(f"the data are continuous (vectors); the discretized logistic models 8-bit levels in "
                              f"[0, 1]: use {arg('likelihood', 'gaussian')}")
        if continuous and self.likelihood == "bernoulli":
            raise VaelabError(f"the data are continuous (2D points); a Bernoulli decoder cannot model them: use "
                              f"{arg('likelihood', 'gaussian')} for VAEs or {arg('loss', 'mse')} for autoencoders")

    def evaluate_extra(self, data) -> dict:
        """Model-specific test metrics (accuracy, PSNR, ...) on a DeviceData; none by default."""
        return {}

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """Per-example anomaly score, higher = more anomalous: one pass of its first test term (the NELBO
        of the VAE family, one Monte Carlo sample); REPORT.anomaly_score names it."""
        return self.terms(x, reduce=False)[0]

    # -- the user-facing verbs ----------------------------------------------------------------
    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _labels(self, y, n: int, what: str = "y") -> torch.Tensor | None:
        """y checked against the contract: class indices of length n for conditional models."""
        if y is None:
            if self.conditional:
                raise VaelabError(f"{type(self).__name__} is conditional: pass the labels {what} (class indices, "
                                  f"0..{self.n_classes - 1}, one per example)")
            return None
        if not self.conditional:
            raise VaelabError(f"{type(self).__name__} is not conditional (its networks take no label): leave {what} out")
        y = torch.as_tensor(y, device=self._device())
        if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
            raise VaelabError(f"{what} must hold class indices (integers), got dtype {y.dtype}")
        y = y.long().reshape(-1)
        if len(y) == 1 and n > 1:
            y = y.expand(n)
        if len(y) != n:
            raise VaelabError(f"{what} has {len(y)} labels for {n} examples; give one label per example (or one for all)")
        if self.n_classes and (y.min() < 0 or y.max() >= self.n_classes):
            raise VaelabError(f"{what} must be class indices 0..{self.n_classes - 1}, got values from "
                              f"{int(y.min())} to {int(y.max())}")
        return y

    def _inputs(self, x) -> torch.Tensor:
        x = torch.as_tensor(x, device=self._device())
        if not x.is_floating_point():
            x = x.float()
        x = x.reshape(len(x), -1) if x.dim() > 2 else x
        if x.dim() != 2 or x.shape[1] != self.x_dim:
            raise VaelabError(f"x must have shape (batch, {self.x_dim}) (or images of {self.x_dim} pixels), got "
                              f"{tuple(x.shape)}")
        bad = ~torch.isfinite(x).all(1)
        if bad.any():   # a NaN would pass the range check below and come back as a NaN bound or code
            raise VaelabError(f"x holds NaN or infinite values ({int(bad.sum())} example(s), the first at row "
                              f"{int(bad.nonzero()[0])}); drop or repair them first")
        if self.likelihood in ("bernoulli", "logistic") and x.numel() and (x.min() < 0 or x.max() > 1):   # 0-255
            what = "Bernoulli" if self.likelihood == "bernoulli" else "discretized logistic"
            raise VaelabError(f"x must hold pixel values in [0, 1] for this {what} model, got values from "
                              f"{x.min().item():g} to {x.max().item():g}; scale images first (e.g. x / 255)")
        return x

    # The verbs are for using a model: no autograd graph is kept (the maths above keeps gradients).
    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The code of x: the posterior mean E[z | x (, y)] (an autoencoder's E(x)); shape (batch, z_dim)."""
        x = self._inputs(x)
        return self.posterior_mean(x, self._labels(y, len(x)))

    @torch.no_grad()
    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """E[x | z (, y)]: pixel probabilities (Bernoulli) or means; shape (batch, x_dim)."""
        z = torch.as_tensor(z, device=self._device(), dtype=next(self.parameters()).dtype)
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise VaelabError(f"z must have shape (batch, {self.z_dim}), got {tuple(z.shape)}")
        return self.mean_x_given_z(z, self._labels(y, len(z)))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """decode(encode(x)): the reconstruction at the code of x."""
        x = self._inputs(x)
        y = self._labels(y, len(x))
        return self.mean_x_given_z(self.posterior_mean(x, y), y)

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | int | None = None, binary: bool = False) -> torch.Tensor:
        """n draws x ~ p(x) (conditional models: p(x | y), classes drawn uniformly when y is None).

        Returns the decoder means E[x | z] of z ~ p(z) (what figures show), or with binary=True
        Bernoulli draws from them (Bernoulli models only). Shape (n, x_dim)."""
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise VaelabError(f"n must be a positive integer (how many samples), got {n!r}")
        if binary and self.likelihood != "bernoulli":
            raise VaelabError(f"binary=True draws Bernoulli pixels; this model's p(x|z) is {self.likelihood}: leave binary "
                              f"out")
        if self.conditional and y is None:
            y = torch.randint(self.n_classes, (n,), device=self._device())
        y = self._labels(y, n)
        # z, the decoder's output and its means: refused before allocating what the machine cannot hold (a
        # minimal model of your own may leave x_dim out of the contract: then z alone is counted)
        check_memory(4.0 * n * (self.z_dim + 2 * getattr(self, "x_dim", 0)), f"n = {n:,} samples",
                     "draw them in batches (e.g. 10,000 at a time)", self._device())
        mean = self.mean_x_given_z(self.sample_z(n), y)
        return torch.bernoulli(mean) if binary else mean

    @torch.no_grad()
    def sample_by_class(self, per_class: int) -> torch.Tensor:
        """per_class samples of each class, class by class (one grid row per class); conditional models."""
        if not self.conditional:
            raise VaelabError(f"{type(self).__name__} is not conditional: use sample(n)")
        y = torch.arange(self.n_classes, device=self._device()).repeat_interleave(per_class)
        return self.mean_x_given_z(self.sample_z(len(y)), y)

    def elbo(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The evidence lower bound on log p(x) per example: models with a likelihood (VariationalModel)."""
        raise VaelabError(f"{type(self).__name__} has no likelihood, so no ELBO; terms(x) gives its test terms "
                          f"{', '.join(getattr(self, 'TERMS', ()))}")

    @torch.no_grad()
    def iwae(self, x: torch.Tensor, k: int = 100, y: torch.Tensor | None = None) -> torch.Tensor:
        """The importance-weighted bound log (1/k) sum_i p(x, z_i) / q(z_i | x) <= log p(x) per example (nats).

        k = 1 is the ELBO; the bound tightens as k grows (Burda et al. 2016). An evaluation, computed
        without gradients in passes of about 1,000 decoder rows (100,000 on a GPU), so any k fits in memory."""
        k = iwae_k_count(k)
        if not self.has_iwae:
            self.log_importance_weights(x, k)   # raises the one-line error
        x = self._inputs(x)
        return iwae_per_example(self, x, k, self._labels(y, len(x)))

    @torch.no_grad()
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The most probable class under q(y | x) for every example (models with a classifier)."""
        if not self.classifies:
            raise VaelabError(f"{type(self).__name__} has no classifier q(y|x); the semi-supervised models do")
        return self.classifier_logits(self._inputs(x)).argmax(-1)

    def classifier_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The logits of q(y | x) (models with classifies = True)."""
        raise NotImplementedError
