"""One-class anomaly detection: for each class c, train on class c only, score the whole test set
(the other classes are the anomalies) and report the ROC AUC per class and its mean.

    python benchmarks/one_class.py --dataset mnist --model ae --iters 2000 --threads 1
    python benchmarks/one_class.py --dataset mnist --model vae --opt likelihood=bernoulli --iters 2000

Writes benchmarks/results/one-class-DATASET-MODEL.{json,md} (or --name). Scores: reconstruction
MSE for autoencoders, NELBO for VAEs (vaelab.runs.commands.score_run, the code behind `vaelab score`).
References (MNIST, mean AUC over the 10 classes, Ruff et al. 2018): convolutional AE 0.92, Deep SVDD 0.95.
"""
from __future__ import annotations

import argparse
import ast
import time

from common import DEFAULT_DATA, save

from vaelab.recipes.blocks import one_class_aucs


def _value(s: str):
    try:
        return ast.literal_eval(s)
    except (ValueError, SyntaxError):
        return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--model", default="ae")
    ap.add_argument("--opt", nargs="*", default=[], help="model options as name=value")
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--binarize", default="auto")
    ap.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=f"runs/bench-one-class-{int(time.time())}")
    ap.add_argument("--name")
    args = ap.parse_args()
    options = {k: _value(v) for k, v in (o.split("=", 1) for o in args.opt)}
    t0 = time.perf_counter()
    aucs = one_class_aucs(args.out, args.dataset, args.classes, model=args.model, options=options, iters=args.iters,
                          batch_size=args.batch_size, lr=args.lr, binarize=args.binarize, seed=args.seed,
                          data_dir=args.data_dir, threads=args.threads)
    wall = time.perf_counter() - t0
    mean = sum(aucs.values()) / len(aucs)
    opts = ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"
    name = args.name or f"one-class-{args.dataset}-{args.model}"
    md = (f"# One-class anomaly detection on {args.dataset}: {args.model} ({opts})\n\n"
          f"For each class c: train on the training images of class c only ({args.iters} iterations, batch "
          f"{args.batch_size}, lr {args.lr}, seed {args.seed}, {args.threads} thread(s)), score all 10,000 test images "
          f"(score: reconstruction MSE for autoencoders, NELBO for VAEs), ROC AUC with class c as normal.\n"
          f"Wall time {wall:.0f} s.\n\n"
          "| class | " + " | ".join(str(c) for c in aucs) + " | **mean** |\n"
          + "|---" * (len(aucs) + 2) + "|\n"
          + "| AUC | " + " | ".join(f"{a:.4f}" for a in aucs.values()) + f" | **{mean:.4f}** |\n\n"
          "Published references (MNIST, mean over classes; Ruff et al. 2018): convolutional AE 0.92, Deep SVDD 0.95.\n")
    save(name, {"dataset": args.dataset, "model": args.model, "options": options, "iters": args.iters,
                "auc_per_class": aucs, "mean_auc": mean, "wall_seconds": wall}, md)


if __name__ == "__main__":
    main()
