"""Denoising autoencoders on Fashion-MNIST: one per noise type; MSE / PSNR of the corrupted and the
denoised test images (all 10,000, corrupted once with a fixed seed at the middle of the training
level range), and (original, corrupted, denoised) triplets. Writes benchmarks/results/dae-fashion.{json,md,png}.

    python benchmarks/dae_fashion.py --iters 5000 --threads 1
"""
from __future__ import annotations

import argparse
import json
import time

from common import DEFAULT_DATA, RESULTS, save

from vaelab.recipes.blocks import DAE_NOISES, denoising_triplets
from vaelab.config import TrainConfig
from vaelab.runs.train import train_run

NOISES = dict(DAE_NOISES)   # mask: p ~ U[0.3, 0.7] as in the course text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--iters", type=int, default=5000)
    ap.add_argument("--hidden", default="512,256")
    ap.add_argument("--z-dim", type=int, default=64)
    ap.add_argument("--noises", nargs="+", default=list(NOISES))
    ap.add_argument("--mask-level", default=NOISES["mask"], help="masking level or range for training")
    ap.add_argument("--name", default="dae-fashion")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=f"runs/bench-dae-fashion-{int(time.time())}")
    args = ap.parse_args()
    NOISES["mask"] = args.mask_level
    t0 = time.perf_counter()
    results, runs = {}, {}
    for noise in args.noises:
        opts = {"noise": noise, "level": NOISES[noise], "hidden": args.hidden, "z_dim": args.z_dim}
        cfg = TrainConfig(model="dae", dataset="fashion-mnist", data_dir=args.data_dir, out=f"{args.out}/{noise}",
                          iters=args.iters, threads=args.threads, iwae_k=[], progress=False, model_options=opts)
        run = train_run(cfg)
        results[noise] = json.loads((run / "metrics.json").read_text())["per_seed"]["0"]
        runs[noise] = run
    RESULTS.mkdir(exist_ok=True)
    denoising_triplets(runs, RESULTS / f"{args.name}.png", data_dir=args.data_dir)
    wall = time.perf_counter() - t0
    table = ["| noise (training level) | test level | MSE corrupted | MSE denoised | PSNR corrupted (dB) | "
             "PSNR denoised (dB) | gain (dB) |", "|---|---|---|---|---|---|---|"]
    for noise, m in results.items():
        table.append(f"| {noise} ({NOISES[noise]}) | {m['eval_noise_level']:.2f} | {m['mse_corrupted']:.4f} | "
                     f"{m['mse_denoised']:.4f} | {m['psnr_corrupted']:.2f} | {m['psnr_denoised']:.2f} | "
                     f"**{m['psnr_denoised'] - m['psnr_corrupted']:+.2f}** |")
    md = ("# Denoising autoencoders on Fashion-MNIST\n\n"
          f"DAE: MLP 784-{args.hidden.replace(',', '-')}-{args.z_dim} and back, ReLU, MSE, AdamW lr 1e-3, batch 100, "
          f"{args.iters} iterations, grey levels; corruption applied to the input during training only. "
          f"Test: all 10,000 test images corrupted once (seed 4321) at the middle of the training level range; PSNR "
          f"= 10 log10(1 / MSE) per image, averaged. {args.threads} thread(s); wall time {wall:.0f} s.\n\n"
          + "\n".join(table) + "\n\nTarget: masking p = 0.5, denoised PSNR >= corrupted + 8 dB.\n\n"
          "Rows: (original, corrupted, denoised) for " + ", ".join(args.noises) + f":\n\n![triplets]({args.name}.png)\n")
    save(args.name, {"results": results, "wall_seconds": wall, "iters": args.iters}, md)


if __name__ == "__main__":
    main()
