"""The course experiments as recipes: one small function per experiment, returning its report sections.

Every recipe trains through `train_run` (each run is an ordinary run folder under the recipe's
folder) and puts its numbers next to the published / reference values. `ctx.quick` selects the
quick form: the embedded mnist-5k set instead of full MNIST and tiny iteration counts, so that the
whole recipe takes about a minute on one CPU thread; its numbers only show that the pipeline works.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..runs.report import by_class_table
from ..config import TrainConfig
from ..runs.run import Run
from .blocks import (DAE_NOISES, train_or_resume, ON_DATA_DISTANCE, SWISS_ROLL_VAE_ITERS, SWISS_ROLL_VAE_OPTIONS, denoising_triplets, first_seed_metrics, metrics_of,
                     one_class_aucs, swiss_roll_figure)
from .report import Figure, Section, Table


@dataclass
class Context:
    """Where a recipe writes, which form it runs, and the runtime options every run gets."""
    name: str
    out: Path
    quick: bool = False
    data_dir: str | None = None
    threads: int | None = None
    progress: bool = True
    options: dict = field(default_factory=dict)   # recipe-specific overrides (Python API; tests)
    resume: bool = False                          # continue the runs an interrupted recipe left in `out`

    def mnist(self) -> str:
        return "mnist-5k" if self.quick else "mnist"

    def log(self, message: str) -> None:
        if self.progress:
            print(f"[{self.name}] {message}", flush=True)

    def train(self, sub: str, **config) -> Path:
        """train_run into OUT/sub with the recipe's data folder, threads and progress setting (resuming: a run
        left by the interrupted recipe continued, a complete one kept)."""
        cfg = TrainConfig(out=str(self.out / sub), data_dir=self.data_dir, threads=self.threads,
                          progress=self.progress, **config)
        self.log(f"training {cfg.model} on {cfg.dataset} -> {cfg.out}")
        return train_or_resume(cfg, self.resume)


# ------------------------------------------------------------------------------ formatting
def pm(entry: dict | None, digits: int = 2) -> str:
    """'mean ± SE' of a metrics.json mean_se entry ('mean' alone for a single seed; '' if missing)."""
    if entry is None:
        return ""
    if entry.get("n", 1) > 1:
        return f"{entry['mean']:.{digits}f} ± {entry['se']:.{digits}f}"
    return f"{entry['mean']:.{digits}f}"


def per_seed_table(metrics: dict, keys: dict[str, str], digits: int = 2) -> Table:
    rows = [[seed] + [f"{m[k]:.{digits}f}" if k in m else "" for k in keys] for seed, m in metrics["per_seed"].items()]
    if len(metrics["per_seed"]) > 1:
        rows.append(["**mean ± SE**"] + [pm(metrics["mean_se"].get(k), digits) for k in keys])
    return Table(["seed", *keys.values()], rows)


def iwae_keys(metrics: dict) -> dict[str, str]:
    ks = sorted(int(k.split("_")[1]) for k in metrics["mean_se"] if k.startswith("niwae_"))
    return {f"niwae_{k}": f"IWAE-{k}" for k in ks}


def test_set_line(metrics: dict) -> str:
    return f"Test set: {metrics['test_set']} ({metrics['data_source']})."


# ------------------------------------------------------------------------------ VAE family on MNIST
VAE_REFERENCES = {"nelbo": ("99.96", "100.49"), "kl": ("19.16", ""), "rec": ("80.80", "")}
GMVAE_REFERENCES = {"nelbo": ("97.06", ""), "kl": ("17.79", ""), "rec": ("79.27", ""), "niwae_1000": ("about 93-95", "")}


def _bounds_section(ctx: Context, model: str, refs: dict, ref_names: tuple[str, str], iters_full: int):
    seeds = [0, 1, 2]
    iters = 300 if ctx.quick else iters_full
    iwae = [1, 10, 100] if ctx.quick else [1, 10, 100, 1000]
    run = ctx.train(model, model=model, dataset=ctx.mnist(), seeds=seeds, iters=iters, iwae_k=iwae,
                    eval_repeats=2 if ctx.quick else 10)
    m = metrics_of(run)
    keys = {"nelbo": "NELBO", "kl": "KL", "rec": "Rec", **iwae_keys(m)}
    rows = [[title, pm(m["mean_se"].get(k)), *refs.get(k, ("", ""))[:len(ref_names)]] for k, title in keys.items()]
    text = (f"{model.upper()} with the default networks (z = 10, MLP 784-300-300), {len(seeds)} seeds x {iters} "
            f"iterations, batch 100, Adam lr 1e-3, dynamic binarization. {test_set_line(m)} Nats per image, "
            "mean ± SE over seeds; IWAE-k is the negative importance-weighted bound on -log p(x) (lower is better).")
    headers = ["metric", "vaelab (mean ± SE)", *ref_names]
    section = Section("Test-set bounds (nats per image)", [text, Table(headers, rows), "Per seed:",
                                                          per_seed_table(m, keys)])
    figures = Section("Samples and training curves", [
        Figure(run / "samples.png", "10x20 samples from p(x) (Bernoulli means), seed 0"),
        Figure(run / "curves.png", "Training curves (train NELBO / KL / Rec, validation NELBO)")])
    return run, m, [section, figures]


def vae_mnist(ctx: Context) -> list[Section]:
    run, m, sections = _bounds_section(ctx, "vae", VAE_REFERENCES,
                                       ("course reference (full test set)", "Pythae"), 20_000)
    betas = [4.0] if ctx.quick else [0.5, 2.0, 4.0]
    iters = 300 if ctx.quick else 20_000
    k = 100
    rows = {1.0: {key: m["mean_se"][key] for key in ("nelbo", "kl", "rec", f"niwae_{k}")}}
    for beta in betas:
        bm = metrics_of(ctx.train(f"beta-{beta:g}", model="vae", dataset=ctx.mnist(), seeds=[0], iters=iters,
                                  iwae_k=[k], eval_repeats=2 if ctx.quick else 10, model_options={"beta": beta}))
        rows[beta] = {key: bm["mean_se"][key] for key in ("nelbo", "kl", "rec", f"niwae_{k}")}
    table = Table(["beta", "NELBO", "KL", "Rec", f"IWAE-{k}"],
                  [[f"{b:g}", *(pm(r[key]) for key in ("nelbo", "kl", "rec", f"niwae_{k}"))] for b, r in sorted(rows.items())])
    sections.append(Section("beta-VAE: the KL / Rec trade-off", [
        f"Training objective Rec + beta * KL; the NELBO column is always the true bound Rec + KL. beta = 1 is the "
        f"run above (mean ± SE over its seeds); the others are one seed each, {iters} iterations.", table]))
    return sections


def gmvae_mnist(ctx: Context) -> list[Section]:
    _, _, sections = _bounds_section(ctx, "gmvae", GMVAE_REFERENCES, ("course reference",), 20_000)
    sections[0].blocks.insert(1, "GMVAE prior: a uniform mixture of k = 500 learnable Gaussians; KL estimated by "
                                 "Monte Carlo with the same sample as Rec.")
    return sections


# ------------------------------------------------------------------------------ SSVAE
SSVAE_REFERENCES = {0.0: "0.744 (course, gw = 0)", 1.0: "0.927 (course, gw = 1); Pyro M2 0.932; Kingma et al. M2 0.880"}


def ssvae_mnist(ctx: Context) -> list[Section]:
    seeds = [0, 1] if ctx.quick else [0, 1, 2]
    iters = 200 if ctx.quick else 30_000
    runs = {gw: ctx.train(f"ssvae-gw{gw:g}", model="ssvae", dataset=ctx.mnist(), seeds=seeds, iters=iters, iwae_k=[],
                          eval_repeats=2 if ctx.quick else 10, model_options={"gw": gw}) for gw in (0.0, 1.0)}
    ms = {gw: metrics_of(r) for gw, r in runs.items()}
    acc_rows = [[f"gw = {gw:g}" + (" (supervised only)" if gw == 0 else " (semi-supervised M2)"),
                 pm(m["mean_se"]["accuracy"], 4), pm(m["mean_se"]["accuracy_grey"], 4), SSVAE_REFERENCES[gw]]
                for gw, m in ms.items()]
    m1 = ms[1.0]
    keys = {"nelbo": "NELBO", "kl_y": "KL_y", "kl_z": "KL_z", "rec": "Rec"}
    return [
        Section("Test accuracy of q(y|x) with 100 labels", [
            f"SSVAE (M2): 100 labelled training images (10 per class, label seed 0), cw = 100, {len(seeds)} seeds x "
            f"{iters} iterations. {test_set_line(m1)} Accuracy on the binarized test images (one fixed draw) and on "
            "the grey-level images, mean ± SE over seeds.",
            Table(["setting", "accuracy", "accuracy (grey)", "reference"], acc_rows)]),
        Section("NELBO decomposition (gw = 1, nats per image)", [
            "NELBO = KL_y + KL_z + Rec with the exact sum over the 10 labels.", per_seed_table(m1, keys)]),
        Section("Class-conditional samples (gw = 1)", [
            Figure(runs[1.0] / "samples.png", "Samples from p(x | y): one row per class 0-9, seed 0")]),
    ]


# ------------------------------------------------------------------------------ autoencoders
def ae_swissroll(ctx: Context) -> list[Section]:
    iters, vae_iters = (1000, 1000) if ctx.quick else (5000, SWISS_ROLL_VAE_ITERS)
    runs = {"ae": ctx.train("ae", model="ae", dataset="swiss-roll", iters=iters, iwae_k=[100]),
            "vae": ctx.train("vae", model="vae", dataset="swiss-roll", iters=vae_iters, iwae_k=[100],
                             model_options=dict(SWISS_ROLL_VAE_OPTIONS))}
    ctx.log("figure: reconstructions, samples, interpolation")
    scores = swiss_roll_figure(runs, ctx.out / "swiss-roll.png")
    vae = first_seed_metrics(runs["vae"])
    opts = ", ".join(f"{k}={v}" for k, v in SWISS_ROLL_VAE_OPTIONS.items())
    return [
        Section("Reconstruction error and samples on the data", [
            f"Swiss roll (columns 0 and 2, noise 0.1, standardised), 10,000 training / 2,000 test points. AE: MLP "
            f"2-128-64-32-16 and back, ReLU, MSE, AdamW, {iters} iterations; Gaussian VAE: {opts}, Adam, "
            f"{vae_iters} iterations; batch 100. Samples on the data: share of 2,000 decoded z ~ N(0, I) within "
            f"{ON_DATA_DISTANCE} of a test point.",
            Table(["model", "test MSE (reconstruction)", "samples on the data", "test NELBO (nats)", "IWAE-100", "target"],
                  [["AE", f"{scores['ae']['mse']:.5f}", f"{scores['ae']['on_data']:.1%}", "", "", "MSE <= 0.01"],
                   ["Gaussian VAE (decoder mean at posterior mean)", f"{scores['vae']['mse']:.5f}",
                    f"{scores['vae']['on_data']:.1%}", f"{vae['nelbo']:.3f}", f"{vae['niwae_100']:.3f}",
                    "samples on the roll"]])]),
        Section("Reconstructions, samples and interpolation", [
            "The AE reconstructs almost perfectly, but decoded z ~ N(0, I) need not lie on the data and its latent "
            "path may leave it; the VAE's prior samples and interpolation follow the roll.",
            Figure(ctx.out / "swiss-roll.png", "Rows: AE, Gaussian VAE. Columns: test data and reconstructions; "
                                               "decoded z ~ N(0, I); latent interpolation between the leftmost and "
                                               "rightmost test points")]),
    ]


def dae_fashion(ctx: Context) -> list[Section]:
    iters = 200 if ctx.quick else 5000
    runs = {noise: ctx.train(f"dae-{noise}", model="dae", dataset="fashion-mnist", iters=iters, iwae_k=[],
                             model_options={"noise": noise, "level": level, "hidden": "512,256", "z_dim": 64})
            for noise, level in DAE_NOISES.items()}
    rows = []
    for noise, run in runs.items():
        m = first_seed_metrics(run)
        rows.append([f"{noise} ({DAE_NOISES[noise]})", f"{m['eval_noise_level']:.2f}", f"{m['mse_corrupted']:.4f}",
                     f"{m['mse_denoised']:.4f}", f"{m['psnr_corrupted']:.2f}", f"{m['psnr_denoised']:.2f}",
                     f"**{m['psnr_denoised'] - m['psnr_corrupted']:+.2f}**"])
    denoising_triplets(runs, ctx.out / "denoising.png", data_dir=ctx.data_dir)
    return [
        Section("Denoising: MSE and PSNR of the test images", [
            f"DAE: MLP 784-512-256-64 and back, ReLU, MSE, AdamW lr 1e-3, batch 100, {iters} iterations, grey levels; "
            "the corruption is applied to the input during training only. Test: every test image corrupted once "
            "(fixed seed) at the middle of the training level range; PSNR = 10 log10(1 / MSE) per image, averaged.",
            Table(["noise (training level)", "test level", "MSE corrupted", "MSE denoised", "PSNR corrupted (dB)",
                   "PSNR denoised (dB)", "gain (dB)"], rows),
            "Target (course text): masking p = 0.5, denoised PSNR at least 8 dB above the corrupted PSNR."]),
        Section("Original / corrupted / denoised", [
            Figure(ctx.out / "denoising.png", "Rows in threes (original, corrupted, denoised) for "
                                              + ", ".join(runs))]),
    ]


def anomaly_mnist(ctx: Context) -> list[Section]:
    classes = list(ctx.options.get("classes", range(10)))
    iters = 150 if ctx.quick else 2000
    ctx.log(f"one-class AEs for classes {classes}")
    aucs = one_class_aucs(ctx.out, ctx.mnist(), classes, iters=iters, data_dir=ctx.data_dir, threads=ctx.threads,
                          progress=False, log=ctx.log if ctx.progress else None, resume=ctx.resume)
    mean = sum(aucs.values()) / len(aucs)
    over = "the 10 classes" if len(aucs) == 10 else f"classes {classes} only"
    table = Table(["", *(str(c) for c in aucs), "**mean**"],
                  [["AUC (vaelab AE)", *(f"{a:.4f}" for a in aucs.values()), f"**{mean:.4f}**"]])
    refs = Table(["method (published, MNIST, mean over the 10 classes)", "mean AUC"],
                 [[f"vaelab AE (this report; mean over {over})", f"{mean:.4f}"], ["convolutional AE (Ruff et al. 2018)", "0.92"],
                  ["Deep SVDD (Ruff et al. 2018)", "0.95"]])
    return [Section("One-class anomaly detection: ROC AUC per normal class", [
        f"For each class c: an AE (MLP 784-128-64-32-16 and back, ReLU, MSE, AdamW) trained on the training images of "
        f"class c only, {iters} iterations; every test image of {ctx.mnist()} scored by its reconstruction MSE; ROC AUC "
        "of finding the other classes.", table, refs])]


# ------------------------------------------------------------------------------ conditional and conv VAEs
def cvae_fashion(ctx: Context) -> list[Section]:
    # The course text's setting: 32x32 Fashion-MNIST (grey levels), latent 128, 50 epochs, batch 256.
    length, batch = ({"iters": 100}, 256) if ctx.quick else ({"epochs": 50}, 256)
    run = ctx.train("cvae", model="cvae", dataset="fashion-mnist", seeds=[0], **length, batch_size=batch,
                    resize=32, binarize="none", iwae_k=[1, 10] if ctx.quick else [1, 10, 100],
                    eval_repeats=2 if ctx.quick else 10, model_options={"net": "conv", "z_dim": 128})
    m = metrics_of(run)
    keys = {"nelbo": "NELBO", "kl": "KL", "rec": "Rec", **iwae_keys(m), "sample_class_accuracy": "sample class acc."}
    return [
        Section("Test-set metrics", [
            f"Conditional VAE, conv nets (three stride-2 convolutions 16-32-64, ELU; label as one-hot planes in the "
            f"encoder, concatenated to z in the decoder), z = 128, images resized to 32x32, grey levels with a "
            f"Bernoulli (BCE) likelihood, one seed x {' '.join(f'{v} {k}' for k, v in length.items())} of batch {batch}. {test_set_line(m)} Sample class acc.: share of 1,000 class-conditional samples a classifier "
            f"trained on the real images assigns to the requested class (its real test accuracy: "
            f"{m['mean_se']['judge_test_accuracy']['mean']:.4f}).", per_seed_table(m, keys, 3)]),
        Section("Samples judged class by class", [
            "Each class's 100 samples against the judge's accuracy on that class's real test images.",
            by_class_table(m) or "(not recorded by this run)"]),
        Section("Per-class samples and reconstructions", [
            Figure(run / "samples.png", "Samples from p(x | y): one row per class (T-shirt, trouser, pullover, dress, "
                                        "coat, sandal, shirt, sneaker, bag, ankle boot)"),
            Figure(run / "recon.png", "The first 10 test images (top) and their reconstructions (bottom)"),
            Figure(run / "manifold.png", "Decoded grid over the two leading principal directions (class 0)")]),
    ]


def convvae_bce_vs_mse(ctx: Context) -> list[Section]:
    epochs, patience = (3, 1) if ctx.quick else (50, 3)
    variants = {"bce": ("Bernoulli p(x|z) (BCE), grey levels", {"likelihood": "bernoulli"}, "none"),
                "mse": ("Gaussian p(x|z), sigma 0.1 (MSE), grey levels", {"likelihood": "gaussian", "sigma": "0.1"}, "none")}
    rows, figures = [], []
    for name, (label, opts, binarize) in variants.items():
        run = ctx.train(f"convvae-{name}", model="vae", dataset=ctx.mnist(), epochs=epochs, patience=patience,
                        binarize=binarize, iwae_k=[1, 100], eval_repeats=2 if ctx.quick else 10,
                        model_options={"net": "conv", "z_dim": 2, **opts})
        m = first_seed_metrics(run)
        hist = metrics_hist(run)
        steps = hist.get("iterations_run", hist["iteration"][-1] if hist["iteration"] else 0)
        best = hist.get("best_iteration")
        per_epoch = max(1, hist["val_iteration"][0]) if hist.get("val_iteration") else 1
        rows.append([label, f"{m['nelbo']:.2f}", f"{m['kl']:.2f}", f"{m['rec']:.2f}", f"{m['niwae_100']:.2f}",
                     f"{best // per_epoch if best else ''}", f"{steps // per_epoch}",
                     "yes" if hist.get("stopped_early") else "no", "149.6" if name == "bce" else ""])
        figures += [Figure(run / "curves.png", f"{label}: training and validation curves per epoch"),
                    Figure(run / "recon.png", f"{label}: the first 10 test images (top) and their reconstructions"),
                    Figure(run / "manifold.png", f"{label}: decoded 20x20 grid over the latent plane [-2, 2]²"),
                    Figure(run / "scatter.png", f"{label}: test posterior means coloured by digit")]
    return [
        Section("Early stopping and test loss", [
            f"Conv VAE (stride-2 convolutions 16-32-64, ELU), z = 2, up to {epochs} epochs with early stopping "
            f"(patience {patience} epochs on the validation NELBO; the best epoch's weights are evaluated), batch 100, "
            f"Adam lr 1e-3, on {ctx.mnist()}. Test NELBO in nats per image; the two likelihoods are on different "
            "scales (the Gaussian one includes its normaliser), so compare each with its own reference only.",
            Table(["likelihood", "test NELBO", "KL", "Rec", "IWAE-100", "best epoch", "epochs run", "stopped early",
                   "course practice test loss"], rows)]),
        Section("Curves, reconstructions, manifolds and latent scatter", figures),
    ]


def metrics_hist(run: Path) -> dict:
    return Run(run).history(0)


def vae_mnist_latent(ctx: Context) -> list[Section]:
    iters = 300 if ctx.quick else 20_000
    run = ctx.train("vae", model="vae", dataset=ctx.mnist(), iters=iters, iwae_k=[1, 100],
                    eval_repeats=2 if ctx.quick else 10)
    m = metrics_of(run)
    keys = {"nelbo": "NELBO", "kl": "KL", "rec": "Rec", **iwae_keys(m)}
    return [
        Section("Test-set metrics", [f"VAE, z = 10, MLP 784-300-300, {iters} iterations, seed 0. {test_set_line(m)}",
                                     per_seed_table(m, keys)]),
        Section("Samples, reconstructions, interpolations", [
            Figure(run / "samples-5x5.png", "25 samples from p(x)"),
            Figure(run / "recon.png", "The first 10 test images (top) and their reconstructions (bottom)"),
            Figure(run / "interpolate.png", "Latent interpolations (posterior means, ten steps) between test digits "
                                            "2→7, 0→1, 1→4, 4→9, 9→5"),
            Figure(run / "manifold.png", "Decoded 20x20 grid over the plane of the two leading principal directions"),
            Figure(run / "scatter.png", "Test posterior means (PCA) coloured by digit")]),
    ]


@dataclass(frozen=True)
class Recipe:
    description: str
    function: Callable[[Context], list[Section]]
    data: tuple[str, ...]          # data sets of the full form
    quick_data: tuple[str, ...]    # data sets of the quick form


MNIST, MNIST_5K, FASHION, SWISS = ("mnist",), ("mnist-5k",), ("fashion-mnist",), ("swiss-roll",)
RECIPES: dict[str, Recipe] = {
    "vae-mnist": Recipe("VAE, 20k iterations x 3 seeds: NELBO / KL / Rec mean ± SE, IWAE bounds, 10x20 samples, "
                        "beta-VAE table", vae_mnist, MNIST, MNIST_5K),
    "gmvae-mnist": Recipe("GMVAE (500-component mixture prior), 20k iterations x 3 seeds: bounds and samples",
                          gmvae_mnist, MNIST, MNIST_5K),
    "ssvae-mnist": Recipe("SSVAE (M2) with 100 labels, gw = 0 baseline and gw = 1: accuracy mean ± SE, NELBO "
                          "decomposition, class-conditional grid", ssvae_mnist, MNIST, MNIST_5K),
    "ae-swissroll": Recipe("AE vs Gaussian VAE on the swiss roll: reconstruction, samples, interpolation",
                           ae_swissroll, SWISS, SWISS),
    "dae-fashion": Recipe("Denoising AE on Fashion-MNIST, masking / Gaussian / salt-and-pepper noise: MSE, PSNR, "
                          "triplets", dae_fashion, FASHION, FASHION),
    "cvae-fashion": Recipe("Conditional conv VAE on Fashion-MNIST: metrics, per-class sample grid, reconstructions",
                           cvae_fashion, FASHION, FASHION),
    "convvae-mnist-bce-vs-mse": Recipe("Conv VAE, z = 2, early stopping, BCE vs MSE likelihood: test loss, curves, "
                                       "manifold, scatter", convvae_bce_vs_mse, MNIST, MNIST_5K),
    "vae-mnist-latent": Recipe("VAE latent space: 25 samples, first-10 reconstructions, interpolations between digit "
                               "pairs, manifold, scatter", vae_mnist_latent, MNIST, MNIST_5K),
    "anomaly-mnist": Recipe("One-class anomaly detection with AEs: ROC AUC per normal class vs conv AE / Deep SVDD",
                            anomaly_mnist, MNIST, MNIST_5K),
}
