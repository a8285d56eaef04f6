"""Behaviour unchanged by a refactor: every model's short default run on mnist-5k, trained by this checkout
and by an earlier commit (a git worktree of it, in a fresh process each), must give the same test metrics;
so must the short forms of the other recorded results (--extras): a run killed (SIGKILL) after its first
checkpoint and resumed, a run of 2 torchrun processes, a recipe's quick form, and the explorer's answers.

    python benchmarks/same_numbers.py --before e033408
    python benchmarks/same_numbers.py --before e033408 --models vae gmvae --iters 300
    python benchmarks/same_numbers.py --before e033408 --models vae --extras --name same-numbers-extras

One seed, one thread, the same options on both sides; the metrics compared are every number that both
sides' metrics.json entries hold except the timings (a metric only the checkout reports is listed as added,
not as a difference). Exits 1 when any differs, and writes benchmarks/results/NAME.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
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


def _env(src: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(src), "VAELAB_NO_DOWNLOAD": "1", "OMP_NUM_THREADS": "1"}


def _seed_metrics(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())["per_seed"]["0"]
    return {k: v for k, v in metrics.items() if k not in TIMINGS}


def killed_and_resumed(src: Path, out: Path, iters: int) -> dict:
    """`vaelab train vae` killed with SIGKILL once its first checkpoint is written, then resumed."""
    options = [*OPTIONS]
    options[options.index("--iters") + 1] = str(iters)
    proc = subprocess.Popen([sys.executable, "-m", "vaelab", "train", "vae", "--out", str(out), *options],
                            env=_env(src), cwd=out.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and not (out / "seed-0" / "checkpoint.pt").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run([sys.executable, "-m", "vaelab", "train", "--resume", str(out)], env=_env(src), check=True,
                   cwd=out.parent, stdout=subprocess.DEVNULL)
    return _seed_metrics(out)


def torchrun(src: Path, out: Path, iters: int) -> dict:
    """`vaelab train vae` as 2 torchrun processes (gloo on the CPU)."""
    options = [*OPTIONS]
    options[options.index("--iters") + 1] = str(iters)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                    "vaelab", "train", "vae", "--out", str(out), *options], env=_env(src), check=True, cwd=out.parent,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _seed_metrics(out)


def recipe(src: Path, out: Path, iters: int) -> dict:
    """`vaelab reproduce ae-swissroll --quick`: the first seed's metrics of each of its runs."""
    subprocess.run([sys.executable, "-m", "vaelab", "reproduce", "ae-swissroll", "--quick", "--out", str(out),
                    "--threads", "1", "--no-progress"], env=_env(src), check=True, cwd=out.parent,
                   stdout=subprocess.DEVNULL)
    return {f"{run.name}.{k}": v for run in sorted(out.iterdir()) if (run / "metrics.json").exists()
            for k, v in _seed_metrics(run).items()}


EXPLORER_PROBE = """
import hashlib, json, sys
from vaelab.explorer.server import Explorer
e = Explorer(sys.argv[1])
info = e.info()
scatter = e.scatter()
print(json.dumps({"z_bound": info["z_bound"], "centre": info["centre"], "directions": info["directions"],
                  "scatter": hashlib.sha256(json.dumps(scatter, sort_keys=True).encode()).hexdigest(),
                  "decoded": hashlib.sha256(e.decode_png(info["z_start"], None)).hexdigest()}))
"""


def explorer(src: Path, out: Path, iters: int) -> dict:
    """The explorer's answers (its plane, its scatter of the test codes, one decoded image) on a short vae run."""
    train(src, "vae", out, iters)
    done = subprocess.run([sys.executable, "-c", EXPLORER_PROBE, str(out)], env=_env(src), check=True, cwd=out.parent,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


EXTRAS = {"vae, SIGKILL then resume": killed_and_resumed, "vae, torchrun 2 processes": torchrun,
          "recipe ae-swissroll --quick": recipe, "explorer on a vae run": explorer}


def compare(name: str, a: dict, b: dict) -> dict:
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k]) + sorted(set(a) - set(b))   # lost: a difference
    added = sorted(set(b) - set(a))
    print(f"{name}: {'same' if not changed else 'DIFFERENT ' + ', '.join(changed)}"
          + (f" (added: {', '.join(added)})" if added else ""), flush=True)
    return {"model": name, "same": not changed, "changed": changed, "added": added, "metrics": len(set(a) & set(b)),
            "nelbo_or_loss": b.get("nelbo", b.get("loss"))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="the commit to compare with (e.g. the last one before a refactor)")
    p.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--extras", action="store_true", help="also resume after SIGKILL, torchrun, a recipe, the explorer")
    p.add_argument("--name", default="same-numbers", help="results file name")
    args = p.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from vaelab.models import MODELS

    models = args.models or list(MODELS)
    rows, differ = [], []
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(old), args.before], check=True)
        try:
            jobs = [(m, lambda src, out, m=m: train(src, m, out, args.iters)) for m in models]
            jobs += [(name, lambda src, out, f=f: f(src, out, args.iters)) for name, f in EXTRAS.items()] if args.extras else []
            for i, (name, job) in enumerate(jobs):
                a, b = job(old / "src", Path(tmp) / f"{i}-before"), job(REPO / "src", Path(tmp) / f"{i}-after")
                rows.append(compare(name, a, b))
                differ += [] if rows[-1]["same"] else [name]
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=False)
    value = lambda r: "" if r["nelbo_or_loss"] is None else f"{r['nelbo_or_loss']:.6f}"  # noqa: E731
    table = "\n".join(f"| {r['model']} | {r['metrics']} | {'same' if r['same'] else 'differ: ' + ', '.join(r['changed'])} "
                      f"| {', '.join(r['added']) or '-'} | {value(r)} |" for r in rows)
    save(args.name, {"before": args.before, "rows": rows},
         f"# Same numbers before and after a refactor\n\nEach model's short default run on mnist-5k (one seed, "
         f"one thread, {args.iters} iterations){' and the short forms of the other recorded results' if args.extras else ''}, "
         f"run by commit {args.before} and by this checkout: every number both report but the timings compared "
         f"exactly; metrics only the checkout reports are listed as added.\n\n"
         f"| run | numbers compared | result | added | NELBO or loss |\n|---|---|---|---|---|\n{table}\n")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
