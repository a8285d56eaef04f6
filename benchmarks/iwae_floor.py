"""How close is the IWAE-k evaluation to this machine's floor for it?

The floor of evaluating log (1/k) sum_i p(x, z_i) / q(z_i | x) for the default VAE is its decoder's
matrix products plus the Bernoulli log-likelihood's elementwise work, for every one of the
N x k decoder rows: each part is timed here on its own, at exactly the shapes the evaluation uses
(IWAE_ROWS_PER_PASS rows per pass), best of several repeats, before and after the evaluation (the
lower of the two), and multiplied out. The evaluation itself (vaelab.evaluate.evaluate_niwae, encoder,
sampling, prior and posterior densities and the log-mean-exp included) is timed on the first N test
images; the ratio is the distance from the floor (the issue's target: within 1.5x).

The likelihood race's other models (--model) add their own per-sample work to the floor: the
VampPrior's mixture density (two float32 products of the samples with the K components' means and
precisions, and the log-sum-exp over K), and the two-layer model's q(z2 | z1) and p(z1 | z2)
networks, which run once per sample like its decoder p(x | z1).

    python benchmarks/iwae_floor.py --images 200 --k 5000 --threads 2
    python benchmarks/iwae_floor.py --model vamp --images 200 --k 5000 --threads 2
    python benchmarks/iwae_floor.py --device cuda --images 10000 --k 5000   # a GPU: the whole test set
    python benchmarks/iwae_floor.py --run runs/race/vamp-z40-warmup-exp-seed0 --images 200 --k 5000
    python benchmarks/iwae_floor.py --run runs/race/vamp-z40-warmup-exp-seed0 --images 200 --k 5000 --compile

By default the model has its initial random weights and the images are random draws. The time of exp()
depends on the values (arguments far below zero, as a trained mixture prior's far components give, take
a slow path), so --run times a trained run's model (its first seed) on its own test images instead.

On a GPU every part is timed between CUDA synchronisations, and a pass holds IWAE_ROWS_PER_PASS_GPU rows
(--rows sets another size, to see what the pass size costs).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import RESULTS, save
from likelihood_race import cpu_model

import vaelab
from vaelab.densities import log_bernoulli_with_logits
from vaelab.evaluate import evaluate_niwae
from vaelab.models import build_model
from vaelab.models.base import iwae_rows_per_pass
from vaelab.models.gmvae import VampVAE


def sync() -> None:
    """Wait for the GPU's queued work (nothing on a CPU), so that a timer reads finished work."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def best_time(fn, repeats: int = 7, inner: int = 20) -> float:
    """The fastest of `repeats` timings of `inner` calls, per call (seconds)."""
    fn()
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        times.append((time.perf_counter() - t) / inner)
    return min(times)


# model -> (options as in the likelihood race, the networks that run once per importance sample)
MODELS = {"vae": ({}, ("dec",)), "vamp": ({"z_dim": 40, "k": 500}, ("dec",)),
          "hvae": ({}, ("q_z2", "p_z1", "p_x"))}


