"""Swiss roll: a plain AE next to a Gaussian VAE.

The AE reconstructs almost perfectly, but decoding z ~ N(0, I) gives no data-like samples and its
latent interpolation leaves the data; the Gaussian VAE (p(x|z) = N(mu(z), sigma0^2 I)) generates
samples on the roll and interpolates along it. Writes benchmarks/results/swiss-roll.{json,md,png}.

    python benchmarks/swiss_roll.py --iters 5000 --threads 1   (VAE: 25,000 iterations)
"""
from __future__ import annotations

import argparse
import json
import time

from common import RESULTS, save

from vaelab.recipes.blocks import ON_DATA_DISTANCE, SWISS_ROLL_VAE_ITERS, swiss_roll_figure
from vaelab.recipes.blocks import SWISS_ROLL_VAE_OPTIONS as VAE_OPTIONS
from vaelab.config import TrainConfig
from vaelab.runs.train import train_run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=5000)
    ap.add_argument("--vae-iters", type=int, default=SWISS_ROLL_VAE_ITERS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=f"runs/bench-swiss-roll-{int(time.time())}")
    args = ap.parse_args()
    t0 = time.perf_counter()
    runs, metrics = {}, {}
    for name, model, opts, iters in (("ae", "ae", {}, args.iters), ("vae", "vae", VAE_OPTIONS, args.vae_iters)):
        cfg = TrainConfig(model=model, dataset="swiss-roll", out=f"{args.out}/{name}", iters=iters, threads=args.threads,
                          iwae_k=[100], progress=False, model_options=opts)
        runs[name] = train_run(cfg)
        metrics[name] = json.loads((runs[name] / "metrics.json").read_text())["per_seed"]["0"]
    wall = time.perf_counter() - t0

    RESULTS.mkdir(exist_ok=True)
    for name, score in swiss_roll_figure(runs, RESULTS / "swiss-roll.png").items():
        metrics[name]["reconstruction_mse_at_code"] = score["mse"]
        metrics[name]["samples_on_data"] = score["on_data"]

    ae, vae = metrics["ae"], metrics["vae"]
    md = ("# Swiss roll: AE vs Gaussian VAE\n\n"
          f"Swiss roll (sklearn, columns 0 and 2, noise 0.1, standardised), 10,000 training / 2,000 test points.\n"
          f"AE: MLP 2-128-64-32-16 and back, ReLU, MSE, AdamW lr 1e-3, batch 100, {args.iters} iterations.\n"
          f"Gaussian VAE: {', '.join(f'{k}={v}' for k, v in VAE_OPTIONS.items())}, Adam lr 1e-3, batch 100, "
          f"{args.vae_iters} iterations. {args.threads} thread(s); wall time {wall:.0f} s.\n"
          f"Samples on the data: share of 2,000 decoded z ~ N(0, I) within {ON_DATA_DISTANCE} of a test point.\n\n"
          "| model | test MSE (reconstruction) | samples on the data | test NELBO (nats) | IWAE-100 |\n|---|---|---|---|---|\n"
          f"| AE | {ae['mse']:.5f} | {ae['samples_on_data']:.1%} | | |\n"
          f"| Gaussian VAE (decoder mean at posterior mean) | {vae['reconstruction_mse_at_code']:.5f} | "
          f"{vae['samples_on_data']:.1%} | {vae['nelbo']:.3f} | {vae['niwae_100']:.3f} |\n\n"
          "Target: AE MSE <= 0.01. Figure (rows: AE, VAE; columns: reconstructions, decoded prior samples, "
          "latent interpolation between the leftmost and rightmost test points):\n\n![swiss roll](swiss-roll.png)\n")
    save("swiss-roll", {"runs": {k: str(v) for k, v in runs.items()}, "metrics": metrics, "wall_seconds": wall}, md)


if __name__ == "__main__":
    main()
