"""Behaviour unchanged by a refactor: every model's short default run on mnist-5k, trained by this checkout
and by an earlier commit (a git worktree of it, in a fresh process each), must give the same test metrics.

    python benchmarks/same_numbers.py --before e033408
    python benchmarks/same_numbers.py --before e033408 --models vae gmvae --iters 300

One seed, one thread, the same options on both sides; the metrics compared are every number in the seed's
metrics.json entry except the timings. Exits 1 when any differs, and writes
benchmarks/results/same-numbers.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO, save

TIMINGS = ("train_seconds", "iters_per_second")
OPTIONS = ["--iters", "200", "--eval-every", "100", "--log-every", "50", "--checkpoint-every", "100", "--iwae-k", "1",
           "10", "--eval-repeats", "2", "--threads", "1", "--no-progress", "--seeds", "0"]


def train(src: Path, model: str, out: Path, iters: int) -> dict:
    """Train `model` with the vaelab whose source is `src`; the seed's metrics without the timings."""
    options = [*OPTIONS] + (["--m1-iters", str(iters // 2)] if model == "m1m2" else [])   # M1's stage, then M2's
    options[options.index("--iters") + 1] = str(iters)
    env = {**os.environ, "PYTHONPATH": str(src), "VAELAB_NO_DOWNLOAD": "1"}
    subprocess.run([sys.executable, "-m", "vaelab", "train", model, "--out", str(out), *options], env=env,
                   check=True, cwd=out.parent, stdout=subprocess.DEVNULL)
    metrics = json.loads((out / "metrics.json").read_text())["per_seed"]["0"]
    return {k: v for k, v in metrics.items() if k not in TIMINGS}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="the commit to compare with (e.g. the last one before a refactor)")
    p.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    p.add_argument("--iters", type=int, default=200)
    args = p.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from vaelab.models import MODELS

    models = args.models or list(MODELS)
    rows, differ = [], []
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(old), args.before], check=True)
        try:
            for model in models:
                a = train(old / "src", model, Path(tmp) / f"{model}-before", args.iters)
                b = train(REPO / "src", model, Path(tmp) / f"{model}-after", args.iters)
                changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                differ += [model] if changed else []
                rows.append({"model": model, "same": not changed, "changed": changed, "nelbo_or_loss":
                             b.get("nelbo", b.get("loss")), "metrics": len(b)})
                print(f"{model}: {'same' if not changed else 'DIFFERENT ' + ', '.join(changed)}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=False)
    table = "\n".join(f"| {r['model']} | {r['metrics']} | {'same' if r['same'] else 'differ: ' + ', '.join(r['changed'])} "
                      f"| {r['nelbo_or_loss']:.6f} |" for r in rows)
    save("same-numbers", {"before": args.before, "rows": rows},
         f"# Same numbers before and after a refactor\n\nEach model's short default run on mnist-5k (one seed, "
         f"one thread, {args.iters} iterations), trained by commit {args.before} and by this checkout: every test "
         f"metric but the timings compared exactly.\n\n| model | metrics compared | result | NELBO or loss |\n"
         f"|---|---|---|---|\n{table}\n")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
