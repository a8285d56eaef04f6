"""The training loop: one model, one seed, Adam on model.loss, with exact resume.

    trainer = Trainer(model, data, cfg, seed_dir, seed)   # optimizer, batches, history
    trainer.restore(checkpoint)                           # optional: continue exactly
    history = trainer.run()

Each iteration: a batch, the loss, the backward pass, a finiteness check, the optimizer step
(with --cuda-graph, the loss, backward pass and step replayed as one CUDA graph: graphs.py);
every log_every iterations a point of the curves (in the history, and as TensorBoard event files:
tracking.py), every eval_every a validation (and early stopping), every checkpoint_every a
checkpoint (atomically written, with everything a resume needs to end exactly where an
uninterrupted run would, on the same device and thread count).

Under torchrun (see distributed.py) every rank runs the loop: each trains on its shard of every
global batch through DDP, the logged terms and validation metrics are reduced over the ranks
(identical on all of them), and rank 0 alone writes checkpoints.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from pathlib import Path

import torch

from . import distributed
from ._version import __version__
from .batches import BATCH_STREAM, LABELLED_STREAM, Batches, DeviceData
from .config import TrainConfig
from .data import labelled_subset
from .errors import VaelabError, first_line, arg
from .evaluate import evaluate_terms
from .pace import ThreadPacer, chooses_threads
from .graphs import GraphedStep, capturable_adam, lr_to_device, set_lr
from .progress import progress_bar
from .storage import load_checkpoint, save_checkpoint
from .tracking import Curves, steps_per_second
from .schedules import lr_factor, parse_duration, parse_schedule, warmup_weight


def fit(model, data: DeviceData, cfg: TrainConfig, seed_dir: Path | None = None, seed: int = 0,
        resume: dict | None = None) -> dict:
    """Train `model` for cfg.iters iterations (or until early stopping); returns the training history.

    With `resume` (a checkpoint written by this loop), training continues from its iteration with
    its weights, optimizer state, RNG state, batch order and history."""
    trainer = Trainer(model, data, cfg, seed_dir, seed)
    if resume is not None:
        trainer.restore(resume)
    return trainer.run()


class Trainer:
    """The state of one seed's training: optimizer, batches, history, log window, early stopping."""

    def __init__(self, model, data: DeviceData, cfg: TrainConfig, seed_dir: Path | None, seed: int):
        self.model, self.data, self.cfg, self.seed_dir, self.seed = model, data, cfg, seed_dir, seed
        self.device = data.train_x.device
        self.main, shard = distributed.is_main(), (distributed.rank(), distributed.world())
        self.rank = shard[0]
        Opt = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        # The fused kernel does the whole Adam update in one pass over the parameters.
        if cfg.cuda_graph:   # the update inside the graph: its learning rate a device tensor
            self.opt = capturable_adam(Opt, model.parameters(), cfg.lr, self.device, eps=cfg.adam_eps)
        else:
            self.opt = Opt(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps,
                           **({"fused": True} if self.device.type in ("cpu", "cuda") else {}))
        self.steps_per_epoch = max(1, len(data.train_x) // cfg.batch_size)
        self.schedule = parse_schedule(cfg.lr_schedule)
        self.warmup_iters = round(cfg.warmup * self.steps_per_epoch)
        self.budget = parse_duration(cfg.time_budget) if cfg.time_budget else None
        dynamic = cfg.binarize == "dynamic"
        self.batches = Batches(data.train_x, data.train_y, cfg.batch_size, dynamic, data.sampler, seed + BATCH_STREAM, shard)
        self.labelled = None
        if model.labels_per_class:   # semi-supervised: a small labelled subset, every batch
            xl, yl = labelled_subset(data.train_x, data.train_y, model.labels_per_class, model.label_seed)
            self.labelled = Batches(xl, yl, min(cfg.batch_size, len(xl)), dynamic, None, seed + LABELLED_STREAM, shard,
                                    what=f"the labelled batch ({arg('labels_per_class')} x classes, at most {arg('batch_size')})")
        self.val_key = model.TERMS[0]   # nelbo for VAEs, loss for autoencoders
        self.hist = {"iteration": [], "val_iteration": [], f"val_{self.val_key}": []}
        self.window: dict = {}   # sums of the logged terms since the last log point
        self.start, self.seconds_before, self.last_ckpt = 1, 0.0, None
        self.curves = Curves(None)   # TensorBoard event files (tracking.py), opened by run()
        # Early stopping on the validation loss, checked at every validation (once per epoch with --epochs).
        self.stopping = {"best": math.inf, "best_iteration": 0, "bad": 0, "stopped": False}
        self.check_each_step = self.device.type == "cpu"   # a .item() per step is free on CPU, a sync on GPU
        self.grads_bad_at = torch.zeros((), dtype=torch.long, device=self.device)   # GPU: first bad iteration
        if cfg.cuda_graph and self.warmup_iters:   # a graph reads the warm-up weight from the device
            model.kl_weight = torch.zeros((), device=self.device)

    def restore(self, ckpt: dict) -> None:
        """Continue from a checkpoint: weights, optimizer, batch order, history, this rank's RNG and log window."""
        try:
            self.model.load_state_dict(ckpt["model"])
            self.opt.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:   # e.g. a tensor of another shape
            raise VaelabError(f"{self.seed_dir / 'checkpoint.pt'}: its weights do not fit this run's model "
                              f"({first_line(e, 120)}); the checkpoint is damaged or from another run: start a "
                              f"new run") from None
        if self.cfg.cuda_graph:
            lr_to_device(self.opt, self.device)
        state = ckpt["trainer"]
        self.batches.load_state_dict(state["batches"])
        if self.labelled is not None:
            self.labelled.load_state_dict(state["labelled_batches"])
        own = (state["other_ranks"][self.rank - 1] if self.rank
               else {"window": state["window"], "rng_cpu": ckpt["rng_cpu"], "rng_cuda": ckpt.get("rng_cuda")})
        self.hist, self.window = state["history"], {k: v.to(self.device) for k, v in own["window"].items()}
        self.seconds_before = state["train_seconds"]
        self.stopping = state.get("stopping", self.stopping)
        if self.stopping.get("reason") == "time budget" and (self.budget is None or self.seconds_before < self.budget):
            # resumed with a longer budget: train on from the checkpoint the old one wrote at its stop
            self.stopping = {k: v for k, v in self.stopping.items() if k not in ("reason", "budget_seconds")}
            self.stopping["stopped"] = False
        self.start = self.cfg.iters + 1 if self.stopping["stopped"] else ckpt["iteration"] + 1
        self.last_ckpt = (ckpt["iteration"], self.seed_dir / "checkpoint.pt")
        _set_rng_state(own)

    def run(self) -> dict:
        """The loop; returns the history (curves, seconds, and the early-stopping outcome)."""
        cfg = self.cfg
        step = distributed.data_parallel(self.model, self.device)   # model.loss, through DDP under torchrun
        if cfg.compile:   # traced and compiled at the first step (and again if the batch shape changes)
            step = torch.compile(step)
        # bf16: the networks' matrix products in bfloat16, their outputs and the maths in float32
        # (autocast's cache of cast weights would be stale inside a replayed graph)
        self.precision = ((lambda: torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=not cfg.cuda_graph))
                          if cfg.precision == "bf16" else contextlib.nullcontext)
        self.graphed = GraphedStep(lambda *batch: self._forward_backward_step(step, *batch)) if cfg.cuda_graph else None
        bar = progress_bar(total=cfg.iters, initial=self.start - 1, desc=f"train {cfg.model} seed {self.seed}",
                           disable=not (cfg.progress and self.main), unit="it")
        self.t0 = time.perf_counter()
        self.model.train()
        pacer = ThreadPacer() if chooses_threads(cfg.threads, self.device, distributed.world()) else None
        self.curves = Curves(self.seed_dir if cfg.tensorboard and self.main else None, self.start)
        try:
            for it in range(self.start, cfg.iters + 1):
                t = time.perf_counter()
                self._step(step, it)
                if pacer is not None:   # the step alone is timed: validation and checkpoints are not
                    self._pace(pacer, time.perf_counter() - t, it, bar)
                if it % cfg.log_every == 0 or it == cfg.iters:
                    self._log(it, bar)
                    self._check_budget(it)
                if len(self.data.val_x) and (it % cfg.eval_every == 0 or it == cfg.iters or self.stopping["stopped"]):
                    self._validate(it)
                if self.seed_dir is not None and (it % cfg.checkpoint_every == 0 or it == cfg.iters
                                                  or self.stopping["stopped"]):
                    self._checkpoint(it)
                if self.stopping["stopped"]:
                    break
        finally:   # also when training fails: the model goes back to its user as it came
            bar.close()
            self.curves.close()
            if torch.is_tensor(self.model.kl_weight):   # a plain number again once the graph is done with it
                self.model.kl_weight = float(self.model.kl_weight)
        return self._finish()

    def _pace(self, pacer: ThreadPacer, seconds: float, it: int, bar) -> None:
        """Hand a step's time to the thread pacer; its choices go into the history (and, with progress, a line)."""
        made = len(pacer.choices)
        pacer.step_done(seconds)
        if len(pacer.choices) > made:
            _, count, rates = pacer.choices[-1]
            self.hist.setdefault("threads", []).append(
                {"iteration": it, "threads": count, "steps_per_second": {str(c): round(r, 1) for c, r in rates.items()}})
            if self.cfg.progress and self.main:
                bar.write(f"threads: {count} (steps per second: "
                          f"{', '.join(f'{r:.0f} on {c}' for c, r in sorted(rates.items()))}; --threads N fixes it)")

    def _step(self, step, it: int) -> None:
        """One optimizer step on the next batch, refusing non-finite losses and gradients."""
        x, y = next(self.batches)
        labelled = next(self.labelled) if self.labelled is not None else (None, None)
        if self.warmup_iters:   # a pure function of the iteration: a resumed run follows the same ramp
            weight = warmup_weight(it, self.warmup_iters)
            if torch.is_tensor(self.model.kl_weight):
                self.model.kl_weight.fill_(weight)
            else:
                self.model.kl_weight = weight
        if self.schedule[0] != "constant":
            set_lr(self.opt, self.cfg.lr * lr_factor(self.schedule, (it - 1) / self.steps_per_epoch))
        if self.graphed is not None:   # loss, backward and update in one replay; the check after it, as on a GPU
            loss, terms = self.graphed(x, y, *labelled)
            self._check_grads(it)
        else:
            def check(loss, terms):   # before the update, so that a bad step never reaches the weights
                if self.check_each_step and not math.isfinite(loss.item()):
                    _diverged(it, terms, self.last_ckpt)
                self._check_grads(it)
            loss, terms = self._forward_backward_step(step, x, y, *labelled, before_update=check)
        for k, v in {"loss": loss, **terms}.items():
            self.window[k] = self.window.get(k, 0.0) + v

    def _forward_backward_step(self, step, x, y, xl, yl, before_update=None):
        """The loss, backward pass and optimizer step of one batch (what --cuda-graph captures), returning
        the detached loss and terms; `before_update(loss, terms)`, if given, runs between backward and step."""
        with self.precision():   # the forward pass only: backward runs in the forward's dtypes
            loss, terms = step(x, y) if xl is None else step(x, y, labelled=(xl, yl))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()   # under DDP, also the gradient average: every rank gets here before any stops
        loss, terms = loss.detach(), {k: v.detach() for k, v in terms.items()}
        if before_update is not None:
            before_update(loss, terms)
        self.opt.step()
        return loss, terms

    def _check_grads(self, it: int) -> None:
        """Non-finite gradients: refused at once on a CPU (before the step); on a GPU the first bad
        iteration is remembered without a sync and refused at the next log point or checkpoint."""
        grads = [q.grad for q in self.model.parameters() if q.grad is not None]
        if not grads:
            return
        finite = torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()
        if self.check_each_step:
            if not finite.item():   # before the step: the weights and the last checkpoint stay good
                _diverged_grads(it, self.model, self.last_ckpt)
        else:
            self.grads_bad_at = torch.where((self.grads_bad_at == 0) & ~finite, it, self.grads_bad_at)

    def _log(self, it: int, bar) -> None:
        """A point of the training curves: the mean of each term over the window, over all ranks."""
        cfg = self.cfg
        if not self.check_each_step and self.grads_bad_at.item():
            _diverged_grads(self.grads_bad_at.item(), self.model, self.last_ckpt)
        n = cfg.log_every if it % cfg.log_every == 0 else it % cfg.log_every
        means = {k: (v / n).item() for k, v in distributed.mean_across(self.window).items()}
        self.window = {}
        if not math.isfinite(means["loss"]):
            _diverged(it, means, self.last_ckpt)
        self.hist["iteration"].append(it)
        self.hist.setdefault("seconds", []).append(self.seconds_before + time.perf_counter() - self.t0)
        for k, v in means.items():
            self.hist.setdefault(k, []).append(v)
        self.curves.train(it, means, float(self.opt.param_groups[0]["lr"]),   # (a device tensor with --cuda-graph)
                          warmup_weight(it, self.warmup_iters) if self.warmup_iters else None, steps_per_second(self.hist))
        post = {k.upper() if k != "rec" else "Rec": f"{means[k]:.2f}" for k in ("nelbo", "kl", "rec") if k in means}
        if self.budget is not None:   # the bar's ETA counts iterations; a budget may end the run sooner
            left = max(0.0, self.budget - self.hist["seconds"][-1])
            post["budget left"] = f"{int(left // 3600)}:{int(left % 3600 // 60):02d}:{int(left % 60):02d}"
        bar.set_postfix(post, refresh=False)
        bar.update(it - bar.n)

    def _check_budget(self, it: int) -> None:
        """Stop cleanly once the time budget is spent (checked at log points; every rank follows rank 0)."""
        if self.budget is None or self.stopping["stopped"]:
            return
        spent = self.seconds_before + time.perf_counter() - self.t0
        if distributed.all_gather(spent >= self.budget)[0]:
            self.stopping.update(stopped=True, reason="time budget", budget_seconds=self.budget)

    def _validate(self, it: int) -> None:
        """Validation loss (under a forked RNG: it never shifts the training noise) and early stopping."""
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            val = evaluate_terms(self.model, self.data.val_x, repeats=1, y=self.data.val_y, across_ranks=True)
        self.hist["val_iteration"].append(it)
        for k in self.model.TERMS:
            self.hist.setdefault(f"val_{k}", []).append(val[k])
        self.curves.validation(it, {k: val[k] for k in self.model.TERMS})
        self.model.train()
        if self.seed_dir is None:
            return
        # The best validation epoch's weights are kept in best.pt for every run (a long run's last epoch
        # need not be its best); early stopping returns to them. val is the same on every rank.
        if val[self.val_key] < self.stopping["best"]:
            self.stopping.update(best=val[self.val_key], best_iteration=it, bad=0)
            if self.main:   # weights only: nothing resumes from best.pt, and Adam's moments would triple it
                save_checkpoint(self.seed_dir / "best.pt", checkpoint_state(
                    self.model, None, self.cfg, it, self.seed, self.data, None))
        elif self.cfg.patience:   # all ranks stop together
            self.stopping["bad"] += 1
            self.stopping["stopped"] = self.stopping["bad"] >= self.cfg.patience

    def _checkpoint(self, it: int) -> None:
        """seed-S/checkpoint.pt with everything a resume needs (never over good weights with bad ones)."""
        if not self.check_each_step:
            if self.grads_bad_at.item():
                _diverged_grads(self.grads_bad_at.item(), self.model, self.last_ckpt)
            if self.window and not math.isfinite(self.window["loss"].item()):
                _diverged(it, dict(self.window), self.last_ckpt)
        # The other ranks' own RNG states and log-window sums, so that a resumed run is exact on every rank.
        others = distributed.all_gather(_rank_state(self.window))[1:]
        if self.main:
            trainer = {"batches": self.batches.state_dict(),
                       "labelled_batches": self.labelled.state_dict() if self.labelled is not None else None,
                       "history": self.hist, "window": {k: v.cpu() for k, v in self.window.items()},
                       "train_seconds": self.seconds_before + time.perf_counter() - self.t0,
                       "stopping": self.stopping, "other_ranks": others}
            save_checkpoint(self.seed_dir / "checkpoint.pt", self._state(it, trainer))
        self.last_ckpt = (it, self.seed_dir / "checkpoint.pt")

    def _finish(self) -> dict:
        """Seconds and speed into the history; under early stopping, the best epoch's weights back in the model."""
        seconds = self.seconds_before + time.perf_counter() - self.t0
        hist = self.hist
        done = hist["iteration"][-1] if hist["iteration"] else self.cfg.iters
        hist["train_seconds"] = seconds
        hist["iters_per_second"] = done / seconds
        _warn_if_worse(hist, self.cfg, self.main)
        if self.stopping.get("reason") == "time budget":
            hist.update(stopped_by="time budget", iterations_run=done)
        if self.cfg.patience and self.seed_dir is not None and self.stopping["best_iteration"]:
            if self.main:
                self.model.load_state_dict(load_checkpoint(self.seed_dir / "best.pt", self.device)["model"])
            distributed.broadcast_module(self.model)
            hist.update(best_iteration=self.stopping["best_iteration"], best_val=self.stopping["best"],
                        stopped_early=self.stopping["stopped"], iterations_run=done)
        elif self.stopping["best_iteration"]:   # the results come from the last weights; best.pt holds these
            hist.update(best_iteration=self.stopping["best_iteration"], best_val=self.stopping["best"])
        return hist

    def _state(self, it: int, trainer: dict | None) -> dict:
        return checkpoint_state(self.model, self.opt, self.cfg, it, self.seed, self.data, trainer)


