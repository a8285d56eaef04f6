"""The semi-supervised configurations tried on MNIST with 100 labels, one table row per run folder.

Each row is read from the run's own config.json and metrics.json (test accuracy on the fixed
binarization and on the grey test images, mean +/- SE over the run's seeds, and the NELBO), with
the `vaelab train` command that trains the same configuration.

    python benchmarks/ssvae_table.py runs/bench-ssvae runs/bench-m1m2 ... --name ssvae-exploration
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common import save, train_command

from vaelab.storage import read_json


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--name", default="ssvae-exploration")
    args = ap.parse_args()
    rows, payload = [], []
    for run in args.runs:
        cfg, metrics = read_json(run / "config.json"), read_json(run / "metrics.json")
        s, n = metrics["mean_se"], len(metrics["per_seed"])
        pm = lambda k: f"{s[k]['mean']:.4f}" + (f" ± {s[k]['se']:.4f}" if n > 1 else "")  # noqa: E731
        rows.append(f"| `{train_command(cfg, list(metrics['per_seed']))}` | {n} | {pm('accuracy')} | {pm('accuracy_grey')} | "
                    f"{s['nelbo']['mean']:.2f} |")
        payload.append({"run": str(run), "config": cfg, "mean_se": s, "seeds": n})
    md = ("# Semi-supervised MNIST, 100 labels: configurations tried\n\n"
          "Test accuracy of q(y|x) on the 10,000 test images (binarized with the fixed seed, and grey), "
          "mean ± SE over seeds where there are several; NELBO of the whole model on the binarized test set "
          "(for m1m2: the stacked model's bound on -log p(x); gw = 0 trains no generative model, so its NELBO is that "
          "of untrained networks). Options not shown are the model's defaults "
          "(`vaelab train MODEL --help`).\n\n"
          "| configuration | seeds | accuracy | accuracy (grey) | NELBO |\n|---|---|---|---|---|\n"
          + "\n".join(rows) + "\n")
    save(args.name, {"runs": payload}, md)


if __name__ == "__main__":
    main()
