"""A large-k importance-weighted bound for chosen seeds of a trained run, on the full test set.

`vaelab eval RUN --iwae-k K` re-evaluates every seed of a run; this script does the seeds you name
(optionally on the first N test images only), beside smaller k on the same images, and records
each seed and the mean ± SE over them. At k = 5000 the GMVAE takes about 20 minutes per seed
on one thread of this CPU.

    python benchmarks/iwae_seed.py runs/bench-gmvae --seeds 0 1 2 --k 5000 --threads 1 --name gmvae-iwae5000
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import DEFAULT_DATA, save

from vaelab.evaluate import evaluate_niwae
from vaelab.runs.folder import mean_se
from vaelab.storage import read_json
from vaelab.runs.run import Run
from vaelab.trainer import flush_denormal


def one_seed(run: Path, seed: int, x: torch.Tensor, k: int, compare_k: list[int]) -> dict:
    model = Run(run).model(seed)
    torch.manual_seed(30_000 + seed)
    with flush_denormal():
        smaller = {f"niwae_{c}": evaluate_niwae(model, x, c, progress=False) for c in compare_k}
        t0 = time.perf_counter()
        bound = evaluate_niwae(model, x, k, progress=False)
    seconds = time.perf_counter() - t0
    recorded = read_json(run / "metrics.json")["per_seed"][str(seed)]
    known = {n: v for n, v in recorded.items() if n.startswith("niwae_") or n == "nelbo"}
    print(f"seed {seed}: IWAE-{k} {bound:.2f} ({seconds:.0f} s)", flush=True)
    return {f"niwae_{k}": bound, "same_images": smaller, "seconds": seconds, "recorded_full_test_set": known}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--seeds", "--seed", type=int, nargs="+", default=[0], help="which trained seeds of the run")
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--first", type=int, default=None, help="only the first N test images (default: all)")
    ap.add_argument("--compare-k", type=int, nargs="*", default=[100], help="smaller k on the same images, for scale")
    ap.add_argument("--name", required=True)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = Run(args.run).data("cpu", data_dir=args.data_dir)
    x = data.test_x[:args.first]
    which = f"the first {len(x)} of the {len(data.test_x)} test images" if len(x) < len(data.test_x) else \
        f"the full test set ({len(x)} images)"
    per_seed = {str(s): one_seed(args.run, s, x, args.k, args.compare_k) for s in args.seeds}
    key = f"niwae_{args.k}"
    summary = {key: mean_se([r[key] for r in per_seed.values()]),
               **{n: mean_se([r["same_images"][n] for r in per_seed.values()]) for n in next(iter(per_seed.values()))["same_images"]}}

    def fmt(n: str) -> str:
        return n.replace("niwae_", "IWAE-").replace("nelbo", "NELBO")
    rows = "\n".join(f"| {s} | {r[key]:.2f} | " + " | ".join(f"{v:.2f}" for v in r["same_images"].values())
                     + f" | {r['seconds']:.0f} | " + ", ".join(f"{fmt(n)} {v:.2f}" for n, v in r["recorded_full_test_set"].items())
                     + " |" for s, r in per_seed.items())
    mean_row = f"| **mean ± SE** | **{summary[key]['mean']:.2f} ± {summary[key]['se']:.2f}** | " + " | ".join(
        f"{m['mean']:.2f} ± {m['se']:.2f}" for n, m in summary.items() if n != key) + " | | |"
    md = (f"# IWAE-{args.k} of {Run(args.run).config.model}, seed(s) {', '.join(map(str, args.seeds))} of {args.run}\n\n"
          f"Negative importance-weighted bound with k = {args.k} (nats, lower is better) on {which}, fixed binarization, "
          f"{torch.get_num_threads()} thread(s). Smaller k on the same images for scale, and each seed's metrics as recorded "
          f"at training time on the full test set.\n\n"
          f"| seed | IWAE-{args.k} | " + " | ".join(fmt(n) for n in summary if n != key)
          + " | seconds | recorded (full test set) |\n|" + "---|" * (len(summary) + 3) + "\n" + rows + "\n"
          + (mean_row + "\n" if len(per_seed) > 1 else ""))
    save(args.name, {"run": str(args.run), "seeds": args.seeds, "k": args.k, "images": len(x),
                     "per_seed": per_seed, "summary": summary}, md)


if __name__ == "__main__":
    main()
