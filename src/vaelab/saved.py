"""Working with a saved run folder: evaluate it again, draw samples from it."""
from __future__ import annotations

from pathlib import Path

import torch

from .errors import VaelabError
from .evaluate import evaluate_elbo, evaluate_iwae
from .plots import LATENT_FIGURES, make_latent_figures, save_curves, save_grid
from .report import write_report
from .runs import atomic_write_bytes, load_checkpoint, lock_run_dir, read_json, summarise, write_json
from .config import TrainConfig, resolve_device
from .trainer import flush_denormal
from .models import load_model
from .batches import prepare_data


MAX_GRID = 10_000   # images in one sample grid (a 100x100 grid is a 6,000-pixel square PNG)


def model_checkpoint(seed_dir: Path) -> Path:
    """The weights a seed's results come from: the best epoch's (early stopping) or the last."""
    return seed_dir / "best.pt" if (seed_dir / "best.pt").exists() else seed_dir / "checkpoint.pt"


def seed_dirs(run: Path) -> dict[int, Path]:
    run = Path(run)
    if not (run / "config.json").exists():
        raise VaelabError(f"{run}: not a vaelab run folder (no config.json); pass the folder `vaelab train` printed")
    found = {int(p.name.split("-", 1)[1]): p for p in sorted(run.glob("seed-*")) if (p / "checkpoint.pt").exists()}
    if not found:
        raise VaelabError(f"{run}: no seed-*/checkpoint.pt in this run folder; its training did not finish a checkpoint")
    return found


def evaluate_run(run: Path, iwae_k=(5000,), repeats: int | None = None, data_dir=None, device="auto",
                 threads=None, progress=True, run_seeds=None) -> Path:
    """Add IWAE-k bounds (and optionally fresh NELBO/KL/Rec) for every seed (or the run_seeds given); rewrite
    metrics and report. A metric enters the mean ± SE once every seed has it, so a long evaluation can be
    done one seed per call."""
    run = Path(run)
    seeds = seed_dirs(run)
    if run_seeds is not None:
        missing = sorted(set(run_seeds) - set(seeds))
        if missing:
            raise VaelabError(f"--run-seeds {' '.join(map(str, missing))}: this run has seeds {sorted(seeds)}")
        seeds = {s: seeds[s] for s in seeds if s in run_seeds}
    try:
        cfg = TrainConfig(**read_json(run / "config.json"))
    except TypeError as e:
        raise VaelabError(f"{run / 'config.json'}: not a vaelab configuration ({e}); the file is damaged") from None
    metrics = read_json(run / "metrics.json")
    if data_dir is not None:
        cfg.data_dir = data_dir
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    data = prepare_data(cfg, dev)
    with lock_run_dir(run):   # not while a training process (or another eval) writes this run
        metrics = read_json(run / "metrics.json")
        with flush_denormal():
            _evaluate_seeds(seeds, metrics, data, dev, iwae_k, repeats, progress)
        metrics["mean_se"] = summarise(metrics["per_seed"])
        write_json(run / "metrics.json", metrics)
        return write_report(run)


def _evaluate_seeds(seeds, metrics, data, dev, iwae_k, repeats, progress):
    for seed, path in seeds.items():
        model = load_model(load_checkpoint(model_checkpoint(path), dev), dev)
        torch.manual_seed(20_000 + seed)
        m = metrics["per_seed"].setdefault(str(seed), {})
        if repeats:
            m.update(evaluate_elbo(model, data.test_x, repeats, y=data.test_y))
        if not model.has_iwae:   # autoencoders, the semi-supervised models: no IWAE bound to compute
            if progress and iwae_k:
                print(f"seed {seed}: {type(model).__name__} has no importance-weighted bound; IWAE skipped")
            continue
        for k in iwae_k:
            m[f"niwae_{k}"] = evaluate_iwae(model, data.test_x, k, progress, y=data.test_y)
            if progress:
                print(f"seed {seed}: IWAE-{k} = {m[f'niwae_{k}']:.3f}")


