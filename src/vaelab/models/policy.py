"""What a model asks of the layers above it, apart from its maths: training defaults and report policy.

Each model class declares one of each (Model's are the VAE's), beside its maths and read only by the
training layer (TRAINING: config, batches, the CLI's help) and the run folder (REPORT: curves, figures,
anomaly scores). They are policy, not capabilities: nothing in a model's own code reads them.

    class AE(Model):
        TRAINING = TrainingDefaults(iters=10_000, optimizer="adamw", binarize="none")
        REPORT = ReportPolicy(curves=("loss", "rec", "penalty"), figures=("reconstruction",),
                              anomaly_score="reconstruction MSE")

A subclass that changes one field copies its parent's with dataclasses.replace.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class TrainingDefaults:
    """A model's training defaults, what `auto` and None resolve to in a TrainConfig.

    iters: training iterations (TrainConfig.iters None, no epochs).
    optimizer: what optimizer `auto` means: adam or adamw.
    binarize: how image training data are binarized by default (binarize `auto`): dynamic, static or
        none; or a function of the model's options giving one (e.g. none for a likelihood of grey levels).
    """

    iters: int = 20_000
    optimizer: str = "adam"
    binarize: str | Callable[[dict], str] = "dynamic"

    def binarize_for(self, options: dict) -> str:
        """The default binarization of image training data for a model built with these options."""
        return self.binarize(options) if callable(self.binarize) else self.binarize


@dataclass(frozen=True)
class ReportPolicy:
    """What a run folder shows of a model beyond its test metrics.

    curves: the logged training terms drawn per iteration in curves.png (and `vaelab plot curves`).
    figures: extra run figures: reconstruction, denoising, codes.
    anomaly_score: what the model's anomaly_score measures, in words (`vaelab score` reports it).
    """

    curves: tuple[str, ...] = ("nelbo", "kl", "rec")
    figures: tuple[str, ...] = ()
    anomaly_score: str = "NELBO"
