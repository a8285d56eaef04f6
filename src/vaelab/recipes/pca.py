"""`vaelab reproduce ae-pca-mnist`: autoencoders and PCA, as the course poses them.

1. A linear autoencoder (the `ae` model with hidden="": one affine map each way, MSE) trained next to
   PCA (exact: SVD of the centred training images) at the same code size L finds the same subspace:
   test MSE within 1% of PCA's (optimal among rank-L affine maps) and principal angles near 0.
2. The ReLU autoencoder (the `ae` defaults) at the same L: what the non-linearity adds.
3. The Johnson-Lindenstrauss property, measured: pairwise-distance ratios of Gaussian random projections,
   of PCA codes and of the autoencoders' codes on 1,000 test images, beside the JL bound's epsilon.
4. Figures: principal components next to the linear AE's (aligned) decoder columns; reconstructions.

The linear algebra is in subspaces.py, the figures in pca_figures.py.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from ..runs.run import Run
from .experiments import Context, Recipe
from .pca_figures import components_figure, convergence_figure, jl_figure, reconstructions_figure
from .report import Figure, Section, Table
from .subspaces import PCA, distortion, fit_pca, jl_epsilon, principal_angles, random_projection

SIZES, QUICK_SIZES = (2, 10, 30), (2, 10)            # code sizes L of the trained autoencoders
JL_SIZES = (2, 5, 10, 20, 50, 100, 200, 400)          # code sizes of the distance-distortion table
JL_POINTS = 1000                                      # test images whose pairwise distances are compared
FIGURE_SIZE = 10                                      # L of the component and reconstruction figures
WITHIN = 0.01                                         # "the same MSE": within 1% of PCA's
DATA_SPAN = 1e-3   # encoder angles "on the data": principal directions with variance >= this x the first one's
# The linear AE: Adam (no weight decay, which would pull the map away from the projection), lr 3e-3, then
# 3e-4 from epoch 17 (about 10,000 iterations of full MNIST at batch 100). With 1e-3 then 1e-4 the L = 2 AE
# was still 2.4% above PCA after 20,000 iterations, near a saddle (its second direction mostly PCs 4 and 5).
LINEAR = {"optimizer": "adam", "lr": 3e-3, "lr_schedule": "step:17:0.1", "eval_every": 250}


def _iters(ctx: Context) -> tuple[int, int]:
    """(linear AE, ReLU AE) training iterations."""
    return (1000, 300) if ctx.quick else (20_000, 20_000)


def _train(ctx: Context, size: int) -> dict[str, Path]:
    linear_iters, relu_iters = _iters(ctx)
    common = {"dataset": ctx.mnist(), "binarize": "none", "iwae_k": [], "eval_repeats": 1}
    return {"linear": ctx.train(f"linear-ae-z{size}", model="ae", iters=linear_iters, **common, **LINEAR,
                                model_options={"hidden": "", "z_dim": size}),
            "relu": ctx.train(f"ae-z{size}", model="ae", iters=relu_iters, **common, model_options={"z_dim": size})}


@torch.inference_mode()
def affine_maps(model) -> tuple[torch.Tensor, torch.Tensor]:
    """(decoder matrix (D, L), encoder matrix transposed (D, L)) of a linear AE, read off its maps:
    D(z) = W z + b gives W e_k = D(e_k) - D(0); likewise for the encoder."""
    size = model.z_dim
    dec = model.mean_x_given_z(torch.eye(size)) - model.mean_x_given_z(torch.zeros(1, size))
    enc = model.posterior_mean(torch.eye(model.x_dim)) - model.posterior_mean(torch.zeros(1, model.x_dim))
    return dec.T.double(), enc.double()


@torch.inference_mode()
def test_mse(model, x: torch.Tensor) -> float:
    return (model.mean_x_given_z(model.posterior_mean(x)) - x).pow(2).mean().item()


def iterations_to_match(history: dict, target: float, within: float = WITHIN) -> int | None:
    """The first validation iteration whose MSE is within `within` of `target` (None: never)."""
    for it, mse in zip(history.get("val_iteration", []), history.get("val_mse", [])):
        if mse <= (1 + within) * target:
            return it
    return None


def _degrees(angles: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(angles)


def compare(pca: PCA, data, runs: dict[str, Path], size: int) -> dict:
    """Test MSE of PCA, the linear and the ReLU AE at code size `size`; the linear AE's principal angles and
    the iterations it took to come within 1% of PCA's validation MSE."""
    linear, relu = Run(runs["linear"]), Run(runs["relu"])
    model = linear.model()
    dec, enc = affine_maps(model)
    basis = pca.basis(size)
    var = pca.variance(len(data.train_x))
    span = pca.components[:, :int((var >= DATA_SPAN * var[0]).sum())]
    hist = linear.history()
    return {"pca": pca.mse(data.test_x, size), "linear": test_mse(model, data.test_x),
            "relu": test_mse(relu.model(), data.test_x),
            "angles": _degrees(principal_angles(dec, basis)),
            "enc_max": _degrees(principal_angles(enc, basis)).max().item(),
            "enc_span_max": _degrees(principal_angles(span @ (span.T @ enc), basis)).max().item(),
            "span_dims": span.shape[1],
            "match": iterations_to_match(hist, pca.mse(data.val_x, size)), "iters": hist["iteration"][-1],
            "seconds": hist.get("train_seconds"), "history": hist, "val_pca": pca.mse(data.val_x, size)}


