"""A whole run: every seed trained, evaluated on the full test set, drawn and reported.

    RUN/config.json -> per seed: fit -> seed-S/model.safetensors, history.json -> evaluate_model
    -> sample quality (judge) -> figures -> RUN/metrics.json (last: a seed listed there is complete)
    -> RUN/report.md

Started by torchrun with several processes, every process calls train_run: they train together
(see distributed.py) and rank 0 alone writes the run folder.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import platform
import shutil
from datetime import datetime
from pathlib import Path

import torch
from safetensors.torch import save as save_safetensors

from .. import distributed
from ..batches import DeviceData, check_split, prepare_data
from ..config import EXTENDABLE, RUNTIME_OPTIONS, TrainConfig, resolve_device, ungraphable
from ..data import STATIC_BINARIZATION_SEED
from ..errors import VaelabError, arg
from ..evaluate import anomaly_scores, evaluate_model, require_finite, roc_auc
from ..judge import run_judge, sample_quality
from ..data import dataset_label
from ..models import Model, build_model, model_class, takes_data_option
from ..plots import make_latent_figures, save_curves, save_grid
from .report import write_report
from ..schedules import parse_duration
from .run import config_of
from .folder import check_new_run_dir, check_replaceable, clear_run_dir, lock_run_dir, prepare_run_dir, summarise
from ..storage import atomic_write_bytes, load_checkpoint, read_json, write_json
from .figures import model_figures, save_samples_2d
from ..machine import set_threads
from ..trainer import fit, flush_denormal

SAMPLE_ROWS, SAMPLE_COLS = 10, 20   # the sample grid every image run writes
_NOT_COMPARED = RUNTIME_OPTIONS + EXTENDABLE + ("out",)   # a run folder may be moved, its budget extended


def train_run(cfg: TrainConfig, resume: bool = False, model: Model | None = None, overwrite: bool = False,
              data=None) -> Path:
    """Train every seed of cfg, evaluate on the full test set, and write the run folder; returns its path.

    resume=True continues the run folder cfg.out (see resume_run): finished seeds are kept,
    an interrupted seed continues from its last checkpoint. model: an instance to train instead of
    building cfg.model from cfg.model_options (each seed trains a copy, freshly initialised).
    overwrite=True replaces the vaelab run in cfg.out: only its own files are removed, once its lock is
    held and the data and options have been checked; a folder with anything else in it is refused.
    data: your own data in memory (an array, (x, y), a dict or a torch Dataset), which cfg.dataset names."""
    with distributed.same_on_every_rank():   # bad options fail before the processes connect
        cfg.validate()
        device = resolve_device(cfg.device)
        check_split(cfg.batch_size, distributed.world(), arg("batch_size"))
    if cfg.out is None:
        cfg.out = str(Path("runs") / f"{cfg.model}-{dataset_label(cfg.dataset)}-{datetime.now():%Y%m%d-%H%M%S}")
    with flush_denormal(), distributed.process_group(device):
        cfg.out = distributed.on_main(lambda: cfg.out)   # one folder for all ranks: rank 0's (a default name has the time)
        return _train_run(cfg, device, resume, model, overwrite, data)


def resume_run(run, data=None, **runtime) -> Path:
    """Continue an interrupted run folder with its saved configuration, or extend a finished one.

    Only RUNTIME_OPTIONS (data_dir, device, threads, progress) and EXTENDABLE (time_budget) may be given;
    None keeps the saved value. A new time budget is the total training time per seed: the seeds the
    old budget stopped continue from their last checkpoint (exactly as an uninterrupted run would) until
    the new one is spent, and are evaluated again; config.json records the new budget."""
    run = Path(run)
    with distributed.same_on_every_rank():
        if not (run / "config.json").is_file():
            raise VaelabError(f"{run}: not a vaelab run folder (no config.json); pass the folder `vaelab train` printed")
        bad = set(runtime) - set(RUNTIME_OPTIONS) - set(EXTENDABLE)
        if bad:
            raise VaelabError(f"{arg('resume')} keeps the run's saved configuration; only {', '.join(RUNTIME_OPTIONS)} and "
                              f"time_budget may change, not {', '.join(sorted(bad))}")
        if runtime.get("time_budget") is not None:
            parse_duration(runtime["time_budget"])
        cfg = config_of(run)
    for k, v in runtime.items():
        if v is not None:
            setattr(cfg, k, v)
    cfg.out = str(run)
    return train_run(cfg, resume=True, data=data)


def new_model(cfg: TrainConfig, data: DeviceData, template: Model | None = None) -> Model:
    """A freshly initialised model (from the global RNG) for `data`: cfg.model built with its options (and the
    images' shape, for the models whose conv nets take it), or a copy of `template` whose every layer is
    re-initialised (torch's reset_parameters, as at construction)."""
    if template is None:
        shape = {}
        if data.conv_shape is not None and takes_data_option(model_class(cfg.model), "image_shape"):
            shape = {"image_shape": data.conv_shape}
        return build_model(cfg.model, data.x_dim, **shape, **cfg.model_options)
    model = copy.deepcopy(template)
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)   # torch's layer protocol: every built-in layer has it
        if callable(reset):
            reset()
    return model


def _prepare(cfg: TrainConfig, device: torch.device, template: Model | None = None,
             given=None) -> DeviceData:
    """The data on the device, epochs turned into iterations, and the model's own refusals, before any file."""
    with distributed.same_on_every_rank():
        data = prepare_data(cfg, device, given=given)
        if cfg.batch_size > len(data.train_x):   # here, not in the loop: nothing may be written first
            raise VaelabError(f"{arg('batch_size', cfg.batch_size)} is larger than the training set ({len(data.train_x)} "
                              f"images); lower it")
        steps = len(data.train_x) // cfg.batch_size   # iterations per epoch
        if cfg.epochs:   # one validation, log line and checkpoint per epoch
            cfg.iters, cfg.eval_every, cfg.log_every, cfg.checkpoint_every = cfg.epochs * steps, steps, steps, steps
        if cfg.warmup * steps > cfg.iters:
            raise VaelabError(f"{arg('warmup', float(cfg.warmup))} epochs ({cfg.warmup * steps:.0f} iterations) is longer than the "
                              f"run ({cfg.iters} iterations); shorten the warm-up or train longer")
        if template is not None and template.x_dim != data.x_dim:
            raise VaelabError(f"the model takes x_dim = {template.x_dim} values per example, but {cfg.dataset} has "
                              f"{data.x_dim}; build it with x_dim={data.x_dim}")
        probe = new_model(cfg, data, template)   # bad options fail before writing anything
        probe.check_training(cfg.iters, continuous=data.image_shape is None)
        top = int(torch.cat([data.train_y, data.test_y]).max()) if probe.n_classes and len(data.test_y) else -1
        if top >= probe.n_classes > 0:   # e.g. --n-classes 3 on ten classes: a one-hot error deep in torch
            raise VaelabError(f"{arg('n_classes', probe.n_classes)}: {cfg.dataset} has labels 0..{top}; give "
                              f"{arg('n_classes', top + 1)}")
        if probe.n_classes and not data.labelled:   # conditional and semi-supervised models learn from labels
            raise VaelabError(f"{cfg.model} learns from labels, and {cfg.dataset} has none: give labelled data (one "
                              f"subfolder per class, or (x, y) from Python), or train a model without labels (vae)")
        if cfg.cuda_graph and not probe.graphable:   # e.g. a denoising AE drawing its noise level per batch
            raise ungraphable(cfg.model)
    return data


def _train_run(cfg: TrainConfig, device: torch.device, resume: bool = False, template: Model | None = None,
               overwrite: bool = False, given=None) -> Path:
    set_threads(cfg.threads)
    data = _prepare(cfg, device, template, given)
    main = distributed.is_main()   # under torchrun: rank 0 alone touches the run folder
    run_dir = Path(cfg.out)
    with contextlib.ExitStack() as held:
        judge = []   # rank 0's (classifier, accuracy, per-class accuracy), or nothing where none applies

        def open_run():   # rank 0: lock the folder (held until the run is written), judge, config or progress
            if run_dir.exists() and not run_dir.is_dir():
                raise VaelabError(f"{arg('out', str(run_dir))}: exists and is not a folder; choose another {arg('out')}")
            if overwrite:   # before the lock file: a folder of the user's own is never touched
                check_replaceable(run_dir)
            elif not resume:
                check_new_run_dir(run_dir, dataclasses.asdict(cfg))
            held.enter_context(lock_run_dir(run_dir))   # a second writer is refused
            if overwrite:   # under the lock: never the folder of a run still training
                clear_run_dir(run_dir)
            judge.extend(j for j in [run_judge(cfg, device)] if j is not None)
            if resume:
                return _resume_progress(run_dir, cfg)
            prepare_run_dir(run_dir, dataclasses.asdict(cfg))
            return {}, {}

        progress = distributed.on_main(open_run)   # its errors stop every rank
        if progress is None:   # resumed a complete run whose report was missing: rebuilt, nothing to train
            return run_dir
        per_seed, histories = progress
        for seed in cfg.seeds:
            if str(seed) in per_seed:   # finished before the interruption: its files are complete
                continue
            model, hist = _train_seed(cfg, data, device, run_dir / f"seed-{seed}", seed, resume, template)
            torch.manual_seed(distributed.rank_seed(10_000 + seed))   # evaluation noise independent of training
            metrics = evaluate_model(model, data, cfg.iwae_k, cfg.eval_repeats, cfg.progress and main, across_ranks=True)
            if not main:   # the rest is rank 0's: sample quality, figures, metrics.json, report
                continue
            metrics.update(train_seconds=hist["train_seconds"], iters_per_second=hist["iters_per_second"])
            metrics.update(_one_class_auc(model, data, cfg))
            if judge:
                classifier, accuracy, by_class = judge[0]
                metrics.update(sample_quality(model, classifier, len(by_class)), judge_test_accuracy=accuracy,
                               judge_test_accuracy_by_class=by_class)
            per_seed[str(seed)], histories[str(seed)] = require_finite(metrics, f"seed {seed}"), hist
            _write_seed_outputs(cfg, data, device, run_dir, seed, model, per_seed, histories)
    return run_dir


def _train_seed(cfg: TrainConfig, data: DeviceData, device, seed_dir: Path, seed: int, resume: bool, template=None):
    """(trained model, history) of one seed; resuming, from its last checkpoint. Rank 0 writes its weights."""
    def open_seed():   # rank 0: the seed's folder and, resuming, its checkpoint (handed to every rank)
        seed_dir.mkdir(exist_ok=True)
        return _resumable_checkpoint(seed_dir, cfg, seed) if resume else None

    ckpt = distributed.on_main(open_seed)
    torch.manual_seed(seed)
    model = new_model(cfg, data, template).to(device)
    if distributed.rank():   # the other ranks' own noise streams (DDP gives them rank 0's weights)
        torch.manual_seed(distributed.rank_seed(seed))
    # a seed trained to the end and stopped during its evaluation goes through the loop too (with no iteration
    # left): its end is the same as an uninterrupted run's (the best epoch's weights under early stopping, the
    # best validation iteration in the history)
    hist = fit(model, data, cfg, seed_dir, seed, resume=ckpt)
    if distributed.is_main():
        atomic_write_bytes(seed_dir / "model.safetensors",
                           save_safetensors({k: v.contiguous() for k, v in model.state_dict().items()}))
        write_json(seed_dir / "history.json", hist)
    return model, hist


def _one_class_auc(model, data: DeviceData, cfg: TrainConfig) -> dict:
    """A run trained on some classes only (train_classes): {"auc": the ROC AUC of finding the test images of
    the other classes by their anomaly score}; {} for the others (or a test set without both kinds)."""
    if cfg.train_classes is None or data.image_shape is None:
        return {}
    anomaly = ~torch.isin(data.test_y.cpu(), torch.tensor(cfg.train_classes))
    if anomaly.all() or not anomaly.any():
        return {}
    # the scores' own Monte Carlo noise: the random stream of the figures and samples after it is untouched
    with torch.random.fork_rng(devices=[data.test_x.device] if data.test_x.is_cuda else []):
        torch.manual_seed(30_000)
        return {"auc": roc_auc(anomaly_scores(model, data.test_x, cfg.eval_repeats), anomaly)}


def _write_seed_outputs(cfg, data: DeviceData, device, run_dir: Path, seed: int, model, per_seed, histories) -> None:
    """A finished seed's figures, then metrics.json (last: it lists complete seeds) and the report."""
    seed_dir = run_dir / f"seed-{seed}"
    model.eval()
    with torch.inference_mode():   # conditional models: one row per class
        grid = (model.sample_by_class(SAMPLE_COLS) if model.conditional
                else model.sample(SAMPLE_ROWS * SAMPLE_COLS if data.image_shape else 2000))
    if data.image_shape is None:   # 2D points: scatter figures instead of image grids
        save_samples_2d(seed_dir / "samples.png", data.test_x, grid)
    else:
        rows = model.n_classes if model.conditional else SAMPLE_ROWS
        save_grid(seed_dir / "samples.png", grid, rows, SAMPLE_COLS, data.picture_shape)
    figures = ["samples.png", *model_figures(model, data, seed_dir)]
    if seed == cfg.seeds[0]:
        for name in figures:
            shutil.copyfile(seed_dir / name, run_dir / name)
        if data.image_shape is not None and model.has_likelihood:   # the VAE family's latent figures
            make_latent_figures(run_dir, model, data)
    save_curves(run_dir / "curves.png", histories, f"{cfg.model} on {cfg.dataset}", model.REPORT.curves)
    write_json(run_dir / "metrics.json", _metrics_doc(cfg, data, device, per_seed))
    write_report(run_dir)


def _resume_progress(run_dir: Path, cfg: TrainConfig) -> tuple[dict, dict] | None:
    """Per-seed metrics and histories of the seeds a resumed run has already finished; None for a complete
    run whose report was missing (rebuilt here)."""
    saved = read_json(run_dir / "config.json")
    budget = parse_duration(cfg.time_budget) if cfg.time_budget else math.inf
    per_seed, histories = {}, {}
    if (run_dir / "metrics.json").exists():
        done = read_json(run_dir / "metrics.json").get("per_seed", {})
        for seed in cfg.seeds:
            if str(seed) in done and (run_dir / f"seed-{seed}" / "history.json").exists():
                hist = read_json(run_dir / f"seed-{seed}" / "history.json")
                if hist.get("stopped_by") == "time budget" and hist["train_seconds"] < budget:
                    continue   # a longer budget than the one that stopped it: train on
                per_seed[str(seed)], histories[str(seed)] = done[str(seed)], hist
    report, metrics = run_dir / "report.md", run_dir / "metrics.json"
    if len(per_seed) == len(cfg.seeds) and (not report.exists() or report.stat().st_mtime < metrics.stat().st_mtime):
        write_report(run_dir)   # killed between metrics.json and the report: the report is missing or stale
        return None
    if len(per_seed) == len(cfg.seeds):
        spent = [h["train_seconds"] for h in histories.values() if h.get("stopped_by") == "time budget"]
        if spent and cfg.time_budget != saved.get("time_budget"):
            raise VaelabError(f"{run_dir}: {arg('time_budget', cfg.time_budget)} is not longer than the training its "
                              f"budget-stopped seed(s) have had ({max(spent):.1f} s); nothing to continue: give a "
                              f"longer budget")
        raise VaelabError(f"{run_dir}: the run is already complete (all {len(cfg.seeds)} seed(s) have metrics); "
                          f"nothing to resume (`vaelab eval {run_dir}` adds bounds; a longer {arg('time_budget')} "
                          f"continues only the seeds a budget stopped)")
    if saved.get("time_budget") != cfg.time_budget:   # extended: the folder says what it runs with from now on
        write_json(run_dir / "config.json", {**saved, "time_budget": cfg.time_budget})
    return per_seed, histories


def _resumable_checkpoint(seed_dir: Path, cfg: TrainConfig, seed: int) -> dict | None:
    """The seed's last checkpoint (on the CPU), checked to belong to this run; None when it has none (start afresh)."""
    path = seed_dir / "checkpoint.pt"
    if not path.exists():
        return None
    ckpt = load_checkpoint(path, "cpu")
    trainer = ckpt.get("trainer") or {}
    if ckpt.get("seed") != seed or "generator" not in trainer.get("batches", {}):
        raise VaelabError(f"{path}: written for another seed, or by a vaelab without exact resume (or whose batch "
                          f"order came from the global RNG); it cannot be continued, start a new run")
    trained_by, world = ckpt.get("world_size", 1), distributed.world()
    if trained_by != world:
        how = (f"torchrun --nproc_per_node {trained_by} -m vaelab train --resume {seed_dir.parent}" if trained_by > 1
               else f"vaelab train --resume {seed_dir.parent} (one process, without torchrun)")
        raise VaelabError(f"{path}: trained by {trained_by} process(es), resumed with {world}; each process's random "
                          f"stream is part of the checkpoint, so resume with as many: {how}")
    if isinstance(ckpt["iteration"], bool) or not isinstance(ckpt["iteration"], int) \
            or not 0 <= ckpt["iteration"] <= cfg.iters:
        raise VaelabError(f"{path}: iteration {ckpt['iteration']!r} is outside this run's 0..{cfg.iters}; the "
                          f"checkpoint was edited or damaged, start a new run")
    saved = {k: v for k, v in ckpt["config"].items() if k not in _NOT_COMPARED}
    now = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_COMPARED}
    if saved != now:
        diff = sorted(k for k in now if saved.get(k) != now[k])
        raise VaelabError(f"{path}: its configuration differs from config.json ({', '.join(diff)}); "
                          f"the run folder was edited, start a new run")
    return ckpt


