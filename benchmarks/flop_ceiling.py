"""How fast could each model's default training step be on this CPU? A ceiling from arithmetic alone.

Counts the floating-point operations of one default training step (forward and backward of
model.loss at batch 100, MNIST-shaped input; torch.utils.flop_counter, which counts matrix
products and convolutions) and divides by the matrix-product rate this machine reaches (a
1024x1024 float32 product) at 1 and 2 threads. No step can beat that ceiling, whatever else it
saves; the measured rates are read from benchmarks/results/speed.json.

    python benchmarks/flop_ceiling.py --models vae gmvae ssvae cvae
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from common import RESULTS, save
from torch.utils.flop_counter import FlopCounterMode

from vaelab.models import build_model


def matmul_rate(threads: int) -> float:
    torch.set_num_threads(threads)
    a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
    for _ in range(5):
        a @ b
    t, n = time.perf_counter(), 30
    for _ in range(n):
        a @ b
    return 2 * 1024 ** 3 * n / (time.perf_counter() - t) / 1e9


def step_flops(name: str, **options) -> float:
    torch.manual_seed(0)
    model = build_model(name, 784, **options)
    x, y = torch.bernoulli(torch.rand(100, 784)), torch.arange(100) % 10
    kwargs = {"labelled": (x, y)} if model.labels_per_class else {}
    with FlopCounterMode(display=False) as counter:
        loss, _ = model.loss(x, y, **kwargs)
        loss.backward()
    return counter.get_total_flops()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["vae", "gmvae", "ssvae", "cvae"])
    ap.add_argument("--race", action="store_true", help="instead: FLOPs per step of the likelihood race's "
                    "configurations (benchmarks/likelihood_race.py), and of the IWAE objective at K = 50")
    args = ap.parse_args()
    if args.race:
        return race_flops()
    rates = {t: matmul_rate(t) for t in (1, 2)}
    measured = {(r["model"], r["threads"]): r["iters_per_second"]
                for r in json.loads((RESULTS / "speed.json").read_text())["rows"]}
    rows = {}
    for name in args.models:
        f = step_flops(name)
        rows[name] = {"gflop_per_step": f / 1e9, **{f"ceiling_{t}": rates[t] * 1e9 / f for t in rates},
                      **{f"measured_{t}": measured.get((name, t)) for t in rates}}

    def cell(v):
        return f"{v:.0f}" if v is not None else "not timed"
    md = ("# Arithmetic ceiling of each model's default training step on this CPU\n\n"
          f"Matrix-product rate (1024x1024 float32): {rates[1]:.1f} GFLOP/s at 1 thread, {rates[2]:.1f} at 2. "
          "FLOPs of one step (forward + backward of the training loss, batch 100, counted by "
          "torch.utils.flop_counter: matrix products and convolutions only). Ceiling = rate / FLOPs: no step runs faster, "
          "whatever else it saves. Measured rates: benchmarks/results/speed.md.\n\n"
          "| model | GFLOP per step | ceiling it/s, 1 thread | measured, 1 thread | ceiling it/s, 2 threads | measured, 2 threads |\n"
          "|---|---|---|---|---|---|\n"
          + "".join(f"| {n} | {r['gflop_per_step']:.3f} | {r['ceiling_1']:.0f} | {cell(r['measured_1'])} | "
                    f"{r['ceiling_2']:.0f} | {cell(r['measured_2'])} |\n" for n, r in rows.items()))
    save("flop-ceiling", {"matmul_gflops": rates, "models": rows}, md)


def race_flops() -> None:
    """GFLOP per training step of each race configuration's model (the training options cost nothing)."""
    from likelihood_race import CONFIGS

    model_keys = {"z_dim", "k", "iw_k", "hidden"}
    configs = {"vae (default)": ("vae", {}), **{n: (m, {k: v for k, v in o.items() if k in model_keys})
                                               for n, (m, o) in CONFIGS.items()},
               "iwae50-z32": ("vae", {"z_dim": 32, "iw_k": 50}), "hvae (K = 1)": ("hvae", {})}
    rows = {n: step_flops(m, **o) / 1e9 for n, (m, o) in configs.items()}
    md = ("# FLOPs per training step of the likelihood race's configurations\n\n"
          "Forward + backward of the training loss at batch 100, MNIST-shaped input, counted by "
          "torch.utils.flop_counter (matrix products and convolutions). Warm-up and schedules cost nothing.\n\n"
          "| configuration | model options | GFLOP per step |\n|---|---|---|\n"
          + "".join(f"| {n} | {configs[n][0]} {configs[n][1] or ''} | {g:.3f} |\n" for n, g in rows.items()))
    save("flop-race", {"gflop_per_step": rows}, md)


if __name__ == "__main__":
    main()
