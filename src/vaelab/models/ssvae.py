"""Semi-supervised VAE, "M2" (Kingma, Rezende, Mohamed & Welling 2014).

    p(z) = N(0, I),  p(y) = uniform over K classes,  p(x | z, y) = Bernoulli(decoder(z, y))
    q(y | x) = Categorical(classifier(x)),  q(z | x, y) = N(encoder(x, y))

Unlabelled negative ELBO, with the exact expectation over the K labels (one z sample each):

    NELBO(x) = KL(q(y|x) || p(y)) + sum_y q(y|x) [ KL(q(z|x,y) || p(z)) - log p(x | z_y, y) ]

Objective: gw * NELBO(unlabelled batch) + cw * cross-entropy of q(y|x) on the labelled batch
[+ lw * NELBO(x, y) of the labelled batch, KL(q(z|x,y) || p(z)) - log p(x | z, y) - log p(y)].
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..densities import kl_cat, kl_normal, log_bernoulli_with_logits, sample_gaussian
from ..nets import ACTIVATIONS, Classifier, Decoder, Encoder, check_activation
from .options import SEED, option
from .policy import TrainingDefaults
from .variational import VariationalModel
from .vae import parse_hidden


@dataclass(frozen=True)
class SSVAEOptions:
    """The semi-supervised VAE's options (`vaelab train ssvae --help`)."""
    z_dim: int = option(64, "latent dimension")
    hidden: str = option("300,300", "hidden layer sizes of encoder, decoder and classifier, comma separated")
    gw: float = option(1.0, "weight of the unlabelled NELBO (0: supervised-only baseline on the labelled images)")
    cw: float = option(100.0, "weight of the labelled cross-entropy")
    lw: float = option(0.0, "weight of the labelled NELBO, the bound on -log p(x, y), averaged over the labelled batch "
                            "(Kingma et al. sum it over the data set with each labelled image weighed like an "
                            "unlabelled one, i.e. lw = labelled / unlabelled images, ~0.002 for 100 labels; 0: left "
                            "out, as in the course reference)")
    labels_per_class: int = option(10, "labelled training images per class (10 -> 100 MNIST labels)")
    label_seed: int = option(0, "seed that picks the labelled images", rule=SEED)
    activation: str | None = option(None, f"hidden activation of encoder, decoder and classifier: "
                                          f"{', '.join(ACTIVATIONS)} (softplus: Kingma et al.'s); default: elu in "
                                          f"encoder and decoder, relu in the classifier")