def machine_description(device: torch.device) -> str:
    """CPU (or GPU), processes, threads and torch version: the machine line of metrics and reports."""
    cpu = platform.processor() or platform.machine()
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    procs = f"{distributed.world()} processes x " if distributed.world() > 1 else ""
    return f"{platform.system()} {cpu}, {procs}{torch.get_num_threads()} thread(s), torch {torch.__version__}{gpu}"


def _validation_line(cfg, data: DeviceData) -> str:
    """How many examples were held out for validation, and why fewer than val_size where the cap applied."""
    n, what = len(data.val_x), "points" if data.image_shape is None else "images"
    capped = f" (val_size {cfg.val_size}, at most a tenth of the training set)" if n < cfg.val_size else ""
    return f"{n} {what} held out of the training set{capped}"


def _metrics_doc(cfg, data: DeviceData, device, per_seed: dict) -> dict:
    return {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "data_source": data.source,
        "test_set": (f"{len(data.test_x)} points" if data.image_shape is None else
                     f"{len(data.test_x)} images, "
                     + (("grey levels" if data.channels == 1 else "colour levels") if cfg.binarize == "none"
                        else f"fixed binarization seed {STATIC_BINARIZATION_SEED}")),
        "validation_set": _validation_line(cfg, data),
        "machine": machine_description(device),
        "processes": distributed.world(),   # torchrun --nproc_per_node (1: a plain run)
        "date": datetime.now().isoformat(timespec="seconds"),
        "per_seed": per_seed,
        "mean_se": summarise(per_seed),
    }
