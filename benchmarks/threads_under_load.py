"""Training speed with one other busy program beside it: 1 thread, all cores, and the count training
chooses itself (no --threads: vaelab/pace.py), quiet and loaded, side by side in one call.

    python benchmarks/threads_under_load.py                     # the default VAE on MNIST, 1,500 iterations
    python benchmarks/threads_under_load.py --iters 500 --repeats 1 --dataset mnist-5k   # a quick look

Each training run is a fresh `vaelab train` process; the settings alternate, `--repeats` times. The load
is a Python busy loop at normal priority (any other program a user runs). Speed: iterations per second
of training (history.json's iters_per_second: the loop, with one validation and one checkpoint at the
end). Writes benchmarks/results/threads-under-load.{json,md}; run it with nothing else on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import DEFAULT_DATA, REPO, save

SETTINGS = {"1 thread": ["--threads", "1"], "all cores": ["--threads", str(os.cpu_count())], "chosen": []}


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def train(args, setting: str, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}   # the chosen count needs none set
    data = ["--dataset", args.dataset] + (["--data-dir", str(args.data_dir)] if args.dataset != "mnist-5k" else [])
    cmd = [sys.executable, "-m", "vaelab", "train", "vae", *data, "--iters", str(args.iters), "--eval-every",
           str(args.iters), "--checkpoint-every", str(args.iters), "--iwae-k", "1", "--eval-repeats", "1",
           "--no-progress", "--out", str(out), *SETTINGS[setting]]
    subprocess.run(cmd, env=env, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    hist = json.loads((out / "seed-0" / "history.json").read_text())
    return {"its": hist["iters_per_second"], "threads": [c["threads"] for c in hist.get("threads", [])]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=1500)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    args = p.parse_args()
    found: dict[str, dict[str, list]] = {c: {s: [] for s in SETTINGS} for c in ("quiet", "loaded")}
    with tempfile.TemporaryDirectory() as tmp:
        for condition in ("quiet", "loaded"):
            load = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if condition == "loaded" else None
            try:
                for r in range(args.repeats):
                    for setting in SETTINGS:
                        got = train(args, setting, Path(tmp) / f"{condition}-{setting}-{r}".replace(" ", "-"))
                        found[condition][setting].append(got)
                        print(f"{condition}, {setting}: {got['its']:.1f} it/s {got['threads'] or ''}", flush=True)
            finally:
                if load is not None:
                    load.kill()
    rows = []
    for condition, by_setting in found.items():
        for setting, runs in by_setting.items():
            its = [g["its"] for g in runs]
            rows.append({"condition": condition, "setting": setting, "median_its": statistics.median(its),
                         "min_its": min(its), "max_its": max(its), "runs": its,
                         "chosen_threads": [g["threads"] for g in runs] if setting == "chosen" else None})
    table = "\n".join(f"| {r['condition']} | {r['setting']} | {r['median_its']:.1f} | {r['min_its']:.1f}-{r['max_its']:.1f} "
                      f"| {', '.join(map(str, r['chosen_threads'])) if r['chosen_threads'] else ''} |" for r in rows)
    save("threads-under-load", {"cpu": cpu_model(), "cpus": os.cpu_count(), "iters": args.iters,
                                "dataset": args.dataset, "rows": rows},
         f"# Training speed with a busy program beside it\n\nThe default VAE on {args.dataset}, {args.iters} "
         f"iterations per run, {args.repeats} runs per setting (alternating), on {cpu_model()} ({os.cpu_count()} "
         f"CPUs). Loaded: one Python busy loop at normal priority beside training. Chosen: no --threads, the "
         f"count training picks by timing its steps (the counts it picked, per run, in the last column).\n\n"
         f"| condition | threads | median it/s | min-max | chosen |\n|---|---|---|---|---|\n{table}\n")


if __name__ == "__main__":
    main()
