"""Training speed of every model at its default configuration: iterations/s and wall time.

For every model and thread count, a fresh worker process (OMP_NUM_THREADS, MKL_NUM_THREADS and
torch.set_num_threads all set to the thread count before torch starts) trains the model with
the real trainer (`vaelab.train.fit`, default batch size, Adam, dynamic binarization, the
per-step finiteness checks) on real MNIST: one warm-up run of --warmup iterations, then
--repeats timed runs of --iters iterations each; the table reports the median (and the
spread) of the timed runs, and the wall time a default-length training run would take.
Validation and checkpoints are left out of the timed loop (they are not per-iteration costs).

    python benchmarks/speed.py --data-dir ../shared/data              # the full table (run on a quiet machine)
    python benchmarks/speed.py --quick --dataset mnist-5k --results /tmp/speed   # seconds: a smoke test
    python benchmarks/speed.py --device cuda --threads 1 --models vae --precision bf16 --compile   # a GPU

Writes benchmarks/results/speed.{json,md} (speed-gpu.* with --device cuda, speed-quick.* with --quick).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from common import DEFAULT_DATA, REPO, RESULTS, save

THREADS_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--dataset", default="mnist", help="data set (default: real MNIST)")
    ap.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--iters", type=int, default=500, help="timed iterations per repeat")
    ap.add_argument("--warmup", type=int, default=100, help="untimed iterations first")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    ap.add_argument("--compile", action="store_true", help="torch.compile the training step (vaelab train --compile); "
                    "the warm-up run then includes the one-off compile")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to train (vaelab train --device)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="vaelab train --precision")
    ap.add_argument("--cuda-graph", action="store_true", help="vaelab train --cuda-graph: the step as one CUDA graph")
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 thread, 5 iterations, 2 repeats")
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder for speed.json / speed.md")
    ap.add_argument("--worker", nargs=2, metavar=("MODEL", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.threads, args.iters, args.warmup, args.repeats = [1], 5, 2, 2
    if min(args.threads) < 1 or args.iters < 1 or args.warmup < 0 or args.repeats < 1:
        ap.error("--threads, --iters and --repeats must be positive, --warmup >= 0")
    return args


def worker(args) -> dict:
    """In a process whose thread environment is already set: time one model."""
    import dataclasses

    import torch

    from vaelab.models import build_model
    from vaelab.config import TrainConfig
    from vaelab.trainer import fit, flush_denormal
    from vaelab.batches import prepare_data

    model_name, threads = args.worker[0], int(args.worker[1])
    torch.set_num_threads(threads)
    cfg = TrainConfig(model=model_name, dataset=args.dataset, data_dir=args.data_dir, progress=False,
                      device=args.device, threads=threads, compile=args.compile, precision=args.precision,
                      cuda_graph=args.cuda_graph).validate()
    device = torch.device(args.device)
    data = prepare_data(cfg, device)
    data = dataclasses.replace(data, val_x=data.val_x[:0])   # no validation pass inside the timed loop
    torch.manual_seed(0)
    model = build_model(model_name, data.x_dim, **cfg.model_options).to(device)
    seconds = []
    with flush_denormal():
        for i in range(args.repeats + (1 if args.warmup else 0)):
            run = dataclasses.replace(cfg, iters=args.warmup if args.warmup and i == 0 else args.iters)
            hist = fit(model, data, run)
            if not (args.warmup and i == 0):
                seconds.append(hist["train_seconds"])
    per_iter = statistics.median(seconds) / args.iters
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"model": model_name, "threads": threads, "compile": args.compile, "cuda_graph": args.cuda_graph,
            "device": args.device, "gpu": gpu,
            "precision": args.precision, "torch_threads": torch.get_num_threads(),
            "iters_per_second": 1 / per_iter,
            "iters_per_second_min_max": [args.iters / max(seconds), args.iters / min(seconds)],
            "timed_seconds": seconds, "timed_iters": args.iters, "warmup_iters": args.warmup,
            "default_iters": cfg.iters, "default_run_wall_seconds": cfg.iters * per_iter,
            "batch_size": cfg.batch_size, "model_options": cfg.model_options or "defaults",
            "torch": torch.__version__, "date": datetime.now().isoformat(timespec="seconds")}


def row_command(args, model: str, threads: int) -> str:
    cmd = ["python", "benchmarks/speed.py", "--dataset", args.dataset, "--models", model, "--threads", str(threads),
           "--iters", str(args.iters), "--warmup", str(args.warmup), "--repeats", str(args.repeats)]
    if args.compile:
        cmd.append("--compile")
    if args.cuda_graph:
        cmd.append("--cuda-graph")
    if args.device != "cpu":
        cmd += ["--device", args.device]
    if args.precision != "fp32":
        cmd += ["--precision", args.precision]
    if args.dataset != "mnist-5k":
        cmd[4:4] = ["--data-dir", args.data_dir]
    return " ".join(shlex.quote(c) for c in cmd)


def merged_rows(path: Path, new: list[dict], args, model_order: list[str]) -> list[dict]:
    """The new rows, plus the recorded rows of the other (model, threads, eager or compiled) settings measured
    with the same iteration counts (timing some models again keeps the rest of the table), by threads then model."""
    old = json.loads(path.read_text())["rows"] if path.exists() else []
    key = lambda r: (r["threads"], model_order.index(r["model"]), r.get("compile", False),  # noqa: E731
                     r.get("precision", "fp32"), r.get("cuda_graph", False))
    measured = {key(r) for r in new}
    same = lambda r: (r["timed_iters"], r["warmup_iters"]) == (args.iters, args.warmup)  # noqa: E731
    kept = [r for r in old if r["model"] in model_order and key(r) not in measured and same(r)]
    return sorted(kept + new, key=key)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    from vaelab.models import MODELS
    models = args.models or list(MODELS)
    rows = []
    for threads in args.threads:
        for model in models:
            env = {**os.environ, **{k: str(threads) for k in THREADS_ENV},
                   "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
            argv_w = [sys.executable, __file__, "--worker", model, str(threads), "--dataset", args.dataset,
                      "--data-dir", args.data_dir, "--iters", str(args.iters), "--warmup", str(args.warmup),
                      "--repeats", str(args.repeats), "--device", args.device, "--precision", args.precision] + (
                         ["--compile"] if args.compile else []) + (["--cuda-graph"] if args.cuda_graph else [])
            t0 = time.perf_counter()
            res = subprocess.run(argv_w, env=env, capture_output=True, text=True)
            if res.returncode != 0:
                sys.exit(f"speed.py: {model} with {threads} thread(s) failed:\n{res.stderr.strip()}")
            row = json.loads(res.stdout.strip().splitlines()[-1])
            row.update(command=row_command(args, model, threads), process_seconds=time.perf_counter() - t0)
            rows.append(row)
            print(f"{model:<6} {threads} thread(s) {_step(row)}: {row['iters_per_second']:.1f} it/s "
                  f"(default {row['default_iters']} iterations: {row['default_run_wall_seconds']:.0f} s)", flush=True)
    name = "speed-quick" if args.quick else "speed-gpu" if args.device == "cuda" else "speed"
    rows = merged_rows(args.results / f"{name}.json", rows, args, list(MODELS))
    where = f"on a GPU ({rows[0]['gpu']})" if args.device == "cuda" else "on the CPU"
    lines = [f"# Training speed {where}, default configuration of every model", "",
             f"Data: {args.dataset}; batch size {rows[0]['batch_size']}; {args.warmup} warm-up iterations, then "
             f"{args.repeats} x {args.iters} timed iterations, median (min-max over repeats). Wall time: a run of the "
             f"model's default number of iterations at that speed (training only, no evaluation).", "",
             "| model | threads | step | it/s | it/s min-max | default iters | wall time | date | command |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["iters_per_second_min_max"]
        lines.append(f"| {r['model']} | {r['threads']} | {_step(r)} | {r['iters_per_second']:.1f} | {lo:.1f}-{hi:.1f} | "
                     f"{r['default_iters']} | {r['default_run_wall_seconds']:.0f} s | {r['date']} | `{r['command']}` |")
    save(name, {"rows": rows}, "\n".join(lines), folder=args.results)


def _step(row: dict) -> str:
    """How the training step ran: eager or compiled, and bf16 autocast if on."""
    step = "compiled" if row.get("compile") else "CUDA graph" if row.get("cuda_graph") else "eager"
    return step + (", bf16" if row.get("precision", "fp32") == "bf16" else "")


if __name__ == "__main__":
    main()
