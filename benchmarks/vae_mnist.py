"""The default VAE on binarized MNIST: 3 seeds x 20,000 iterations, full test set.

Records NELBO / KL / Rec / IWAE-k (mean +/- SE over seeds), iterations per second and wall
time into benchmarks/results/vae-mnist.{json,md}.

    python benchmarks/vae_mnist.py --data-dir ../shared/data [--threads 2] [--out runs/bench-vae]
"""
from __future__ import annotations

import argparse
import json
import time

from common import DEFAULT_DATA, save

from vaelab.report import metrics_table
from vaelab.train import TrainConfig, train_run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--out", default=f"runs/bench-vae-mnist-{int(time.time())}")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--iters", type=int, default=20_000)
    ap.add_argument("--iwae-k", type=int, nargs="+", default=[1, 10, 100, 1000, 5000])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--beta", type=float, default=1.0)
    ap.add_argument("--name", default="vae-mnist")
    args = ap.parse_args()
    t0 = time.perf_counter()
    cfg = TrainConfig(model="vae", dataset="mnist", data_dir=args.data_dir, out=args.out, seeds=args.seeds,
                      iters=args.iters, iwae_k=args.iwae_k, threads=args.threads,
                      model_options={"beta": args.beta}, progress=False)
    run = train_run(cfg)
    wall = time.perf_counter() - t0
    metrics = json.loads((run / "metrics.json").read_text())
    s = metrics["mean_se"]
    md = (f"# VAE on binarized MNIST (beta = {args.beta})\n\n"
          f"{len(args.seeds)} seeds x {args.iters} iterations, batch 100, Adam 1e-3, z = 10, MLP 784-300-300, "
          f"dynamic binarization; test set: {metrics['test_set']}.\n"
          f"Machine: {metrics['machine']}. Whole benchmark wall time (training + evaluation): {wall:.0f} s.\n\n"
          + metrics_table(metrics) + "\n\n"
          f"Mean over seeds: NELBO {s['nelbo']['mean']:.2f} ± {s['nelbo']['se']:.2f}, "
          f"KL {s['kl']['mean']:.2f}, Rec {s['rec']['mean']:.2f}, "
          f"training speed {s['iters_per_second']['mean']:.0f} it/s.\n")
    save(args.name, {"run": str(run), "wall_seconds": wall, "metrics": metrics}, md)


if __name__ == "__main__":
    main()