class SSVAE(VariationalModel):
    """Semi-supervised VAE (M2): classifier q(y|x), exact sum over labels."""

    TERMS = ("nelbo", "kl_y", "kl_z", "rec")
    TRAINING = TrainingDefaults(iters=30_000)
    conditional = True   # q(z | x, y) and p(x | z, y): pictures pass labels to posterior_mean / mean_x_given_z
    classifies = True
    has_iwae = False     # the bound sums over labels exactly; no importance-weighted form is written

    def __init__(self, x_dim: int = 784, z_dim: int = 64, hidden="300,300", n_classes: int = 10, gw: float = 1.0,
                 cw: float = 100.0, labels_per_class: int = 10, label_seed: int = 0, lw: float = 0.0,
                 activation: str | None = None):
        super().__init__()
        if gw < 0 or cw < 0 or lw < 0 or gw + cw + lw == 0:
            raise ValueError(f"gw = {gw}, cw = {cw}, lw = {lw}: weights must be >= 0 and not all 0")
        if labels_per_class <= 0:
            raise ValueError(f"labels_per_class = {labels_per_class}: needs at least one labelled image per class")
        if activation is not None:
            check_activation(activation)
        hidden = parse_hidden(hidden)
        self.x_dim, self.z_dim, self.n_classes = x_dim, z_dim, n_classes
        self.gw, self.cw, self.lw, self.labels_per_class, self.label_seed = gw, cw, lw, labels_per_class, label_seed
        # gw = lw = 0: the loss leaves encoder and decoder out; cw = 0 without gw: the classifier (DDP must know)
        self.trains_every_parameter = gw > 0 or (lw > 0 and cw > 0)
        self.enc = Encoder(x_dim, z_dim, hidden, y_dim=n_classes, activation=activation or "elu")
        self.dec = Decoder(z_dim, x_dim, hidden, y_dim=n_classes, activation=activation or "elu")
        self.cls = Classifier(x_dim, n_classes, hidden, activation=activation or "relu")
        self.register_buffer("z_prior_m", torch.zeros(z_dim))
        self.register_buffer("z_prior_v", torch.ones(z_dim))

    def log_px_given_zy(self, x: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return log_bernoulli_with_logits(x, self.dec(z, y))

    def classifier_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The logits of q(y | x) that classify a test image."""
        return self.cls(x)

    def negative_elbo_bound(self, x: torch.Tensor, y: torch.Tensor | None = None, reduce: bool = True):
        """(NELBO, KL_y, KL_z, Rec) of the unlabelled bound (y is not used): batch means, or
        per-example with reduce=False."""
        b, k = len(x), self.n_classes
        log_qy = F.log_softmax(self.cls(x), dim=-1)                  # (b, k)
        qy = log_qy.exp()
        kl_y = kl_cat(qy, log_qy, torch.full_like(log_qy, -math.log(k)))
        y = torch.eye(k, device=x.device).repeat_interleave(b, dim=0)  # every x with every label: (k b, k)
        xk = x.repeat(k, 1)
        m, v = self.enc.forward_every_label(x, k)
        z = sample_gaussian(m, v)
        kl_z = kl_normal(m, v, self.z_prior_m, self.z_prior_v).view(k, b)
        rec = -self.log_px_given_zy(xk, z, y).view(k, b)
        kl_z = (qy.t() * kl_z).sum(0)
        rec = (qy.t() * rec).sum(0)
        nelbo = kl_y + kl_z + rec
        if reduce:
            return nelbo.mean(), kl_y.mean(), kl_z.mean(), rec.mean()
        return nelbo, kl_y, kl_z, rec

    def classification_cross_entropy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.cls(x), y)

    def labelled_negative_elbo(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example bound on -log p(x, y): KL(q(z|x,y) || p(z)) - log p(x | z, y) - log p(y), one z sample."""
        y = F.one_hot(y, self.n_classes).to(x.dtype)
        m, v = self.enc(x, y)
        z = sample_gaussian(m, v)
        kl_z = kl_normal(m, v, self.z_prior_m, self.z_prior_v)
        return kl_z - self.log_px_given_zy(x, z, y) + math.log(self.n_classes)

    def labelled_loss(self, xl: torch.Tensor, yl: torch.Tensor):
        """cw * CE(labelled) [+ lw * labelled NELBO], and its terms."""
        ce = self.classification_cross_entropy(xl, yl)
        if not self.lw:
            return self.cw * ce, {"ce": ce}
        nelbo_l = self.labelled_negative_elbo(xl, yl).mean()
        return self.cw * ce + self.lw * nelbo_l, {"ce": ce, "nelbo_labelled": nelbo_l}

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None, labelled=None):
        """gw * NELBO(x) + cw * CE(labelled) [+ lw * NELBO(labelled)]; the labels y of the unlabelled batch
        are never used."""
        loss, terms = self.labelled_loss(*labelled)
        if self.gw == 0:   # supervised-only baseline: no bound on the unlabelled images
            return loss, terms
        nelbo, kl_y, kl_z, rec = self.negative_elbo_bound(x)
        terms = {"nelbo": nelbo, "kl": kl_y + kl_z, "kl_y": kl_y, "kl_z": kl_z, "rec": rec, **terms}
        return self.gw * nelbo + loss, terms

    def accuracy(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 5000) -> float:
        """Fraction of x that q(y|x) classifies as y."""
        correct = sum((self.classifier_logits(xb).argmax(-1) == yb).sum().item()
                      for xb, yb in zip(x.split(batch_size), y.split(batch_size)))
        return correct / len(x)

    def evaluate_extra(self, data) -> dict:
        """Test accuracy of q(y|x), on the evaluation inputs and on the grey images."""
        return {"accuracy": self.accuracy(data.test_x, data.test_y),
                "accuracy_grey": self.accuracy(data.test_x_grey, data.test_y)}

    def posterior_mean(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.enc(x, F.one_hot(y, self.n_classes).float())[0]

    def mean_x_given_z(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.dec(z, F.one_hot(y, self.n_classes).float()))

    def sample_z(self, n: int) -> torch.Tensor:
        return sample_gaussian(self.z_prior_m.expand(n, -1), self.z_prior_v.expand(n, -1))