# ------------------------------------------------------------------------------ the report's sections
def _gap(a: float, b: float) -> str:
    return f"{a / b - 1:+.2%}"


def linear_section(scores: dict[int, dict], ctx: Context, convergence: Path) -> Section:
    rows = []
    for size, s in scores.items():
        a = s["angles"]
        rows.append([str(size), f"{s['pca']:.5f}", f"{s['linear']:.5f}", _gap(s["linear"], s["pca"]),
                     f"{s['match']:,}" if s["match"] else f"not within {WITHIN:.0%} in {s['iters']:,}",
                     f"{a.max().item():.2f}", f"{a.mean().item():.2f}",
                     f"{s['enc_max']:.1f} / {s['enc_span_max']:.2f}", f"{s['seconds']:.0f}" if s["seconds"] else ""])
    linear_iters, _ = _iters(ctx)
    text = (f"Linear AE: the `ae` model with `hidden=\"\"` (one affine map each way: code W_e x + b_e, reconstruction "
            f"W_d z + b_d), MSE, {linear_iters:,} iterations of batch 100, Adam lr 3e-3 then 3e-4 from epoch 17 "
            f"(`{LINEAR['lr_schedule']}`), on {ctx.mnist()} grey levels. PCA: SVD of the centred training images "
            "(float64); its reconstruction mean + V_L V_L^T (x - mean) is the best rank-L affine map (Eckart-Young), "
            "so the linear AE can at best equal it. Test MSE per pixel. Iterations: the first validation (every "
            f"{LINEAR['eval_every']}) whose MSE is within {WITHIN:.0%} of PCA's on the same validation images. "
            "Principal angles between the decoder's column space and the top-L principal subspace: cosines = "
            "singular values of Q_dec^T Q_pca. Every span of L principal directions is a critical point of the "
            "linear AE's loss and only the top one a minimum (Baldi and Hornik 1989): training can linger near a "
            "saddle, which the larger early step leaves sooner.")
    note = ("The encoder's row space (last column but one) can be far off in the full pixel space without any cost: "
            "its weights on pixels that never vary (the border) get no gradient and keep their random initial "
            "values, and directions of tiny variance barely change the loss. The second number restricts it to the "
            f"data's span: the principal directions with variance at least {DATA_SPAN:g} of the first one's "
            f"({next(iter(scores.values()))['span_dims']} of them).")
    return Section("Linear AE vs PCA: the same subspace", [
        text,
        Table(["L", "PCA test MSE", "linear AE test MSE", "AE vs PCA", "iterations to within 1% (validation)",
               "decoder angle: largest (°)", "decoder angle: mean (°)", "encoder angle: largest, pixels / data span (°)",
               "training (s)"], rows),
        note, Figure(convergence, "Linear AE validation MSE relative to PCA's on the same images, per L; the dashed "
                                  "line is 1%. PCA is optimal on the training images only, so the AE can come out "
                                  "slightly below it on the validation images: such points are drawn at 1e-6")])


def relu_section(scores: dict[int, dict], ctx: Context) -> Section:
    _, relu_iters = _iters(ctx)
    rows = [[str(size), f"{s['pca']:.5f}", f"{s['linear']:.5f}", f"{s['relu']:.5f}", _gap(s["relu"], s["pca"])]
            for size, s in scores.items()]
    return Section("What the non-linear AE adds", [
        f"ReLU AE: the `ae` defaults (MLP 784-128-64-32-L and back, ReLU, MSE, AdamW lr 1e-3), {relu_iters:,} "
        "iterations of batch 100. A non-linear decoder is not bound to a flat subspace: its reconstructions lie on a "
        "curved L-dimensional surface, so the same code size can do better than any linear map, PCA being optimal only "
        "among those.",
        Table(["L", "PCA test MSE", "linear AE test MSE", "ReLU AE test MSE", "ReLU AE vs PCA"], rows)])


