"""report.md: the numbers of a run folder and its figures, rebuilt from the files in it."""
from __future__ import annotations

from pathlib import Path

from ..data.toy import is_toy
from ..models import model_class
from ..storage import atomic_write_bytes, read_json

# Metric key -> column title, in display order. Keys a run does not have are skipped.
ELBO_COLUMNS = {"nelbo": "NELBO", "loss": "loss", "kl": "KL", "kl_y": "KL_y", "kl_z": "KL_z", "kl_z2": "KL_z2", "rec": "Rec",
                "penalty": "penalty", "mse": "MSE"}
OTHER_COLUMNS = {"psnr": "PSNR dB", "nonzero_fraction": "non-zero codes", "mse_corrupted": "MSE corrupted",
                 "mse_denoised": "MSE denoised", "psnr_corrupted": "PSNR corrupted", "psnr_denoised": "PSNR denoised",
                 "accuracy": "accuracy", "accuracy_grey": "accuracy (grey)",
                 "sample_class_accuracy": "sample class acc.", "sample_class_coverage": "sample coverage",
                 "sample_confidence": "sample conf.", "iters_per_second": "it/s", "train_seconds": "train s"}
JUDGE_NOTE = ("a classifier trained on the real training images judges 1,000 generated images: "
              "sample class acc. = share classified as the requested class (conditional models); "
              "sample coverage = normalised entropy of the predicted classes (1: all classes equally often); "
              "sample conf. = mean top-class probability")
FIGURES = [
    ("samples.png", "Samples from p(x)"),
    ("reconstruction.png", "Test data and reconstructions"),
    ("denoising.png", "Test images: original / corrupted / denoised rows"),
    ("codes.png", "Histogram of code activations"),
    ("curves.png", "Training curves"),
    ("samples-5x5.png", "25 random samples"),
    ("recon.png", "The first 10 test images (top) and their reconstructions (bottom)"),
    ("interpolate.png", "Latent interpolations between test images of digits 2→7, 0→1, 1→4, 4→9, 9→5"),
    ("manifold.png", "Latent manifold: decoded 20x20 grid over [-2, 2]² (the latent plane for 2D latents, "
                     "else the plane of the two leading principal directions of the test posterior means)"),
    ("scatter.png", "Test-set posterior means coloured by class"),
]
AE_KEYS = ("loss", "penalty", "mse", "mse_corrupted", "mse_denoised")   # small numbers: more digits


def _fmt(key: str, v: float, scale: float | None = None) -> str:
    """v formatted for column key; scale (the column's mean, for a standard error) picks the precision."""
    scale = v if scale is None else scale
    if key in ("iters_per_second", "train_seconds"):
        return f"{v:.0f}"
    if key.endswith("_bpd"):   # bits per dimension: small numbers
        return f"{v:.4f}"
    if key in AE_KEYS or key == "rec" and abs(scale) < 1:
        return f"{v:.5f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return f"{v:.4f}" if key.startswith(("accuracy", "sample_")) or key == "nonzero_fraction" else f"{v:.2f}"


def metrics_table(metrics: dict) -> str:
    per_seed, summary = metrics["per_seed"], metrics["mean_se"]
    iwae = sorted((k for k in summary if k.startswith("niwae_") and not k.endswith("_bpd")),
                  key=lambda k: int(k.split("_")[1]))
    bits = [k for k in ("nelbo_bpd", *(f"{k}_bpd" for k in iwae)) if k in summary]   # bits per dimension
    keys = [k for k in ELBO_COLUMNS if k in summary] + iwae + bits + [k for k in OTHER_COLUMNS if k in summary]
    titles = [{**ELBO_COLUMNS, **OTHER_COLUMNS}.get(k) or _bound_title(k) for k in keys]
    lines = ["| seed | " + " | ".join(titles) + " |",
             "|---" * (len(keys) + 1) + "|"]
    for seed, m in per_seed.items():
        lines.append(f"| {seed} | " + " | ".join(_fmt(k, m[k]) for k in keys) + " |")
    if len(per_seed) > 1:
        lines.append("| **mean ± SE** | " + " | ".join(
            f"**{_fmt(k, summary[k]['mean'])} ± {_fmt(k, summary[k]['se'], summary[k]['mean'])}**" for k in keys) + " |")
    return "\n".join(lines)


def _bound_title(key: str) -> str:
    """IWAE-k for niwae_k; "NELBO bits/dim", "IWAE-k bits/dim" for their values in bits per dimension."""
    if key == "nelbo_bpd":
        return "NELBO bits/dim"
    return f"IWAE-{key.split('_')[1]}" + (" bits/dim" if key.endswith("_bpd") else "")


def by_class_table(metrics: dict) -> str | None:
    """Conditional models: the first seed's samples judged per class, beside the judge's accuracy on the
    real test images of that class (a generator's class can score little above what real images score)."""
    first = next(iter(metrics["per_seed"].values()))
    if "sample_class_accuracy_by_class" not in first or "judge_test_accuracy_by_class" not in first:
        return None
    rows = [f"| {name} | {got:.2f} | {real:.2f} |" for got, (name, real)
            in zip(first["sample_class_accuracy_by_class"], first["judge_test_accuracy_by_class"].items())]
    return "\n".join(["| class | samples judged as the class | the judge on real test images of the class |",
                      "|---|---|---|", *rows])


