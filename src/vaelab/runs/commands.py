"""The CLI's commands on a saved run folder: evaluate it again, draw from it, plot it, score with it.

Every function opens the folder through `vaelab.runs.run.Run`, which picks the weights the results
come from (best.pt under early stopping, else checkpoint.pt). A command on a run whose training
is unfinished says so (which seed, which iteration); one that writes into the run folder holds
its lock, so it never writes while a training process does.
"""
from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import VaelabError, arg
from ..evaluate import anomaly_scores, check_evaluation_sizes, evaluate_terms, evaluate_niwae, require_finite, roc_auc
from ..models import model_class
from ..codes import code_metrics, encode_all
from ..disentanglement import disentanglement_metrics
from ..data import dataset_label, is_registered, load_dataset
from ..data.images import read_image_files
from ..pictures import check_grid, save_grid
from ..plots import LATENT_FIGURES, make_latent_figures, neighbour_images, require_figure, save_curves
from .report import write_report
from .run import Run
from .figures import save_samples_2d
from .folder import lock_run_dir, summarise
from ..storage import atomic_write_bytes, load_checkpoint, read_json, write_json
from ..machine import set_threads
from ..trainer import flush_denormal


def open_run(run, run_seed=None) -> tuple[Run, int]:
    """(Run, the chosen training seed), warning on stderr when that seed is unfinished."""
    r = Run(run)
    if run_seed is not None and run_seed not in r.seeds:
        raise VaelabError(f"{arg('run_seed', run_seed)}: this run has seeds {r.seeds}")
    seed = r.seeds[0] if run_seed is None else run_seed
    note = r.unfinished_note(seed)
    if note:
        print(f"vaelab: note: {note}", file=sys.stderr)
    return r, seed


def evaluate_run(run: Path, iwae_k=None, repeats: int | None = None, data_dir=None, device="auto",
                 threads=None, progress=True, run_seeds=None, compile: bool | None = None, codes: bool = False,
                 disentanglement: bool = False) -> Path:
    """Add IWAE-k bounds (and optionally fresh NELBO/KL/Rec) for every seed (or the run_seeds given); rewrite
    metrics and report. A metric enters the mean ± SE once every seed has it, so a long evaluation can be
    done one seed per call. Only finished seeds (listed in metrics.json) are evaluated. iwae_k: default 5000
    for the models that have the bound (none for the others; asked of one of those, an error; none when
    codes is asked alone). compile: as evaluate_niwae's. codes: also the k-nearest-neighbour (k = 5) and
    linear-probe test accuracies of the model's codes (labelled data). disentanglement: also MIG, SAP and DCI
    of the test codes against the data set's ground-truth factors (the dsprites sets)."""
    r = Run(run)
    if (codes or disentanglement) and iwae_k is None:
        iwae_k = ()
    if not model_class(r.config.model).has_iwae:
        if iwae_k:
            raise VaelabError(f"{arg('iwae_k')}: {r.config.model} has no importance-weighted bound; leave {arg('iwae_k')} "
                              f"out ({arg('repeats')} recomputes its test terms)")
        iwae_k = ()
    elif iwae_k is None:
        iwae_k = (5000,)
    check_evaluation_sizes(iwae_k, repeats, "repeats")
    if not r.finished_seeds:
        raise VaelabError(f"{r.path}: no seed has finished training yet (no metrics.json); resume it first: "
                          f"vaelab train --resume {r.path}")
    seeds = r.finished_seeds if run_seeds is None else list(run_seeds)
    unknown = sorted(set(seeds) - set(r.seeds))
    if unknown:
        raise VaelabError(f"{arg('run_seeds')} {' '.join(map(str, unknown))}: this run has seeds {r.seeds}")
    unfinished = sorted(set(seeds) - set(r.finished_seeds))
    if unfinished:
        raise VaelabError(f"{arg('run_seeds')} {' '.join(map(str, unfinished))}: not finished training yet (finished: "
                          f"{r.finished_seeds}); resume the run first: vaelab train --resume {r.path}")
    set_threads(threads)
    data = r.data(device, data_dir=data_dir)
    if codes and not data.labelled:
        raise VaelabError(f"{arg('codes')}: {r.config.dataset} has no labels, and the accuracies of the codes "
                          f"need them; leave {arg('codes')} out")
    with lock_run_dir(r.path):   # not while a training process (or another eval) writes this run
        metrics = read_json(r.path / "metrics.json")
        with flush_denormal():
            for seed in seeds:
                model = r.model(seed, device)
                _evaluate_seed(model, seed, metrics["per_seed"][str(seed)], data, iwae_k, repeats, progress, compile)
                if disentanglement:
                    metrics["per_seed"][str(seed)].update(_factor_scores(r, model, device, data_dir))
                if codes:
                    train = r.data(device, data_dir=data_dir, whole_training_set=True)
                    metrics["per_seed"][str(seed)].update(code_metrics(
                        model, train.train_x, train.train_y, train.test_x_grey, train.test_y))
        metrics["mean_se"] = summarise(metrics["per_seed"])
        write_json(r.path / "metrics.json", metrics)
        return write_report(r.path)


