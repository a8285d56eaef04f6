"""Judge a trained conditional run's samples class by class, with the project's judge.

Draws --per-class class-conditional samples per class from the run's first seed and records,
for each class, the share the judge assigns to the requested class beside the judge's own
accuracy on the real test images of that class.

    python benchmarks/judge_run.py runs/rep-cvae/cvae --per-class 500 --name cvae-fashion-by-class
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from common import DEFAULT_DATA, save

from vaelab.judge import sample_quality
from vaelab.runs.run import Run
from vaelab.judge import run_judge


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--per-class", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0, help="seed of the sample draw")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", required=True, help="results file name")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = Run(args.run).config
    cfg.data_dir = args.data_dir or cfg.data_dir
    judge, acc, real = run_judge(cfg, torch.device("cpu"))   # the judge every run uses, and its per-class accuracy
    model = Run(args.run).model()
    if not model.conditional:
        raise SystemExit(f"{args.run}: {type(model).__name__} is not a conditional model; nothing to judge per class")
    torch.manual_seed(args.seed)
    q = sample_quality(model.eval(), judge, len(real), args.per_class)
    hit, overall = q["sample_class_accuracy_by_class"], q["sample_class_accuracy"]
    side = math.isqrt(judge.net[0].in_features)   # the (square) images the judge and the model see
    rows = [f"| {name} | {got:.3f} | {r:.3f} |" for (name, r), got in zip(real.items(), hit)]
    md = (f"# Class-conditional samples judged class by class: {args.run}\n\n"
          f"{cfg.model} on {cfg.dataset} ({side}x{side}); {args.per_class} samples z ~ N(0, I) per class, decoded with "
          f"the requested label (Bernoulli means). Judge: the project's MLP judge, accuracy {acc:.4f} on the real "
          f"test images.\n\n"
          f"Overall: samples judged as the requested class {overall:.4f}; the judge on the real test images "
          f"{acc:.4f}.\n\n"
          "| class | samples judged as the class | the judge on real test images of the class |\n|---|---|---|\n"
          + "\n".join(rows) + "\n")
    save(args.name, {"run": str(args.run), "per_class": args.per_class, "overall": overall,
                     "judge_test_accuracy": acc, "by_class": dict(zip(real, hit)), "judge_by_class": real}, md)


if __name__ == "__main__":
    main()