def load_run_model(run: Path, run_seed=None, device="auto"):
    """(model, checkpoint) of one training seed of a run (default: its first seed)."""
    dirs = seed_dirs(run)
    run_seed = next(iter(dirs)) if run_seed is None else run_seed
    if run_seed not in dirs:
        raise VaelabError(f"--run-seed {run_seed}: this run has seeds {sorted(dirs)}")
    dev = resolve_device(device)
    ckpt = load_checkpoint(model_checkpoint(dirs[run_seed]), dev)
    return load_model(ckpt, dev), ckpt


def plot_run(run: Path, kind: str, run_seed=None, tsne=False, data_dir=None, device="auto") -> list[Path]:
    """Make one figure of a saved run again (curves from its history files; the others from its model)."""
    run = Path(run)
    if kind == "curves":
        cfg = read_json(run / "config.json")
        hists = {str(s): read_json(p / "history.json") for s, p in seed_dirs(run).items() if (p / "history.json").exists()}
        if not hists:
            raise VaelabError(f"{run}: no seed-*/history.json; the run has not finished training a seed yet")
        return [save_curves(run / "curves.png", hists, f"{cfg['model']} on {cfg['dataset']}")]
    if kind not in LATENT_FIGURES:
        raise VaelabError(f"unknown figure {kind!r}: choose one of curves, {', '.join(LATENT_FIGURES)}")
    model, _ = load_run_model(run, run_seed, device)
    cfg = TrainConfig(**read_json(run / "config.json"))
    if data_dir is not None:
        cfg.data_dir = data_dir
    data = prepare_data(cfg, next(model.parameters()).device)
    torch.manual_seed(0)
    return make_latent_figures(run, model, data, which=(kind,), tsne=tsne)


def sample_run(run: Path, rows=10, cols=20, seed=0, run_seed=None, out=None, device="auto", label=None) -> Path:
    """Draw rows*cols images from p(x) (or p(x | y = label) for conditional models) of one seed's
    model and save them as one grid PNG."""
    if rows * cols > MAX_GRID:
        raise VaelabError(f"--rows {rows} x --cols {cols} = {rows * cols} images: at most {MAX_GRID} per grid; "
                          f"draw several smaller grids (--seed)")
    model, ckpt = load_run_model(run, run_seed, device)
    if label is not None:
        if not model.conditional:
            raise VaelabError(f"--class {label}: this run's model ({ckpt['config']['model']}) is not conditional; "
                              "leave --class out")
        if label >= model.n_classes:
            raise VaelabError(f"--class {label}: the model has classes 0..{model.n_classes - 1}")
    torch.manual_seed(seed)
    with torch.inference_mode():
        images = model.sample(rows * cols, label)
    tag = "" if label is None else f"-class{label}"
    out = Path(out) if out else Path(run) / f"samples-{rows}x{cols}{tag}-seed{seed}.png"
    if not out.parent.exists():
        raise VaelabError(f"--out {out}: folder {out.parent} does not exist; create it first")
    if out.is_dir():
        raise VaelabError(f"--out {out}: is a folder; give a PNG file name, e.g. --out {out / 'samples.png'}")
    if ckpt["image_shape"] is None:   # 2D points: a scatter over the test data
        from .data import load_dataset
        from .plots import save_samples_2d

        return save_samples_2d(out, load_dataset(ckpt["config"]["dataset"]).test_x, images)
    return save_grid(out, images, rows, cols, tuple(ckpt["image_shape"]))