def floor_per_pass(model, rows: int, per_sample: tuple[str, ...], device: torch.device) -> dict:
    """Seconds per pass of `rows` sample rows: each product of the per-sample networks, the Bernoulli
    log-likelihood's elementwise passes (x * logits - softplus(logits), summed over pixels, as
    vaelab.densities computes it), and for a
    mixture prior its density's products and log-sum-exp over the components."""
    parts = {}
    for name in per_sample:
        for lin in (m for m in getattr(model, name).modules() if isinstance(m, torch.nn.Linear)):
            h = torch.randn(rows, lin.in_features, device=device)
            key = f"{name} product {lin.in_features}x{lin.out_features}"
            parts[key] = parts.get(key, 0.0) + best_time(lambda: F.linear(h, lin.weight, lin.bias))
    logits = torch.randn(rows, model.x_dim, device=device)
    x = torch.bernoulli(torch.rand(1, model.x_dim, device=device))
    parts["Bernoulli log-likelihood"] = best_time(lambda: log_bernoulli_with_logits(x, logits))   # the library's form
    if isinstance(model, VampVAE):   # the VampPrior: log (1/K) sum_k N(z; m_k, v_k) per sample
        z, a = torch.randn(rows, model.z_dim, device=device), torch.randn(model.k, model.z_dim, device=device)
        parts[f"prior products {model.z_dim}x{model.k} (two)"] = 2 * best_time(lambda: z @ a.t())
        quad = torch.randn(rows, model.k, device=device)
        parts[f"prior log-sum-exp over {model.k}"] = best_time(lambda: torch.logsumexp(quad, -1))
    return parts


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=MODELS, help="the default VAE (default), or a likelihood-race model")
    ap.add_argument("--run", type=Path, help="time this trained run's model (its first seed) on its test images instead")
    ap.add_argument("--images", type=int, default=200, help="test images evaluated (the time scales linearly)")
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--rows", type=int, default=None, help="decoder rows per pass (default: the device's, "
                    "iwae_rows_per_pass)")
    ap.add_argument("--compile", action="store_true", help="time evaluate_niwae(compile=True): the passes compiled "
                    "by torch.compile (the one-off compile, timed apart, is left out of the runs timed)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the results files")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA GPU is visible to PyTorch")
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.run and args.model:
        ap.error("--run times the run's own model: leave --model out")
    if args.run:
        run = vaelab.load_run(args.run)
        model_name, options = run.config.model, run.config.model_options
        if model_name not in MODELS:
            ap.error(f"--run {args.run}: a run of {model_name}; this benchmark knows {', '.join(MODELS)}")
        model = run.model(device=args.device)   # its first seed
        x = run.test_data(args.device)[0][:args.images]
        n_images = len(x)   # a test set smaller than --images
    else:   # initial weights, random images
        model_name, n_images = args.model or "vae", args.images
        options = MODELS[model_name][0]
        model = build_model(model_name, 784, **options).to(device).eval()
        x = torch.bernoulli(torch.rand(n_images, 784, device=device))
    per_sample = MODELS[model_name][1]
    rows = args.rows or iwae_rows_per_pass(device)
    # the floor parts are timed before and after the evaluation and each takes the lower: a slow state of
    # the machine (an elementwise part has been seen at 3x its usual time for a whole run) must not lower
    # the ratio by inflating the floor
    before = floor_per_pass(model, rows, per_sample, device)
    passes = n_images * args.k / rows
    compile_s = None
    if args.compile:   # compiled once here, on one image: the runs timed below reuse the compiled code
        t = time.perf_counter()
        evaluate_niwae(model, x[:1], args.k, progress=False, rows_per_pass=rows, compile=True)
        compile_s = time.perf_counter() - t
    measured = []
    for _ in range(args.repeats):
        sync()
        t = time.perf_counter()
        evaluate_niwae(model, x, args.k, progress=False, rows_per_pass=rows, compile=args.compile)
        measured.append(time.perf_counter() - t)
    measured.sort()
    after = floor_per_pass(model, rows, per_sample, device)
    parts = {name: min(s, after[name]) for name, s in before.items()}
    floor = passes * sum(parts.values())
    median = measured[len(measured) // 2]
    ratio = median / floor
    full = 10_000 / n_images
    machine = (f"{torch.cuda.get_device_name(device)} (CPU {cpu_model()})" if device.type == "cuda"
               else f"{cpu_model()}, {args.threads} thread(s)") + f", torch {torch.__version__}"
    rows_md = "\n".join(f"| {name} | {s * 1e3:.3f} | {s * passes:.2f} |" for name, s in parts.items())
    what = "the default VAE" if model_name == "vae" else f"{model_name} ({', '.join(f'{k}={v}' for k, v in options.items()) or 'defaults'})"
    what += f", trained ({args.run}, its first seed and test images)" if args.run else ", initial weights, random images"
    what += ", compiled (evaluate_niwae(compile=True))" if args.compile else ""
    md = (f"# IWAE-{args.k} evaluation of {what} against its arithmetic floor\n\n"
          f"{machine}. {n_images} test images x k = {args.k} = {n_images * args.k:,} sample rows in passes of "
          f"{rows}.\n\n| floor part | ms per pass | s in all |\n|---|---|---|\n{rows_md}\n"
          f"| **floor** | {sum(parts.values()) * 1e3:.3f} | **{floor:.2f}** |\n\n"
          f"Measured evaluate_niwae: median {median:.2f} s (min {measured[0]:.2f}, max {measured[-1]:.2f}, "
          f"{args.repeats} runs): **{ratio:.2f}x the floor** (target: within 1.5x)."
          + (f" The one-off compile took {compile_s:.1f} s (with one image), not counted." if args.compile else "")
          + f" For the full 10,000-image test "
          f"set: about {_duration(median * full)} (floor {_duration(floor * full)}).\n")
    name = "iwae-floor" + ("" if model_name == "vae" else f"-{model_name}") + ("-gpu" if device.type == "cuda" else "")
    name += f"-rows{args.rows}" if args.rows else ""
    name += f"-{args.run.name}" if args.run else ""
    name += "-compiled" if args.compile else ""
    save(name, {"model": model_name, "run": str(args.run) if args.run else None, "device": args.device, "machine": machine, "images": n_images, "k": args.k, "rows_per_pass": rows,
                "floor_parts_s_per_pass": parts, "floor_parts_before_after": {"before": before, "after": after},
                "floor_s": floor, "measured_s": measured, "ratio": ratio,
                "compiled": args.compile, "compile_s": compile_s}, md,
         folder=args.results)
    print(md)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} minutes" if seconds >= 120 else f"{seconds:.1f} s"


if __name__ == "__main__":
    main()
