"""Test-set evaluation: NELBO with its KL and Rec terms, and importance-weighted bounds.

    NELBO   = E_x[ Rec + KL ], averaged over `repeats` independent Monte Carlo passes over the
              whole test set; `nelbo_mc_se` is the standard error of that average.
    IWAE-k  = -E_x[ log (1/k) sum_i p(x, z_i) / q(z_i | x) ],  z_i ~ q(z|x)  (Burda et al. 2016),
              a bound on -log p(x) that tightens as k grows. Stored as niwae_<k> (nats, lower is better).

Both come from the model's `terms`, its per-example test terms named by model.TERMS: the NELBO and
its parts for the VAE family (negative_elbo_bound); for autoencoders, which have no ELBO, their loss, rec,
penalty and mse, evaluated in one pass since they are deterministic.
`anomaly_scores` gives a per-example anomaly score: reconstruction error for autoencoders,
the NELBO (averaged over Monte Carlo passes) for VAEs.

across_ranks=True (training under torchrun): each rank evaluates its contiguous shard of x and
the sums are added over the ranks, so every rank gets the metric of the whole of x (Monte Carlo
noise from each rank's own stream). One process: exactly the same as without it.
"""
from __future__ import annotations

import ctypes
import math
import os
import sys
import warnings

import torch

from . import distributed
from .errors import VaelabError, at_most, first_line, positive_int
from .models.base import (IWAE_K_LIMIT, IWAE_ROWS_PER_PASS, MAX_IWAE_K, checked_model, iwae_k_count,
                          iwae_per_example, iwae_rows_per_pass)
from .progress import progress_bar

# glibc's malloc thresholds while evaluating on a CPU (bytes). By default glibc hands a freed block of a few
# megabytes back to the kernel, so the next pass's (rows, 784) tensors fault every page in again: in IWAE
# evaluation that is hundreds of thousands of page faults per 200 passes and a third of the eager time.
# Blocks up to _MMAP_THRESHOLD come from the heap instead, and up to _TRIM_THRESHOLD of free heap is kept.
_MMAP_THRESHOLD = 32 << 20    # glibc's own upper limit for its adaptive threshold
_TRIM_THRESHOLD = 64 << 20
_heap_held: bool | None = None   # None: not tried yet in this process
# Monte Carlo passes over the test set, at most: the standard error of the NELBO shrinks as 1/sqrt(passes),
# and every pass costs a whole test-set evaluation
MAX_EVAL_REPEATS = 10_000
EVAL_REPEATS_LIMIT = "each pass evaluates the whole data set; the standard error falls only as 1/sqrt(passes)"


def check_evaluation_sizes(iwae_k, repeats: int | None, repeats_name: str = "eval_repeats") -> None:
    """iwae_k values and the Monte Carlo passes (called `repeats_name`) within their limits, before any work."""
    for k in iwae_k:
        at_most("iwae_k", k, MAX_IWAE_K, IWAE_K_LIMIT)
    if repeats:
        at_most(repeats_name, repeats, MAX_EVAL_REPEATS, EVAL_REPEATS_LIMIT)


def _repeats(repeats) -> int:
    """A count of Monte Carlo passes: a positive integer, at most MAX_EVAL_REPEATS."""
    return at_most("repeats", positive_int("repeats", repeats, "Monte Carlo passes over x"), MAX_EVAL_REPEATS,
                   EVAL_REPEATS_LIMIT)


def hold_freed_memory() -> bool:
    """Keep freed tensor memory in the process for reuse (glibc's malloc on Linux; nothing elsewhere):
    blocks of up to 32 MiB come from the heap, and up to 64 MiB of free heap stays in the process, instead
    of going back to the kernel to be faulted in again by the next evaluation pass. Process-wide and
    lasting; evaluate_niwae and evaluate_terms call it on a CPU (tried once per process). VAELAB_HOLD_MEMORY=0
    in the environment turns it off. Returns whether glibc took the thresholds (under a preloaded other
    allocator, e.g. jemalloc, glibc takes them without effect)."""
    global _heap_held
    if _heap_held is None:
        _heap_held = _set_malloc_thresholds()
    return _heap_held