def score_run(run: Path, dataset: str | None = None, normal_classes=None, run_seed=None, out=None, data_dir=None,
              device="auto", threads=None, repeats: int = 10) -> dict:
    """Per-image anomaly scores of a saved run's model on a data set's test split.

    Score: reconstruction MSE for autoencoders, NELBO (mean of `repeats` Monte Carlo passes) for VAEs;
    higher = more anomalous. Images whose class is not in `normal_classes` (default: the run's
    training classes, if it was trained on a subset) are the anomalies, and the ROC AUC of the
    scores for finding them is reported. Writes OUT.csv (index, label, anomaly, score) and OUT.json.
    """
    from .evaluate import anomaly_scores, roc_auc

    dirs = seed_dirs(run)
    run_seed = next(iter(dirs)) if run_seed is None else run_seed
    if run_seed not in dirs:
        raise VaelabError(f"--run-seed {run_seed}: this run has seeds {sorted(dirs)}")
    cfg = TrainConfig(**read_json(Path(run) / "config.json"))
    trained_on = cfg.train_classes
    cfg.dataset = dataset or cfg.dataset
    cfg.train_classes, cfg.fresh_batches = None, False
    if data_dir is not None:
        cfg.data_dir = data_dir
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    ckpt = load_checkpoint(dirs[run_seed] / "checkpoint.pt", dev)
    data = prepare_data(cfg, dev)
    if normal_classes is not None:
        check_normal_classes(normal_classes, data.test_y, cfg.dataset)
    if data.x_dim != ckpt["x_dim"]:
        raise VaelabError(f"--dataset {cfg.dataset} has {data.x_dim} values per example but the model was trained on "
                          f"{ckpt['x_dim']}; score a data set of the same shape")
    model = load_model(ckpt, dev)
    torch.manual_seed(30_000 + run_seed)
    with flush_denormal():
        scores = anomaly_scores(model, data.test_x, repeats)
    labels = data.test_y.cpu()
    normal = trained_on if normal_classes is None else list(normal_classes)
    summary = {"run": str(run), "run_seed": run_seed, "dataset": cfg.dataset, "n": len(scores),
               "score": model.ANOMALY_SCORE + ("" if model.deterministic else f" (mean of {repeats} passes)"),
               "normal_classes": normal, "mean_score": scores.double().mean().item(),
               "mean_score_per_class": {int(c): scores[labels == c].double().mean().item() for c in labels.unique()}}
    anomaly = None
    if normal is not None:
        anomaly = (~torch.isin(labels, torch.tensor(normal))).long()
        if 0 < anomaly.sum() < len(anomaly):
            summary["auc"] = roc_auc(scores, anomaly)
    out = Path(out) if out else Path(run) / f"scores-{cfg.dataset}-seed{run_seed}"
    if not out.parent.exists():
        raise VaelabError(f"--out {out}: folder {out.parent} does not exist; create it first")
    if out.is_dir():
        raise VaelabError(f"--out {out}: is a folder; --out is the path prefix of OUT.csv and OUT.json, "
                          f"e.g. --out {out / 'scores'}")
    rows = ["index,label,anomaly,score"] + [
        f"{i},{int(labels[i])},{'' if anomaly is None else int(anomaly[i])},{scores[i].item():.6g}" for i in range(len(scores))]
    atomic_write_bytes(out.with_suffix(".csv"), ("\n".join(rows) + "\n").encode())
    summary["csv"] = str(out.with_suffix(".csv"))
    write_json(out.with_suffix(".json"), summary)
    return summary


def check_normal_classes(normal_classes, labels: torch.Tensor, dataset: str) -> None:
    """--normal-classes must be classes of the scored data set, and not all of them (then nothing is an anomaly)."""
    present = sorted(int(c) for c in labels.unique())
    given = " ".join(str(c) for c in normal_classes)
    unknown = sorted(set(normal_classes) - set(present))
    if unknown:
        raise VaelabError(f"--normal-classes {' '.join(map(str, unknown))}: {dataset} has no such class (its classes "
                          f"are {present[0]}..{present[-1]}); choose the normal classes among them")
    if set(normal_classes) >= set(present):
        raise VaelabError(f"--normal-classes {given}: that is every class of {dataset}, so no test image is an "
                          f"anomaly and there is nothing to find; leave out the classes that are the anomalies")