def _evaluate_seed(model, seed: int, m: dict, data, iwae_k, repeats, progress, compile: bool | None) -> None:
    torch.manual_seed(20_000 + seed)
    if repeats:
        m.update(evaluate_terms(model, data.test_x, repeats, y=data.test_y))
    for k in iwae_k:
        m[f"niwae_{k}"] = evaluate_niwae(model, data.test_x, k, progress, y=data.test_y, compile=compile)
        if progress:
            print(f"seed {seed}: IWAE-{k} = {m[f'niwae_{k}']:.3f}")
    require_finite(m, f"seed {seed}")


def plot_run(run: Path, kind: str, run_seed=None, tsne=False, data_dir=None, device="auto",
             threads: int | None = None) -> list[Path]:
    """Make one figure of a saved run again (curves from its history files; the others from its model)."""
    if kind not in ("curves", *LATENT_FIGURES):
        raise VaelabError(f"unknown figure {kind!r}: choose one of curves, {', '.join(LATENT_FIGURES)}")
    if tsne and kind != "scatter":
        raise VaelabError(f"{arg('tsne')} adds a panel to the scatter figure; drop it for {kind}, or plot scatter")
    set_threads(threads)
    r, seed = open_run(run, run_seed)
    with lock_run_dir(r.path):   # it writes into the run folder
        if kind == "curves":
            hists = {str(s): r.history(s) for s in r.finished_seeds}
            if not hists:
                raise VaelabError(f"{r.path}: no seed has finished training yet, so there are no curves to draw")
            return [save_curves(r.path / "curves.png", hists, f"{r.config.model} on {r.config.dataset}",
                                model_class(r.config.model).REPORT.curves)]
        model = r.model(seed, device)
        data = r.data(next(model.parameters()).device, data_dir=data_dir)
        if data.image_shape is None:
            raise VaelabError(f"{r.path} holds 2D points ({r.config.dataset}): its figures (samples.png, "
                              f"reconstruction.png) are drawn at training time; `vaelab plot` draws image runs' figures")
        require_figure(model, kind)
        torch.manual_seed(0)
        return make_latent_figures(r.path, model, data, which=(kind,), tsne=tsne)


def sample_run(run: Path, rows=10, cols=20, seed=0, run_seed=None, out=None, device="auto", label=None,
               threads: int | None = None) -> Path:
    """Draw rows*cols images from p(x) (or p(x | y = label) for conditional models) of one seed's
    model and save them as one grid PNG."""
    check_grid(rows, cols)
    set_threads(threads)
    r, run_seed = open_run(run, run_seed)
    model = r.model(run_seed, device)
    if label is not None:
        if not model.conditional:
            raise VaelabError(f"{arg('label', label)}: this run's model ({r.config.model}) is not conditional; "
                              f"leave {arg('label')} out")
        if label >= model.n_classes:
            raise VaelabError(f"{arg('label', label)}: the model has classes 0..{model.n_classes - 1}")
    torch.manual_seed(seed)
    with torch.inference_mode():
        images = model.sample(rows * cols, label)
    tag = "" if label is None else f"-class{label}"
    out = Path(out) if out else r.path / f"samples-{rows}x{cols}{tag}-seed{seed}.png"
    if not out.parent.exists():
        raise VaelabError(f"{arg('out', str(out))}: folder {out.parent} does not exist; create it first")
    if out.is_dir():
        raise VaelabError(f"{arg('out', str(out))}: is a folder; give a PNG file name, e.g. "
                          f"{arg('out', str(out / 'samples.png'))}")
    inside = out.resolve().parent == r.path.resolve()
    with lock_run_dir(r.path) if inside else contextlib.nullcontext():   # writing into the run folder: not beside a trainer
        shape = _image_shape(r, run_seed)
        if shape is None:   # 2D points: a scatter over the test data
            return save_samples_2d(out, r.data("cpu").test_x, images)
        return save_grid(out, images, rows, cols, shape)