def _stops(run_dir: Path, cfg: dict, metrics: dict) -> str:
    """How each finished seed's training ended where it did not run every iteration: stopped by the time
    budget, or early (patience), after how many iterations (from its history.json)."""
    ended = []
    for seed in metrics["per_seed"]:
        path = run_dir / f"seed-{seed}" / "history.json"
        hist = read_json(path) if path.exists() else {}
        why = ("the time budget" if hist.get("stopped_by") == "time budget"
               else "early stopping" if hist.get("stopped_early") else None)
        if why:
            ended.append(f"seed {seed} stopped by {why} after {hist['iterations_run']} iterations")
    budget = f"; time budget {cfg['time_budget']}" if cfg.get("time_budget") else ""
    return budget + ("; " + ", ".join(ended) if ended else "")


def write_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    cfg, metrics = read_json(run_dir / "config.json"), read_json(run_dir / "metrics.json")
    opts = ", ".join(f"{k}={v}" for k, v in cfg["model_options"].items()) or "defaults"
    cls = model_class(cfg["model"])
    autoencoder = not cls.has_likelihood
    optimizer = {"adamw": "AdamW"}.get(cfg.get("optimizer"), "Adam")
    classes = f", training classes {cfg['train_classes']}" if cfg.get("train_classes") is not None else ""
    fresh = ", a fresh draw per batch" if cfg.get("fresh_batches") else ""
    schedule = (f" ({cfg['epochs']} epochs)" if cfg.get("epochs") else "") + (
        f", KL warm-up over {cfg['warmup']:g} epochs" if cfg.get("warmup") else "")
    lr_schedule = f", lr schedule {cfg['lr_schedule']}" if cfg.get("lr_schedule", "constant") != "constant" else ""
    stops = _stops(run_dir, cfg, metrics)
    images = not is_toy(cfg["dataset"])   # the 2D toy sets are points, the rest images
    resize = f", images resized to {cfg['resize']}x{cfg['resize']}" if cfg.get("resize") else ""
    procs = metrics.get("processes", 1)
    batch = f"{cfg['batch_size']} ({procs} processes x {cfg['batch_size'] // procs}, DDP)" if procs > 1 else cfg["batch_size"]
    if autoencoder:
        test_line = (f"- test set: {metrics['test_set']}; loss = Rec + penalty (the training objective), MSE per "
                     "coordinate of the reconstruction; PSNR = 10 log10(1 / MSE) per image, averaged")
    else:
        test_line = (f"- test set: {metrics['test_set']}; NELBO/KL/Rec averaged over "
                     f"{next(iter(metrics['per_seed'].values()))['eval_repeats']} Monte Carlo passes; IWAE-k is the "
                     "negative importance-weighted bound on -log p(x) (nats, lower is better)")
    text = [
        f"# vaelab run: {cfg['model']} on {cfg['dataset']}",
        "",
        f"- model options: {opts}",
        f"- training: {cfg['iters']} iterations{schedule}, batch {batch}, {optimizer} lr {cfg['lr']}{lr_schedule}, "
        f"binarization {cfg['binarize']}{resize}, seeds {cfg['seeds']}{classes}{fresh}{stops}",
        f"- data: {metrics['data_source']}" + (f"; validation: {metrics['validation_set']}"
                                                if metrics.get("validation_set") else ""),
        test_line,
        f"- machine: {metrics['machine']}; {metrics['date']}",
        *(["- accuracy: q(y|x) on the test set's evaluation inputs (the fixed binarization above); "
           "accuracy (grey): on the grey-level test images"] if "accuracy" in metrics["mean_se"] else []),
        *([f"- sample quality: {JUDGE_NOTE}; the judge's accuracy on the real test set is "
           f"{metrics['mean_se']['judge_test_accuracy']['mean']:.4f}"] if "judge_test_accuracy" in metrics["mean_se"] else []),
        "",
        "## Test-set metrics" + ("" if autoencoder else f" (nats per {'image' if images else 'point'})"),
        "",
        metrics_table(metrics),
        "",
    ]
    table = by_class_table(metrics)
    if table:
        text += ["## Samples judged class by class (first seed)", "", table, ""]
    for name, caption in FIGURES:
        if name == "samples.png" and cls.conditional:
            caption = "Samples from p(x | y), one row per class"
        if name == "samples.png" and autoencoder:
            caption = "Decoded codes z ~ N(0, I) (an autoencoder has no prior: these need not look like data)"
        if (run_dir / name).exists():   # figures describe the first seed's model
            text += [f"## {caption}", "", f"![{caption}]({name})", ""]
    path = run_dir / "report.md"
    atomic_write_bytes(path, "\n".join(text).encode())
    return path