# ------------------------------------------------------------------------------ Johnson-Lindenstrauss
@torch.inference_mode()
def jl_distortions(pca: PCA, x: torch.Tensor, runs: dict[int, dict[str, Path]]) -> dict[tuple[str, int], dict]:
    """distortion() of each map, keyed by (map, L): Gaussian random projections and PCA codes at every JL
    size, the linear and ReLU AEs' codes at their trained sizes."""
    gen = torch.Generator().manual_seed(0)
    found = {}
    for size in (s for s in JL_SIZES if s <= x.shape[1]):
        found[("random", size)] = distortion(x, x.double() @ random_projection(x.shape[1], size, gen))
        found[("pca", size)] = distortion(x, pca.encode(x, size))
    for size, pair in runs.items():
        for kind, run in pair.items():
            found[(kind, size)] = distortion(x, Run(run).model().posterior_mean(x))
    return found


def _jl_bound(eps: float) -> str:
    return f"{-0.5 * math.log(1 - eps):.3f}" if eps < 1 else "none (eps ≥ 1)"


def jl_section(found: dict, n: int, figure: Path) -> Section:
    eps = {size: jl_epsilon(size, n) for size in sorted({s for _, s in found})}
    order = list(LABELS_JL)
    rows = [[str(size), LABELS_JL[m], f"{r['median']:.3f}", f"{r['q05']:.3f} - {r['q95']:.3f}",
             f"{r['q95'] / r['q05']:.2f}", f"{r['max_abs_log']:.3f}", f"{r['max_abs_log_median']:.3f}",
             f"{eps[size]:.3f}" if eps[size] < 1 else "≥ 1", _jl_bound(eps[size])]
            for (m, size), r in sorted(found.items(), key=lambda kv: (kv[0][1], order.index(kv[0][0])))]
    text = (f"Ratios ||f(x_i) - f(x_j)|| / ||x_i - x_j|| over all {n * (n - 1) // 2:,} pairs of the first {n:,} test "
            "images (grey levels, 784 pixels). Random projection: x R with R a 784 x L matrix of N(0, 1) entries / "
            "sqrt(L), one draw (seed 0) per L. PCA code: V_L^T (x - mean); AE codes: the encoders' outputs. JL "
            f"epsilon: the smallest eps with L ≥ 4 ln n / (eps²/2 - eps³/3), n = {n:,} (Dasgupta and Gupta; "
            "sklearn's johnson_lindenstrauss_min_dim): with probability at least 1/n a Gaussian projection keeps every "
            "squared distance within [1 - eps, 1 + eps], i.e. |log ratio| ≤ -log(1 - eps)/2; for eps ≥ 1 "
            f"(L < 24 ln n = {24 * math.log(n):.1f}) it says nothing. PCA and AE codes shrink or rescale distances by "
            "construction (a projection; an arbitrary code scale), so compare their spread, which no scale changes: the "
            "typical one (95% / 5% quantile) and the worst pair's (max |log(ratio / median)|).")
    table = Table(["L", "map", "median ratio", "5% - 95%", "95% / 5%", "max |log ratio|", "max |log(ratio / median)|",
                   "JL eps", "JL bound on |log ratio|"], rows)
    return Section("Johnson-Lindenstrauss: how far codes move pairwise distances", [
        text, table, *jl_reading(found, n), Figure(figure, "Distance ratios against code size: median and 5-95% band "
                                                        "(left); the band's width, 95% / 5% quantile (middle); the "
                                                        "worst pair's |log(ratio / median)| and the JL bound (right)")])


LABELS_JL = {"random": "random projection", "pca": "PCA code", "linear": "linear AE code", "relu": "ReLU AE code"}


def _listed(sizes: list[int]) -> str:
    return ", ".join(map(str, sizes)) or "no L"


