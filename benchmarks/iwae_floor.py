"""How close is the IWAE-k evaluation to this machine's floor for it?

The floor of evaluating log (1/k) sum_i p(x, z_i) / q(z_i | x) for the default VAE is its decoder's
matrix products plus the Bernoulli log-likelihood's elementwise work, for every one of the
N x k decoder rows: each part is timed here on its own, at exactly the shapes the evaluation uses
(IWAE_ROWS_PER_PASS rows per pass), best of several repeats, and multiplied out. The evaluation
itself (vaelab.evaluate.evaluate_iwae, encoder, sampling, prior and posterior densities and the
log-mean-exp included) is then timed on the first N test images; the ratio is the distance from
the floor (the issue's target: within 1.5x).

    python benchmarks/iwae_floor.py --images 200 --k 5000 --threads 2
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from common import save
from likelihood_race import cpu_model

from vaelab.evaluate import IWAE_ROWS_PER_PASS, evaluate_iwae
from vaelab.models import build_model


def best_time(fn, repeats: int = 7, inner: int = 20) -> float:
    """The fastest of `repeats` timings of `inner` calls, per call (seconds)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner)
    return min(times)


def floor_per_pass(model, rows: int) -> dict:
    """Seconds per pass of `rows` decoder rows: each decoder product, and the Bernoulli log-likelihood's
    elementwise pass (x * logits - softplus(logits), summed over pixels)."""
    linears = [m for m in model.dec.modules() if isinstance(m, torch.nn.Linear)]
    parts = {}
    for i, lin in enumerate(linears):
        h = torch.randn(rows, lin.in_features)
        parts[f"product {lin.in_features}x{lin.out_features}"] = best_time(lambda: F.linear(h, lin.weight, lin.bias))
    logits = torch.randn(rows, model.x_dim)
    x = torch.bernoulli(torch.rand(1, model.x_dim))
    parts["Bernoulli log-likelihood"] = best_time(lambda: (x * logits - F.softplus(logits)).sum(-1))
    return parts


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200, help="test images evaluated (the time scales linearly)")
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model("vae", 784).eval()   # timings do not depend on the weights' values
    x = torch.bernoulli(torch.rand(args.images, 784))
    rows = IWAE_ROWS_PER_PASS
    parts = floor_per_pass(model, rows)
    passes = args.images * args.k / rows
    floor = passes * sum(parts.values())
    measured = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        evaluate_iwae(model, x, args.k, progress=False)
        measured.append(time.perf_counter() - t)
    measured.sort()
    median = measured[len(measured) // 2]
    ratio = median / floor
    full = 10_000 / args.images
    machine = f"{cpu_model()}, {args.threads} thread(s), torch {torch.__version__}"
    rows_md = "\n".join(f"| {name} | {s * 1e3:.3f} | {s * passes:.2f} |" for name, s in parts.items())
    md = (f"# IWAE-{args.k} evaluation of the default VAE against its arithmetic floor\n\n"
          f"{machine}. {args.images} test images x k = {args.k} = {args.images * args.k:,} decoder rows in passes of "
          f"{rows}.\n\n| floor part | ms per pass | s in all |\n|---|---|---|\n{rows_md}\n"
          f"| **floor** | {sum(parts.values()) * 1e3:.3f} | **{floor:.2f}** |\n\n"
          f"Measured evaluate_iwae: median {median:.2f} s (min {measured[0]:.2f}, max {measured[-1]:.2f}, "
          f"{args.repeats} runs): **{ratio:.2f}x the floor** (target: within 1.5x). For the full 10,000-image test "
          f"set: about {median * full / 60:.1f} minutes (floor {floor * full / 60:.1f}).\n")
    save("iwae-floor", {"machine": machine, "images": args.images, "k": args.k, "rows_per_pass": rows,
                        "floor_parts_s_per_pass": parts, "floor_s": floor, "measured_s": measured, "ratio": ratio}, md)
    print(md)


if __name__ == "__main__":
    main()
