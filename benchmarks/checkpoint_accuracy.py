"""Test accuracy of a classifying run (ssvae, m1m2) at each of its checkpoints, while it trains.

Reads the seed's checkpoint.pt, scores q(y | x) on the run's test images as evaluated and on the grey
ones (the model's evaluate_extra), and appends `iteration, accuracy, accuracy (grey)` to
RUN/trajectory.tsv when the checkpoint's iteration is not in it yet (a watcher started again adds no
duplicate lines; the file does not name the seed, so give it runs of one seed, as m1m2_long.py writes). With --watch it looks again every
--every seconds until the seed has finished. One thread: it runs beside the training it watches.
The checkpoint accuracies quoted in m1m2-long.md's notes come from this script.

    python benchmarks/checkpoint_accuracy.py /work/runs/m1m2-long/RUN --watch
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import vaelab
from vaelab.errors import VaelabError
from vaelab.models import load_model
from vaelab.storage import load_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a run folder of ssvae or m1m2 (finished or training)")
    ap.add_argument("--seed", type=int, default=None, help="its training seed (default: the first)")
    ap.add_argument("--watch", action="store_true", help="keep looking until the seed has finished")
    ap.add_argument("--every", type=float, default=60.0, help="seconds between looks with --watch")
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = vaelab.load_run(args.run)
    seed = run.seeds[0] if args.seed is None else args.seed
    path, data, out = run.seed_dir(seed) / "checkpoint.pt", run.data("cpu"), run.path / "trajectory.tsv"
    seen = {int(line.split("\t")[0]) for line in out.read_text().splitlines() if line.strip()} if out.exists() else set()
    while True:
        finished = seed in run.finished_seeds   # before reading: the last checkpoint is then surely read
        try:
            ckpt = load_checkpoint(path, "cpu") if path.exists() else None
        except VaelabError:   # being replaced this moment: the next look reads it
            ckpt = None
        if ckpt is not None and ckpt["iteration"] not in seen:
            seen.add(ckpt["iteration"])
            model = load_model(ckpt, "cpu").eval()
            if not model.classifies:
                raise SystemExit(f"{args.run}: a run of {run.config.model}, which does not classify")
            with torch.inference_mode():
                got = model.evaluate_extra(data)
            line = f"{ckpt['iteration']}\t{got['accuracy']:.4f}\t{got['accuracy_grey']:.4f}"
            print(line, flush=True)
            with open(out, "a") as f:
                f.write(line + "\n")
        if not args.watch or finished:
            return
        time.sleep(args.every)


if __name__ == "__main__":
    main()