def jl_reading(found: dict, n: int) -> list[str]:
    """What the table shows, read off its numbers."""
    sizes = sorted(s for m, s in found if m == "random")
    lo, hi = found[("random", sizes[0])], found[("random", sizes[-1])]
    eps = jl_epsilon(sizes[-1], n)
    inside = (f"inside the bound's {-0.5 * math.log(1 - eps):.3f}" if hi["max_abs_log"] <= -0.5 * math.log(1 - eps)
              else f"outside the bound's {-0.5 * math.log(1 - eps):.3f}") if eps < 1 else "where the bound says nothing"
    width = {key: r["q95"] / r["q05"] for key, r in found.items()}
    band = _listed([s for s in sizes if width[("pca", s)] < width[("random", s)]])
    worst = _listed([s for s in sizes
                     if found[("pca", s)]["max_abs_log_median"] < found[("random", s)]["max_abs_log_median"]])
    return [f"- Random projections: median ratio {lo['median']:.3f} at L = {sizes[0]} and {hi['median']:.3f} at "
            f"L = {sizes[-1]} (E ratio² = 1); the 5-95% band narrows from {lo['q05']:.2f}-{lo['q95']:.2f} to "
            f"{hi['q05']:.2f}-{hi['q95']:.2f}, roughly as 1/sqrt(L). The worst pair's |log ratio| at L = {sizes[-1]} "
            f"is {hi['max_abs_log']:.3f}, {inside}: the bound is a guarantee for any {n:,} points (a union bound "
            "over all pairs), so on one data set it is loose.\n"
            f"- PCA codes shrink distances (median {found[('pca', sizes[0])]['median']:.3f} at L = {sizes[0]}, "
            f"{found[('pca', sizes[-1])]['median']:.3f} at L = {sizes[-1]}: they drop the discarded directions' "
            f"share). About that scale, the typical spread (95% / 5%) is narrower than a random projection's at "
            f"L = {band}, the worst pair closer at L = {worst}: most pairs differ mainly along the "
            "leading principal directions, which PCA keeps and a random projection only samples, while a pair that "
            "differs mostly in the discarded directions is crushed whatever the map.\n"
            "- The AE codes have no fixed scale (their median ratio only reflects it); their spread is the comparable "
            "number, beside PCA's and the random projection's at the same L."]


# ------------------------------------------------------------------------------ the recipe
@torch.inference_mode()
def figures_section(pca: PCA, data, runs: dict[int, dict[str, Path]], out: Path, n: int = 10) -> Section:
    size = FIGURE_SIZE if FIGURE_SIZE in runs else next(iter(runs))
    linear, relu = Run(runs[size]["linear"]).model(), Run(runs[size]["relu"]).model()
    shape = data.image_shape
    components_figure(pca.basis(size), affine_maps(linear)[0], out / "components.png", shape)
    x = data.test_x[:n]
    rows = [x, pca.reconstruct(x, size), linear.mean_x_given_z(linear.posterior_mean(x)),
            relu.mean_x_given_z(relu.posterior_mean(x))]
    reconstructions_figure(rows, out / "reconstructions.png", shape)
    return Section(f"Components and reconstructions at L = {size}", [
        "The linear AE's decoder columns are some basis of the principal subspace, not the components themselves (the "
        "loss sees only the subspace: any invertible L x L map between encoder and decoder gives the same "
        "reconstructions); rotated onto the components (orthogonal Procrustes) they match them.",
        Figure(out / "components.png", f"Top {size} principal components (top row), the linear AE's decoder columns "
                                       "scaled to unit norm (middle) and an orthonormal basis of their span rotated "
                                       "onto the components (bottom)"),
        Figure(out / "reconstructions.png", f"The first {n} test images (top row) and their reconstructions at "
                                            f"L = {size}: PCA, linear AE, ReLU AE (rows 2-4)")])


def ae_pca_mnist(ctx: Context) -> list[Section]:
    sizes = QUICK_SIZES if ctx.quick else SIZES
    runs = {size: _train(ctx, size) for size in sizes}
    data = Run(runs[sizes[0]]["linear"]).data()
    ctx.log(f"PCA: SVD of the centred training images ({len(data.train_x):,} x {data.x_dim})")
    pca = fit_pca(data.train_x)
    scores = {size: compare(pca, data, runs[size], size) for size in sizes}
    convergence = convergence_figure(scores, ctx.out / "convergence.png")
    n = min(JL_POINTS, len(data.test_x))
    ctx.log(f"Johnson-Lindenstrauss: pairwise distances of {n:,} test images")
    found = jl_distortions(pca, data.test_x[:n], runs)
    eps = {size: jl_epsilon(size, n) for size in JL_SIZES}
    jl = jl_figure(found, eps, ctx.out / "jl-distortion.png")
    return [linear_section(scores, ctx, convergence), relu_section(scores, ctx), jl_section(found, n, jl),
            figures_section(pca, data, runs, ctx.out)]


RECIPES = {
    "ae-pca-mnist": Recipe("Linear AE vs PCA at L = 2, 10, 30 (test MSE, principal angles), the ReLU AE beside them, "
                           "Johnson-Lindenstrauss distance distortion of random projections / PCA / AE codes",
                           ae_pca_mnist, ("mnist",), ("mnist-5k",)),
}