def _image_shape(r: Run, seed: int):
    """How the run's images are drawn ((H, W) grey, (C, H, W) colour), as its checkpoint records; None: points."""
    ckpt = load_checkpoint(r.checkpoint_path(seed), "cpu")
    shape, channels = ckpt["image_shape"], ckpt.get("channels", 1)
    return None if shape is None else tuple(shape) if channels == 1 else (channels, *shape)


def score_run(run: Path, dataset: str | None = None, normal_classes=None, run_seed=None, out=None, data_dir=None,
              device="auto", threads=None, repeats: int = 10) -> dict:
    """Per-image anomaly scores of a saved run's model on a data set's test split.

    Score: reconstruction MSE for autoencoders, NELBO (mean of `repeats` Monte Carlo passes) for VAEs;
    higher = more anomalous. Images whose class is not in `normal_classes` (default: the run's
    training classes, if it was trained on a subset and the data set is its own) are the anomalies, and the ROC AUC of the
    scores for finding them is reported. Writes OUT.csv (index, label, anomaly, score) and OUT.json (default
    OUT: RUN/scores-DATASET-seedS, with -normalA-B... added for normal_classes given here).
    """
    check_evaluation_sizes((), repeats, "repeats")
    r, run_seed = open_run(run, run_seed)
    trained_on = r.config.train_classes
    set_threads(threads)
    model = r.model(run_seed, device)   # the weights the run's results come from (best.pt under early stopping)
    if model.conditional:
        raise VaelabError(f"score: {r.config.model} is conditional (its bound needs each image's label y) and score "
                          f"gives it none; score a run of an unconditional model")
    data = r.data(device, dataset=dataset, data_dir=data_dir, whole_training_set=True)   # refuses another shape
    scored = dataset or r.config.dataset
    if scored != r.config.dataset:   # the run's training classes are classes of its own data set, not of this one
        trained_on = None
    if normal_classes is not None:
        check_normal_classes(normal_classes, data.test_y, scored)
    torch.manual_seed(30_000 + run_seed)
    with flush_denormal():
        scores = anomaly_scores(model, data.test_x, repeats)
    labels = data.test_y.cpu()
    normal = trained_on if normal_classes is None else list(normal_classes)
    summary = {"run": str(run), "run_seed": run_seed, "dataset": scored, "n": len(scores),
               "score": model.REPORT.anomaly_score + ("" if model.deterministic else f" (mean of {repeats} passes)"),
               "normal_classes": normal, "mean_score": scores.double().mean().item(),
               "mean_score_per_class": {int(c): scores[labels == c].double().mean().item() for c in labels.unique()}}
    anomaly = None
    if normal is not None:
        anomaly = (~torch.isin(labels, torch.tensor(normal))).long()
        if 0 < anomaly.sum() < len(anomaly):
            summary["auc"] = roc_auc(scores, anomaly)
    # normal classes chosen here name the file, so that scoring again with others keeps the earlier AUC
    chosen = "" if normal_classes is None else "-normal" + "-".join(map(str, sorted(set(normal))))
    out = Path(out) if out else r.path / f"scores-{scored}-seed{run_seed}{chosen}"
    if not out.parent.exists():
        raise VaelabError(f"{arg('out', str(out))}: folder {out.parent} does not exist; create it first")
    if out.is_dir():
        raise VaelabError(f"{arg('out', str(out))}: is a folder; {arg('out')} is the path prefix of OUT.csv and OUT.json, "
                          f"e.g. {arg('out', str(out / 'scores'))}")
    rows = ["index,label,anomaly,score"] + [
        f"{i},{int(labels[i])},{'' if anomaly is None else int(anomaly[i])},{scores[i].item():.6g}" for i in range(len(scores))]
    inside = out.resolve().parent == r.path.resolve()
    with lock_run_dir(r.path) if inside else contextlib.nullcontext():   # not beside a training process
        atomic_write_bytes(out.with_suffix(".csv"), ("\n".join(rows) + "\n").encode())
        summary["csv"] = str(out.with_suffix(".csv"))
        write_json(out.with_suffix(".json"), summary)
    return summary


MAX_FACTOR_POINTS = 5000   # test images scored against their factors (DCI trains boosted trees on them)


