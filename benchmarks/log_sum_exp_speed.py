"""What the clamped log-sum-exp saves on a trained mixture prior's IWAE evaluation.

PyTorch's CPU exp() takes a slow path for arguments below about -87; `vaelab.densities.log_sum_exp`
clamps the shifted terms at -80 (nothing in float32 rounding) to stay off it. This times
`evaluate_niwae` of a trained run's model (its first seed) on its first test images with that
log-sum-exp and with plain `torch.logsumexp` in its place, alternately, and reports both bounds
(they should agree) and the share of the prior's shifted component log-densities below -87 on
samples of q(z | x).

    python benchmarks/log_sum_exp_speed.py /work/runs/race/vamp-iwae5-z40-warmup-exp-seed0 --images 50 --k 5000
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import RESULTS, save
from likelihood_race import cpu_model

import vaelab
import vaelab.densities as D
from vaelab.evaluate import evaluate_niwae


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a trained run of a mixture-prior model (vamp, gmvae)")
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = vaelab.load_run(args.run)
    model, x = run.model(), run.test_data()[0][:args.images]
    m, v = model.enc(x[:100])
    z = m + v.sqrt() * torch.randn(10, *m.shape)
    pm, pv = model.prior()
    lp = D.log_normal(z.reshape(-1, 1, m.shape[-1]), pm[0], pv[0])   # (samples, K) component log-densities
    below = ((lp - lp.amax(-1, keepdim=True)) < -87).float().mean().item()
    ways = {"clamped (vaelab)": D.log_sum_exp, "torch.logsumexp": lambda t, dim=-1: torch.logsumexp(t, dim)}
    seconds, bound = {name: [] for name in ways}, {}
    try:
        for _ in range(args.repeats):
            for name, fn in ways.items():
                D.log_sum_exp = fn   # log_mean_exp and the mixture density look it up here
                torch.manual_seed(0)
                t = time.perf_counter()
                bound[name] = evaluate_niwae(model, x, args.k, progress=False)
                seconds[name].append(time.perf_counter() - t)
    finally:
        D.log_sum_exp = ways["clamped (vaelab)"]
    med = {name: sorted(s)[len(s) // 2] for name, s in seconds.items()}
    rows = "\n".join(f"| {name} | {med[name]:.2f} | {min(s):.2f}-{max(s):.2f} | {bound[name]:.6f} |"
                     for name, s in seconds.items())
    md = (f"# IWAE-{args.k} evaluation with the clamped log-sum-exp and with torch.logsumexp\n\n"
          f"{cpu_model()}, {args.threads} thread(s), torch {torch.__version__}. Run {args.run} ({run.config.model}), "
          f"first {len(x)} test images, {args.repeats} alternating runs each. Shifted component log-densities below "
          f"-87 (exp's slow path) on samples of q(z | x) for 100 test images: {below:.1%}.\n\n"
          f"| log-sum-exp | median s | min-max s | IWAE bound (nats) |\n|---|---|---|---|\n{rows}\n")
    save(f"log-sum-exp-speed-{args.run.name}", {"run": str(args.run), "images": len(x), "k": args.k,
         "seconds": seconds, "bound": bound, "share_below_-87": below, "machine": cpu_model()}, md, folder=args.results)
    print(md)


if __name__ == "__main__":
    main()