def checkpoint_state(model, opt, cfg: TrainConfig, it: int, seed: int, data: DeviceData, trainer: dict | None) -> dict:
    """What a checkpoint holds: weights, optimizer (None when `opt` is: best.pt), iteration, configuration,
    RNG states and trainer state."""
    return {
        "x_dim": data.x_dim,
        "image_shape": list(data.image_shape) if data.image_shape else None,
        "channels": data.channels,
        "model": model.state_dict(),
        "optimizer": opt.state_dict() if opt is not None else None,
        "iteration": it,
        "seed": seed,
        "config": dataclasses.asdict(cfg),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "trainer": trainer,   # batch order and position, history, log-window sums, seconds so far
        "world_size": distributed.world(),   # processes that trained it (a resume needs as many)
        "vaelab_version": __version__,
    }


def _warn_if_worse(hist: dict, cfg: TrainConfig, main: bool) -> None:
    """Say so when training ended far worse than it started (an exploding loss at too high a learning rate)."""
    losses = hist.get("loss", [])
    if main and len(losses) >= 2 and losses[-1] > abs(losses[0]) * 10 + 1:
        print(f"vaelab: warning: the training loss ended at {losses[-1]:.4g}, far above where it started "
              f"({losses[0]:.4g}): training diverged; try a lower --lr than {cfg.lr}", file=sys.stderr)