def _set_malloc_thresholds() -> bool:
    if not sys.platform.startswith("linux") or os.environ.get("VAELAB_HOLD_MEMORY", "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt   # glibc's, already loaded in this process
    except (OSError, AttributeError):   # another C library (e.g. musl has no mallopt)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3   # <malloc.h>; mallopt returns 1 on success
    return bool(mallopt(m_mmap_threshold, _MMAP_THRESHOLD)) and bool(mallopt(m_trim_threshold, _TRIM_THRESHOLD))


def _checked(model, x, y) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(x, y) as the model takes them, or a VaelabError naming what is wrong: the model's own checks of x (shape,
    pixel range) and, for a conditional model, of its labels y (an unconditional model ignores y). On a CPU,
    freed memory is held from here on (hold_freed_memory)."""
    x = checked_model(model)._inputs(x)
    if len(x) == 0:
        raise VaelabError("x holds no examples; pass at least one")
    if x.device.type == "cpu":
        hold_freed_memory()
    return x, model._labels(y, len(x)) if model.conditional else None


def _share(x: torch.Tensor, y: torch.Tensor | None, across_ranks: bool):
    """This rank's contiguous share of (x, y) under torchrun with across_ranks; else (x, y)."""
    if not across_ranks:
        return x, y
    mine = distributed.shard(len(x))
    return x[mine], None if y is None else y[mine]


@torch.inference_mode()
def evaluate_terms(model, x: torch.Tensor, repeats: int = 10, batch_size: int = 2000, y: torch.Tensor | None = None,
                  across_ranks: bool = False, progress: bool = False) -> dict:
    """Mean NELBO and its terms over all of x (model.TERMS, from model.terms: an autoencoder's loss, rec, penalty and
    mse), averaged over `repeats` Monte Carlo passes (one pass for deterministic models); `<first term>_mc_se` is
    the standard error over passes (None for one pass).
    y: class labels, needed by conditional models (ignored by the others). progress: a bar over the passes."""
    repeats = _repeats(repeats)
    batch_size = positive_int("batch_size", batch_size, "examples per forward pass")
    x, y = _checked(model, x, y)
    model.eval()
    names = model.TERMS
    if model.deterministic:
        repeats = 1
    n = len(x)
    x, y = _share(x, y, across_ranks)
    totals = torch.zeros(repeats, len(names), dtype=torch.float64)
    with progress_bar(total=repeats * len(x), desc=names[0].upper(), unit="img", disable=not progress,
                      leave=False) as bar:
        for r in range(repeats):
            for i in range(0, len(x), batch_size):
                yb = None if y is None else y[i:i + batch_size]
                terms = model.terms(x[i:i + batch_size], yb, reduce=False)
                totals[r] += torch.stack([t.sum() for t in terms]).double().cpu()
                bar.update(len(terms[0]))
    if across_ranks:
        totals = distributed.sum_across(totals)
    per_pass = totals / n
    mean = per_pass.mean(0)
    # one pass (deterministic models, repeats=1) has no spread to estimate: None (JSON null, not NaN)
    se = per_pass[:, 0].std().item() / math.sqrt(repeats) if repeats > 1 else None
    return {**{n: mean[i].item() for i, n in enumerate(names)}, f"{names[0]}_mc_se": se, "eval_repeats": repeats}


# Sample rows (images x k) from which evaluate_niwae compiles its passes on a CPU unless told otherwise: the
# one-off compile (4-11 s) costs less than it saves there (IWAE-5000 of the default VAE: 18% less time per
# pass, about 0.9 s per million rows at 2 threads: benchmarks/results/iwae-floor.md and iwae-floor-compiled.md). IWAE-1000 and up on a 10,000-image test set.
COMPILE_AUTO_ROWS = 10_000_000


