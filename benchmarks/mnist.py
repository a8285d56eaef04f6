"""A model at its defaults on binarized MNIST: 3 seeds, the model's default iterations, full test set.

Records the test metrics (NELBO and its terms, IWAE-k, accuracy: mean +/- SE over seeds),
iterations per second and wall time into benchmarks/results/NAME.{json,md}.

    python benchmarks/mnist.py --model vae --data-dir ../shared/data [--threads 2]
    python benchmarks/mnist.py --model gmvae --iwae-k 1 10 100 1000 5000
    python benchmarks/mnist.py --model ssvae --set gw=0 --name ssvae-gw0-mnist --iwae-k
    python benchmarks/mnist.py --model ssvae --seeds 0 1 2 --name ssvae-mnist --iwae-k --out runs/bench-ssvae --resume
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import DEFAULT_DATA, model_options, save

from vaelab.models import MODELS
from vaelab.runs.report import metrics_table
from vaelab.storage import write_json
from vaelab.config import TrainConfig
from vaelab.runs.train import train_run


def _speed_over_training(run, seeds) -> str:
    """it/s over the first and the last tenth of training, per seed: a slowdown late in training
    (e.g. from subnormal floats in the backward pass) would show here."""
    lines = []
    for seed in seeds:
        h = json.loads((run / f"seed-{seed}" / "history.json").read_text())
        it, sec = h["iteration"], h["seconds"]
        n = max(1, len(it) // 10)
        first = it[n - 1] / sec[n - 1]
        last = (it[-1] - it[-n - 1]) / (sec[-1] - sec[-n - 1])
        lines.append(f"seed {seed}: {first:.1f} it/s over the first tenth, {last:.1f} it/s over the last tenth")
    return "Speed over training (" + "; ".join(lines) + ").\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--model", default="vae", choices=list(MODELS))
    ap.add_argument("--set", nargs="*", default=[], metavar="OPTION=VALUE", help="model options, e.g. beta=4")
    ap.add_argument("--out", default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--iters", type=int, default=None, help="default: the model's")
    ap.add_argument("--iwae-k", type=int, nargs="*", default=[1, 10, 100, 1000, 5000])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--name", default=None, help="results file name (default: MODEL-mnist)")
    ap.add_argument("--resume", action="store_true",
                    help="continue the run folder --out: its finished seeds are kept, the other --seeds trained "
                         "(e.g. add seeds 1 2 to a one-seed run)")
    args = ap.parse_args()
    options = model_options(args.model, args.set)
    name = args.name or f"{args.model}-mnist"
    t0 = time.perf_counter()
    cfg = TrainConfig(model=args.model, dataset="mnist", data_dir=args.data_dir,
                      out=args.out or f"runs/bench-{name}-{int(time.time())}", seeds=args.seeds,
                      iters=args.iters, iwae_k=args.iwae_k, threads=args.threads, model_options=options, progress=False)
    config = Path(cfg.out) / "config.json"
    if args.resume:
        if not config.exists():
            raise SystemExit(f"--resume: {config} not found; pass the --out of an earlier run of this benchmark")
        saved = json.loads(config.read_text())
        saved["seeds"] = args.seeds   # the run folder now stands for every seed asked for
        write_json(config, saved)
    run = train_run(cfg, resume=args.resume)
    wall = time.perf_counter() - t0
    metrics = json.loads((run / "metrics.json").read_text())
    md = (f"# {args.model} on binarized MNIST ({', '.join(args.set) or 'default options'})\n\n"
          f"{len(args.seeds)} seeds x {cfg.iters} iterations, batch 100, Adam 1e-3, default networks, "
          f"dynamic binarization; test set: {metrics['test_set']}.\n"
          f"Machine: {metrics['machine']}. Whole benchmark wall time (training + evaluation): {wall:.0f} s"
          f"{' (this invocation: the seeds it added to the resumed run)' if args.resume else ''}.\n\n"
          + metrics_table(metrics) + "\n\n"
          + _speed_over_training(run, args.seeds) +
          "Training speed in this table was measured while other jobs shared the 2 cores; "
          "see speed.md for quiet-machine figures.\n")
    save(name, {"run": str(run), "wall_seconds": wall, "metrics": metrics}, md)


if __name__ == "__main__":
    main()