def _set_rng_state(ckpt: dict) -> None:
    torch.set_rng_state(ckpt["rng_cpu"].cpu())
    if ckpt.get("rng_cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng_cuda"])


def _rank_state(window: dict) -> dict:
    """What differs between ranks and a resumed rank needs: its RNG states and its log-window sums."""
    return {"rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "window": {k: v.cpu() for k, v in window.items()}}


def _where(last_ckpt) -> str:
    return (f"the last good checkpoint is kept at {last_ckpt[1]} (iteration {last_ckpt[0]})" if last_ckpt
            else "no checkpoint had been written yet")


def _diverged(it: int, terms: dict, last_ckpt) -> None:
    bad = [k for k, v in terms.items() if not math.isfinite(float(v.detach() if torch.is_tensor(v) else v))]
    raise VaelabError(f"training went non-finite at iteration {it} (term(s): {', '.join(bad) or 'loss'}); "
                      f"{_where(last_ckpt)}; try a lower {arg('lr')} (e.g. a tenth) or check the data for NaN/inf")


def _diverged_grads(it: int, model, last_ckpt) -> None:
    bad = [n for n, q in model.named_parameters() if q.grad is not None and not torch.isfinite(q.grad).all()]
    shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    raise VaelabError(f"gradients went non-finite at iteration {it} (loss finite; gradient of {shown or 'some parameters'}); "
                      f"{_where(last_ckpt)}; try a lower {arg('lr')} (e.g. a tenth), or clamp the variances / logits in the model")


@contextlib.contextmanager
def flush_denormal():
    """Flush subnormal floats to zero while training: they slow CPU backward passes many-fold.

    The setting is process-wide, so it is switched back off afterwards."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