@torch.inference_mode()
def evaluate_niwae(model, x: torch.Tensor, k: int, progress: bool = True, y: torch.Tensor | None = None,
                  across_ranks: bool = False, rows_per_pass: int | None = None, compile: bool | None = None) -> float:
    """-(1/N) sum_n log (1/k) sum_i w_ni over all of x: the negative IWAE-k bound in nats (a loss, as metrics.json's
    niwae_k; model.iwae(x, k) gives the bound itself per example), in passes of
    `rows_per_pass` decoder rows (default: iwae_rows_per_pass of x's device, halved while a pass runs out
    of GPU memory).

    compile=True: each pass runs model.log_importance_weights compiled by torch.compile (a one-off
    compile of some seconds; the elementwise work between the matrix products fused into single loops).
    The same random draws as without it, so the same bound up to float32 rounding; where this machine
    cannot compile (no C++ compiler) a warning says so and evaluation goes on uncompiled. compile=None (the
    default): compiled on a CPU when the evaluation has COMPILE_AUTO_ROWS (10 million) sample rows or more,
    len(x) * k, where the compile pays for itself; compile=False never compiles. y: class labels, needed by
    conditional models (ignored by the others)."""
    k = iwae_k_count(k)
    x, y = _checked(model, x, y)
    if rows_per_pass is not None:
        rows_per_pass = positive_int("rows_per_pass", rows_per_pass, "decoder rows per pass")
    if compile is not None and not isinstance(compile, bool):
        raise VaelabError(f"compile = {compile!r}: give True, False or None (compile long evaluations on a CPU)")
    model.eval()
    auto = compile is None
    if auto:
        compile = x.device.type == "cpu" and len(x) * k >= COMPILE_AUTO_ROWS
    weights = CompiledWeights(model, auto) if compile else None
    n = len(x)
    x, y = _share(x, y, across_ranks)
    rows = rows_per_pass or iwae_rows_per_pass(x.device)
    batch = max(1, rows // min(k, rows))   # images per pass, as iwae_per_example takes them
    total = torch.zeros((), dtype=torch.float64, device=x.device)   # summed on the device: no sync per pass
    bar = progress_bar(total=len(x), desc=f"IWAE-{k}", unit="img", disable=not progress, leave=False)
    i = 0
    while i < len(x):
        xb, yb = x[i:i + batch], None if y is None else y[i:i + batch]
        try:
            total += iwae_per_example(model, xb, k, yb, rows, weights).double().sum()
        except torch.cuda.OutOfMemoryError:   # a big model on a small GPU: the same pass in halves
            if rows <= IWAE_ROWS_PER_PASS or rows_per_pass:   # not below the CPU's pass size
                raise
            rows //= 2
            batch = max(1, rows // min(k, rows))
            continue
        i += len(xb)
        bar.update(len(xb))
    bar.close()
    if across_ranks:
        total = distributed.sum_across(total)
    return -total.item() / n


class CompiledWeights:
    """model.log_importance_weights under torch.compile, for evaluation: compiled at the first pass
    (again for a pass of another shape, e.g. the last of an uneven k), and the model's own method
    from then on if this machine cannot compile it."""

    def __init__(self, model, auto: bool = False):
        self.model, self.auto = model, auto
        # fallback_random: random draws as the uncompiled method makes them, so that the same seed gives
        # the same bound either way
        self.fn = torch.compile(model.log_importance_weights, dynamic=False, options={"fallback_random": True})
        self.compiled = True

    def __call__(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None) -> torch.Tensor:
        try:
            return self.fn(x, k, y)
        except torch.cuda.OutOfMemoryError:   # evaluate_niwae's to handle (smaller passes), compiled as before
            raise
        except Exception as e:   # noqa: BLE001 -- whatever stops the compiler: evaluate without it
            if not self.compiled:   # the model's own method failed: its error, as without compile
                raise
            what = ("IWAE evaluation compiles its passes when they are many (compile=None, the default)" if self.auto
                    else "compile=True")
            warnings.warn(f"{what}: torch.compile failed here ({first_line(e)}); evaluating uncompiled"
                          + ("; compile=False (vaelab eval --no-compile) skips trying" if self.auto else ""),
                          stacklevel=2)
            self.fn, self.compiled = self.model.log_importance_weights, False
            return self.fn(x, k, y)


def require_finite(metrics: dict, where: str) -> dict:
    """metrics itself if every number in it is finite, else a VaelabError naming the metrics and `where`:
    a NaN is never reported as a result (a model may give NaN in evaluation mode only, e.g. a network
    whose eval-mode branch divides by zero)."""
    bad = {k: v for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        listed = ", ".join(f"{k} = {v}" for k, v in bad.items())
        raise VaelabError(f"{where}: the test metrics {listed} are not numbers: the model gives non-finite values "
                          f"in evaluation mode (its encoder, decoder or prior); nothing is reported. Check its "
                          f"networks in eval() mode, e.g. model.eval(); model.elbo(x)")
    return metrics


def evaluate_model(model, data, iwae_ks=(1, 10, 100), repeats: int = 10, progress: bool = True,
                   across_ranks: bool = False) -> dict:
    """Every test-set metric the model supports: NELBO terms, IWAE bounds, and model-specific
    ones (a model may define evaluate_extra(data), e.g. classification accuracy).

    across_ranks=True (under torchrun, called on every rank): NELBO terms and IWAE bounds are
    summed over the ranks' shards of the test set; the model-specific metrics, deterministic,
    are computed by rank 0 alone on the whole test set (the other ranks return without them)."""
    metrics = evaluate_terms(model, data.test_x, repeats, y=data.test_y, across_ranks=across_ranks, progress=progress)
    if model.has_iwae:
        for k in iwae_ks:
            metrics[f"niwae_{k}"] = evaluate_niwae(model, data.test_x, k, progress, y=data.test_y,
                                                  across_ranks=across_ranks)
    if model.reports_bits_per_dim:   # nats per example -> bits per dimension, as for CIFAR-10 and ImageNet
        metrics.update({f"{k}_bpd": v / (data.x_dim * math.log(2)) for k, v in list(metrics.items())
                        if k == "nelbo" or k.startswith("niwae_")})
    if across_ranks and not distributed.is_main():
        return metrics
    with torch.inference_mode():
        metrics.update(model.eval().evaluate_extra(data))
    if data.image_shape is not None and model.has_likelihood:   # autoencoders report their own mse
        metrics["mse"] = reconstruction_mse(model, data.test_x, data.test_x_grey, data.test_y)
    metrics["n_test"] = len(data.test_x)
    return metrics


@torch.inference_mode()
def reconstruction_mse(model, x: torch.Tensor, target: torch.Tensor, y: torch.Tensor | None = None,
                       batch_size: int = 2000) -> float:
    """Mean over examples of the mean squared error per value between `target` (the grey levels) and the
    decoder's mean at the posterior mean of x: one number on which Bernoulli, Gaussian and logistic VAEs
    and the autoencoders (whose own terms report it) compare. Deterministic: no Monte Carlo draw."""
    model.eval()
    total = 0.0
    for i in range(0, len(x), batch_size):
        yb = None if y is None else y[i:i + batch_size]
        recon = model.mean_x_given_z(model.posterior_mean(x[i:i + batch_size], yb), yb)
        total += (recon.float() - target[i:i + batch_size].float()).pow(2).mean(1).sum().item()
    return total / max(len(x), 1)


@torch.inference_mode()
def anomaly_scores(model, x: torch.Tensor, repeats: int = 10, batch_size: int = 2000) -> torch.Tensor:
    """Per-example anomaly score (higher = more anomalous), shape (N,), on the CPU and without gradients:
    model.anomaly_score (autoencoders: reconstruction MSE; VAEs: the NELBO), averaged over `repeats` passes
    unless the model is deterministic. x is checked as every evaluator checks it (shape, range, NaN)."""
    repeats = _repeats(repeats)
    batch_size = positive_int("batch_size", batch_size, "examples per forward pass")
    x, _ = _checked(model, x, None)
    model.eval()
    if model.deterministic:
        return torch.cat([model.anomaly_score(xb) for xb in x.split(batch_size)]).cpu()
    total = torch.zeros(len(x), dtype=torch.float64)
    for _ in range(repeats):
        total += torch.cat([model.anomaly_score(xb) for xb in x.split(batch_size)]).double().cpu()
    return (total / repeats).float()


def roc_auc(scores, is_anomaly) -> float:
    """Area under the ROC curve of `scores` for detecting is_anomaly = 1 (ties count one half): 1 when every
    anomaly scores above every normal example, 0.5 for scores that know nothing."""
    is_anomaly = torch.as_tensor(is_anomaly)
    if len(is_anomaly) != len(scores) or is_anomaly.dim() != 1:
        raise VaelabError(f"is_anomaly must hold one 0/1 (or bool) per score: {len(scores)} scores, got shape "
                          f"{tuple(is_anomaly.shape)}")
    if is_anomaly.bool().all() or not is_anomaly.bool().any():
        raise VaelabError("is_anomaly must mark some examples anomalous and some normal: a ROC AUC needs both")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(torch.as_tensor(is_anomaly).cpu().numpy(), torch.as_tensor(scores).cpu().numpy()))