def _factor_scores(r: Run, model, device, data_dir) -> dict:
    """MIG, SAP, DCI of the model's codes of the data set's first test images against their factors."""
    if r.config.resize:
        raise VaelabError(f"{arg('disentanglement')}: the run resized its images; score a run on the factor set's "
                          f"own size")
    ds = load_dataset(r.config.dataset, data_dir=data_dir or r.config.data_dir) if is_registered(r.config.dataset) else None
    if ds is None or ds.factors is None:
        raise VaelabError(f"{arg('disentanglement')}: {r.config.dataset} has no ground-truth factors (the dsprites "
                          f"sets have); leave {arg('disentanglement')} out")
    n = min(MAX_FACTOR_POINTS, len(ds.test_x))
    x = ds.test_x[:n].to(next(model.parameters()).device)
    codes = encode_all(model, x)
    return disentanglement_metrics(codes.cpu().numpy(), np.asarray(ds.factors["test"])[:n])


def encode_run(run: Path, out=None, run_seed=None, dataset=None, data_dir=None, device="auto",
               threads: int | None = None) -> Path:
    """Write the codes of a run's data (or of another data set of its shape) to an .npz file: train,
    train_labels, test, test_labels and classes (see Run.codes); default RUN/codes-DATASET-seedS.npz."""
    set_threads(threads)
    r, run_seed = open_run(run, run_seed)
    codes = r.codes(run_seed, device, dataset, data_dir)
    classes = r.data(device, dataset, data_dir, whole_training_set=True).classes   # the names of the labels
    label = dataset_label(dataset or r.config.dataset)
    out = Path(out) if out else r.path / f"codes-{label}-seed{run_seed}.npz"
    if out.suffix != ".npz" or out.is_dir() or not out.parent.exists():
        raise VaelabError(f"{arg('out', str(out))}: give the path of an .npz file in an existing folder, e.g. "
                          f"{arg('out', 'codes.npz')}")
    buf = io.BytesIO()
    np.savez(buf, **{k: v.numpy() for k, v in codes.items()}, classes=np.array(classes, dtype=str))
    inside = out.resolve().parent == r.path.resolve()
    with lock_run_dir(r.path) if inside else contextlib.nullcontext():   # not beside a training process
        atomic_write_bytes(out, buf.getvalue())
    return out


def neighbours_run(run: Path, queries=None, k: int = 8, out=None, run_seed=None, device="auto",
                   threads: int | None = None) -> tuple[Path, list[list[int]]]:
    """Retrieval in code space: for each query image file (default: the first 8 test images), its k nearest
    training images, drawn as one PNG (a row per query; default RUN/neighbours-seedS.png); returns the PNG and
    the training indices of each query's neighbours, nearest first."""
    set_threads(threads)
    r, run_seed = open_run(run, run_seed)
    model = r.model(run_seed, device)
    data = r.data(next(model.parameters()).device, whole_training_set=True)
    if data.picture_shape is None:
        raise VaelabError(f"{r.path}: the run's data are points, not images; neighbours draws images")
    pictures = None if not queries else read_image_files(queries, data.channels, data.image_shape, arg("query"))
    images, idx = neighbour_images(model, data, pictures, k)
    out = Path(out) if out else r.path / f"neighbours-seed{run_seed}.png"
    if out.is_dir() or not out.parent.exists():
        raise VaelabError(f"{arg('out', str(out))}: give a PNG file name in an existing folder")
    inside = out.resolve().parent == r.path.resolve()
    with lock_run_dir(r.path) if inside else contextlib.nullcontext():
        save_grid(out, images, len(idx), k + 1, data.picture_shape)
    return out, idx.tolist()


def check_normal_classes(normal_classes, labels: torch.Tensor, dataset: str) -> None:
    """--normal-classes must be classes of the scored data set, and not all of them (then nothing is an anomaly)."""
    present = sorted(int(c) for c in labels.unique())
    given = " ".join(str(c) for c in normal_classes)
    unknown = sorted(set(normal_classes) - set(present))
    if unknown:
        raise VaelabError(f"{arg('normal_classes')} {' '.join(map(str, unknown))}: {dataset} has no such class (its classes "
                          f"are {present[0]}..{present[-1]}); choose the normal classes among them")
    if len(set(normal_classes)) < len(normal_classes):
        raise VaelabError(f"{arg('normal_classes')} {given}: a class is given twice; name each normal class once")
    if set(normal_classes) >= set(present):
        raise VaelabError(f"{arg('normal_classes')} {given}: that is every class of {dataset}, so no test image is an "
                          f"anomaly and there is nothing to find; leave out the classes that are the anomalies")
