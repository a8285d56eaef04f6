"""M1+M2 with M1 trained long: test accuracy (100 labels) against M1's training time.

M1 is a `vae` run (latent 50, hidden 600-600: Kingma et al.'s M1) trained on dynamically binarized
MNIST with a time budget, KL warm-up and a per-epoch learning-rate decay; each budget in `--m1-minutes`
continues the same run (`--resume` with a longer `--time-budget`), and a copy of the run folder at
that budget is what the M1+M2 runs of that budget take their M1 from (`--m1-run`), so a later
extension never changes the M1 of a finished row. For every budget and seed an M1+M2 run then trains
M2 alone (`--m1-iters 0`) for `--iters` iterations on the frozen M1, and its test accuracy on the
10,000 test images is recorded (binarized with the fixed seed, and grey). One M1 (seed 0) serves
every M2 seed; the 100 labelled images are the same in every seed (label seed 0), as in the default
M1+M2 benchmark (m1m2-mnist.md). Results: benchmarks/results/m1m2-long.{json,md}; a later call adds
rows.

    python benchmarks/m1m2_long.py --m1-minutes 20 --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import shutil
from datetime import datetime
from pathlib import Path

import torch
from common import DEFAULT_DATA, RESULTS, command_line
from likelihood_race import cpu_model, matmul_gflops

import vaelab
from vaelab.runs import mean_se

NAME = "m1m2-long"
M1 = dict(z_dim=50, hidden="600,600", warmup=5, lr_schedule="exp:0.99")   # Kingma et al.'s M1 networks


def train_m1(minutes: float, args) -> Path:
    """runs/m1m2-long/m1 trained (or continued) to `minutes` of training time; a copy of it at that budget."""
    out = Path(args.out) / "m1"
    vaelab.train("vae", dataset="mnist", data_dir=args.data_dir, seeds=[0], out=out, resume=out.exists(),
                 epochs=3280, time_budget=f"{minutes:g}m", threads=args.threads, iwae_k=[1], eval_repeats=1,
                 progress=not args.no_progress, **M1)
    frozen = Path(args.out) / f"m1-{minutes:g}min"
    if not frozen.exists():
        shutil.copytree(out, frozen, ignore=shutil.ignore_patterns("*.lock"))
    return frozen


def train_m2(m1: Path, minutes: float, seed: int, args) -> dict:
    """An M1+M2 run on the frozen M1 for one seed, and what the table needs from it and from M1."""
    out = Path(args.out) / f"m1-{minutes:g}min-m2-seed{seed}"
    run = vaelab.train("m1m2", dataset="mnist", data_dir=args.data_dir, seeds=[seed], out=out, resume=True,
                       iters=args.iters, m1_run=str(m1), m1_iters=0, threads=args.threads, iwae_k=[1],
                       eval_repeats=1, progress=not args.no_progress)
    m1_run = vaelab.load_run(m1)
    m1_hist = m1_run.history(0)
    steps = len(m1_run.data().train_x) // m1_run.config.batch_size
    got = run.per_seed()[seed]
    return {"m1_minutes": minutes, "seed": seed, "m1_epochs": m1_hist.get("iterations_run", m1_hist["iteration"][-1]) / steps,
            "m1_train_seconds": m1_hist["train_seconds"], "m1_test_nelbo": m1_run.per_seed()[0]["nelbo"],
            "m2_iters": args.iters, "m2_train_seconds": got["train_seconds"], "accuracy": got["accuracy"],
            "accuracy_grey": got["accuracy_grey"], "nelbo": got["nelbo"], "run": str(out), "m1_run": str(m1)}


def write_markdown(doc: dict, results: Path) -> None:
    rows = sorted(doc["results"].values(), key=lambda r: (r["m1_minutes"], r["seed"]))
    md = ["# M1+M2 with M1 trained long: test accuracy against M1's training time", "",
          "MNIST, 100 labels (10 per class, label seed 0), test accuracy of q(y | z1 = mean of q(z1 | x)) on the "
          "10,000 test images, binarized with the fixed seed and grey. M1: `vae` with latent 50, hidden 600-600, "
          "KL warm-up 5 epochs, lr x 0.99 per epoch, trained with `--time-budget` on dynamically binarized MNIST "
          "(one M1, seed 0, continued from budget to budget). M2: `m1m2 --m1-run M1 --m1-iters 0` (every iteration "
          "trains M2 on the frozen M1), default networks and weights. Kingma et al. (2014) report 0.967 for M1+M2.",
          "", "| M1 minutes | M1 epochs | M1 train s | M1 test NELBO | seed | M2 iterations | M2 train s | "
          "stacked NELBO | **accuracy** | accuracy (grey) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['m1_minutes']:g} | {r['m1_epochs']:.0f} | {r['m1_train_seconds']:.0f} | "
                  f"{r['m1_test_nelbo']:.2f} | {r['seed']} | {r['m2_iters']} | {r['m2_train_seconds']:.0f} | "
                  f"{r['nelbo']:.2f} | **{r['accuracy']:.4f}** | {r['accuracy_grey']:.4f} |")
    md += ["", "| M1 minutes | M1 epochs | seeds | **accuracy, mean ± SE** | accuracy (grey), mean ± SE | "
           "M2 train s, median |", "|---|---|---|---|---|---|"]
    for minutes in sorted({r["m1_minutes"] for r in rows}):
        group = [r for r in rows if r["m1_minutes"] == minutes]
        acc, grey = mean_se([r["accuracy"] for r in group]), mean_se([r["accuracy_grey"] for r in group])
        m2 = sorted(r["m2_train_seconds"] for r in group)
        md.append(f"| {minutes:g} | {group[0]['m1_epochs']:.0f} | {len(group)} | **{acc[0]:.4f} ± {acc[1]:.4f}** | "
                  f"{grey[0]:.4f} ± {grey[1]:.4f} | {m2[len(m2) // 2]:.0f} |")
    md += ["", "Machines: " + "; ".join(sorted({r["machine"] for r in rows})), "",
           "Commands: " + "; ".join(f"`{c}`" for c in sorted({r["command"] for r in rows})) + " "
           f"(last written {datetime.now().isoformat(timespec='seconds')})", ""]
    (results / f"{NAME}.md").write_text("\n".join(md))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m1-minutes", type=float, nargs="+", default=[20],
                    help="M1's training-time budgets, ascending: one M1 run continued from each to the next")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="M2 seeds per M1 budget")
    ap.add_argument("--iters", type=int, default=30_000, help="M2's training iterations")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--out", default="runs/m1m2-long")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--results", default=str(RESULTS), help="folder of the results files")
    args = ap.parse_args()
    if args.m1_minutes != sorted(args.m1_minutes):
        ap.error("--m1-minutes: give the budgets in ascending order (each continues the M1 run of the one before)")
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{NAME}.json"
    doc = json.loads(path.read_text()) if path.exists() else {"results": {}}
    machine = (f"{cpu_model()}, {args.threads} thread(s), torch {torch.__version__}, 1000x300 @ 300x784 float32 "
               f"products at {matmul_gflops(args.threads):.0f} GFLOP/s")
    for minutes in args.m1_minutes:
        m1 = train_m1(minutes, args)
        for seed in args.seeds:
            r = train_m2(m1, minutes, seed, args)
            r.update(machine=machine, command=command_line(), date=datetime.now().isoformat(timespec="seconds"))
            doc["results"][f"{minutes:g}/{seed}"] = r
            path.write_text(json.dumps(doc, indent=2) + "\n")   # after every seed: a long call keeps what it did
            write_markdown(doc, results)
            print(f"M1 {minutes:g} min, seed {seed}: accuracy {r['accuracy']:.4f} (grey {r['accuracy_grey']:.4f})")


if __name__ == "__main__":
    main()
