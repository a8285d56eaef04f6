"""A large-k importance-weighted bound for one seed of a trained run, on the full test set.

`vaelab eval RUN --iwae-k K` does every seed of a run; at k = 5000 that is about half an hour
per seed on this 2-core CPU, so this script does one seed and records it.

    python benchmarks/iwae_seed.py runs/bench-gmvae --seed 0 --k 5000 --threads 2 --name gmvae-iwae5000 [--first 2000]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import DEFAULT_DATA, save

from vaelab.evaluate import evaluate_iwae
from vaelab.runs import read_json
from vaelab.saved import load_run_model
from vaelab.train import TrainConfig, flush_denormal, prepare_data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--seed", type=int, default=0, help="which trained seed of the run")
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--first", type=int, default=None, help="only the first N test images (default: all)")
    ap.add_argument("--compare-k", type=int, nargs="*", default=[100], help="smaller k on the same images, for scale")
    ap.add_argument("--name", required=True)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TrainConfig(**{**read_json(args.run / "config.json"), "data_dir": args.data_dir})
    data = prepare_data(cfg, torch.device("cpu"))
    model, _ = load_run_model(args.run, args.seed, device="cpu")
    recorded = read_json(args.run / "metrics.json")["per_seed"][str(args.seed)]
    x = data.test_x[:args.first]
    which = f"the first {len(x)} of the {len(data.test_x)} test images" if len(x) < len(data.test_x) else \
        f"the full test set ({len(x)} images)"
    torch.manual_seed(30_000 + args.seed)
    smaller = {}
    with flush_denormal():
        for k in args.compare_k:
            smaller[k] = evaluate_iwae(model, x, k, progress=False)
        t0 = time.perf_counter()
        bound = evaluate_iwae(model, x, args.k, progress=False)
    seconds = time.perf_counter() - t0
    known = {k: v for k, v in recorded.items() if k.startswith("niwae_") or k == "nelbo"}
    md = (f"# IWAE-{args.k} of {cfg.model}, seed {args.seed} of {args.run}\n\n"
          f"Negative importance-weighted bound with k = {args.k} on {which}, fixed binarization: "
          f"**{bound:.2f} nats** ({seconds:.0f} s, {torch.get_num_threads()} thread(s)); on the same images "
          + ", ".join(f"IWAE-{k} {v:.2f}" for k, v in smaller.items()) + ".\n\n"
          "The same seed's recorded metrics on the full test set, for comparison: "
          + ", ".join(f"{k.replace('niwae_', 'IWAE-').replace('nelbo', 'NELBO')} {v:.2f}" for k, v in known.items())
          + ".\n")
    save(args.name, {"run": str(args.run), "seed": args.seed, "k": args.k, "images": len(x), f"niwae_{args.k}": bound,
                     "same_images": {f"niwae_{k}": v for k, v in smaller.items()}, "seconds": seconds,
                     "recorded_full_test_set": known}, md)


if __name__ == "__main__":
    main()
