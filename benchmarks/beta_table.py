"""beta-VAE on binarized MNIST: how KL and Rec trade off as beta moves (beta in {0.5, 1, 2, 4}).

    python benchmarks/beta_table.py --data-dir ../shared/data [--seeds 0] [--threads 1]

Writes benchmarks/results/beta-table.{json,md}. NELBO is always the true bound (Rec + KL).
"""
from __future__ import annotations

import argparse
import json
import time

from common import DEFAULT_DATA, save

from vaelab.config import TrainConfig
from vaelab.runs.train import train_run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--betas", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--iters", type=int, default=20_000)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=f"runs/bench-beta-{int(time.time())}")
    args = ap.parse_args()
    rows = {}
    for beta in args.betas:
        cfg = TrainConfig(model="vae", dataset="mnist", data_dir=args.data_dir, out=f"{args.out}/beta-{beta:g}",
                          seeds=args.seeds, iters=args.iters, iwae_k=[100], threads=args.threads,
                          model_options={"beta": beta}, progress=False)
        metrics = json.loads((train_run(cfg) / "metrics.json").read_text())
        rows[beta] = {k: metrics["mean_se"][k] for k in ("nelbo", "kl", "rec", "niwae_100")}
        print(beta, {k: round(v["mean"], 2) for k, v in rows[beta].items()}, flush=True)
    lines = ["| beta | NELBO | KL | Rec | IWAE-100 |", "|---|---|---|---|---|"]
    for beta, r in rows.items():
        lines.append(f"| {beta:g} | " + " | ".join(f"{r[k]['mean']:.2f} ± {r[k]['se']:.2f}" if r[k]["n"] > 1
                                                  else f"{r[k]['mean']:.2f}" for k in ("nelbo", "kl", "rec", "niwae_100")) + " |")
    md = (f"# beta-VAE on binarized MNIST\n\nDefault VAE (z = 10, MLP 784-300-300), {args.iters} iterations, "
          f"seeds {args.seeds}, full 10,000-image test set (fixed binarization). The objective is Rec + beta * KL; "
          "the NELBO column is always the true bound Rec + KL.\n\n" + "\n".join(lines) + "\n")
    save("beta-table", {"betas": {str(b): r for b, r in rows.items()}}, md)


if __name__ == "__main__":
    main()
