"""What does keeping freed memory (vaelab.evaluate.hold_freed_memory) gain in IWAE evaluation?

glibc's malloc hands a freed block of a few megabytes back to the kernel once the free memory at the top of
its heap passes its trim threshold; the next evaluation pass then faults every page of its (rows, 784)
buffers in again. evaluate_niwae and evaluate_terms set the thresholds so that those blocks stay in the
process. How often the defaults trim depends on what the process freed before (a freed 30 MB tensor
raises glibc's adaptive thresholds), so each measurement here is a fresh process that evaluates the way
a user's first evaluation does: the model at its initial weights, --images random images, IWAE-k, once
untimed (its first passes find the heap empty either way) and then timed, with the page faults counted.
Held (the default) and VAELAB_HOLD_MEMORY=0 alternate, --repeats rounds of each.

    python benchmarks/hold_memory_speed.py --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from common import save
from likelihood_race import cpu_model

WORKER = """
import json, resource, sys, time, torch
from vaelab.evaluate import evaluate_niwae, hold_freed_memory
from vaelab.models import build_model
name, images, k, threads, compile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
torch.set_num_threads(threads)
torch.manual_seed(0)
model = build_model(name, 784).eval()
x = torch.bernoulli(torch.rand(images, 784))
evaluate_niwae(model, x, k, progress=False, compile=compile)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
t = time.perf_counter()
evaluate_niwae(model, x, k, progress=False, compile=compile)
seconds = time.perf_counter() - t
print(json.dumps({"s": seconds, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults,
                  "held": hold_freed_memory()}))
"""


def measure(model: str, images: int, k: int, threads: int, compile: bool, held: bool) -> dict:
    env = {**os.environ, "VAELAB_HOLD_MEMORY": "1" if held else "0"}
    out = subprocess.run([sys.executable, "-c", WORKER, model, str(images), str(k), str(threads), str(int(compile))],
                         capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["vae", "hvae"])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rows, data = [], {}
    for model in args.models:
        for compile in (False, True):
            runs = {True: [], False: []}
            for _ in range(args.repeats):
                for held in (True, False):
                    runs[held].append(measure(model, args.images, args.k, args.threads, compile, held))
            key = f"{model}{', compiled' if compile else ''}"
            data[key] = {"held": runs[True], "VAELAB_HOLD_MEMORY=0": runs[False]}
            med = {h: statistics.median(r["s"] for r in runs[h]) for h in runs}
            cells = []
            for h in (True, False):
                s = sorted(r["s"] for r in runs[h])
                faults = statistics.median(r["faults"] for r in runs[h])
                cells.append(f"{med[h]:.2f} ({s[0]:.2f}-{s[-1]:.2f}) | {faults:,.0f}")
            rows.append(f"| {key} | {' | '.join(cells)} | {1 - med[True] / med[False]:.0%} |")
            print(rows[-1], flush=True)
    passes = args.images * args.k // 1000
    md = (f"# IWAE-{args.k} evaluation with freed memory held (the default) and returned to the kernel\n\n"
          f"{cpu_model()}, {args.threads} thread(s). Initial weights, {args.images} random images x k = {args.k} "
          f"({passes} passes of 1,000 rows); each measurement a fresh process, its second evaluation timed "
          f"(the first untimed), held and VAELAB_HOLD_MEMORY=0 alternating; median (min-max) of {args.repeats}.\n\n"
          "| model | held: s | page faults | VAELAB_HOLD_MEMORY=0: s | page faults | time saved |\n"
          "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    save("hold-memory-speed", {"machine": cpu_model(), "threads": args.threads, "images": args.images, "k": args.k,
                               "runs": data}, md)
    print(md)


if __name__ == "__main__":
    main()
