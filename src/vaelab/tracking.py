"""The training curves as TensorBoard event files, so that `tensorboard --logdir runs/` shows every run live.

    curves = Curves(seed_dir, first_step)   # nothing written without the tensorboard package (or seed_dir None)
    curves.train(it, {"loss": ..., "nelbo": ...}, lr=..., kl_weight=..., steps_per_second=...)
    curves.validation(it, {"nelbo": ...})
    curves.close()

The files are seed-S/events.out.tfevents.* (TensorBoard names them; one run per seed in TensorBoard's list,
RUN/seed-S). The points are history.json's, at the same iterations (global_step = iteration): train/TERM
for each logged training term, val/TERM for each validation term, and beside them train/lr, train/kl_weight
(during a KL warm-up only) and train/steps_per_second. Each point is flushed at once, so a running seed's
curves grow in TensorBoard as it trains.

Optional: without the `tensorboard` package (pip install 'vaelab[tensorboard]'), or with
TrainConfig.tensorboard off (--no-tensorboard), nothing is written and nothing is said. A resumed seed
(or a seed started again because it was killed before its first checkpoint) opens its writer with
purge_step = its first iteration (the checkpoint's + 1): the points an interrupted process wrote after its
last checkpoint are hidden by TensorBoard, and the resumed process writes them again.
"""
from __future__ import annotations

import functools
from pathlib import Path

EVENT_FILES = "events.out.tfevents.*"   # TensorBoard's own file names (fnmatch pattern)


@functools.cache
def _summary_writer():
    """torch's SummaryWriter class, or None when the tensorboard package it needs is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:   # tensorboard missing (or too old for this torch): the curves stay in history.json only
        return None
    return SummaryWriter


def available() -> bool:
    """Whether event files can be written here (the tensorboard package is importable)."""
    return _summary_writer() is not None


class Curves:
    """One seed's event files; every method does nothing when `seed_dir` is None or tensorboard is missing.

    The writer opens at the first point (a resumed seed with nothing left to train writes no file)."""

    def __init__(self, seed_dir: Path | None, first_step: int = 1):
        self.seed_dir = Path(seed_dir) if seed_dir is not None and available() else None
        self.first_step, self.writer = first_step, None

    def _open(self):
        if self.writer is None and self.seed_dir is not None:
            # an earlier process's points from first_step on (past its last checkpoint): hidden
            purge = self.first_step if any(self.seed_dir.glob(EVENT_FILES)) else None
            self.writer = _summary_writer()(log_dir=str(self.seed_dir), purge_step=purge)
        return self.writer

    def train(self, it: int, means: dict, lr: float, kl_weight: float | None, steps_per_second: float) -> None:
        """A point of the training curves (the window's mean of each term), flushed."""
        writer = self._open()
        if writer is None:
            return
        scalars = {**{f"train/{k}": v for k, v in means.items()}, "train/lr": lr,
                   "train/steps_per_second": steps_per_second}
        if kl_weight is not None:
            scalars["train/kl_weight"] = kl_weight
        for tag, value in scalars.items():
            writer.add_scalar(tag, float(value), it)
        writer.flush()

    def validation(self, it: int, values: dict) -> None:
        """A validation point (val/TERM), flushed."""
        writer = self._open()
        if writer is None:
            return
        for k, v in values.items():
            writer.add_scalar(f"val/{k}", float(v), it)
        writer.flush()

    def close(self) -> None:
        """Flush and close the files (at the end of the seed, also when training fails)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def steps_per_second(hist: dict) -> float:
    """Training speed over the last log window, from history.json's iterations and seconds (validation and
    checkpoints included)."""
    its, secs = hist["iteration"], hist["seconds"]
    before = (its[-2], secs[-2]) if len(its) > 1 and len(secs) > 1 else (0, 0.0)
    return (its[-1] - before[0]) / max(secs[-1] - before[1], 1e-9)
