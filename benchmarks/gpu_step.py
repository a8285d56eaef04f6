"""Where the default VAE's training step spends its time on a GPU, and what a CUDA graph of the step gives.

The default VAE (784-300-300-z10, batch 100) does about 0.5 GFLOP per step: microseconds of GPU work, so
an eager step on a GPU is bound by the host launching its kernels. This script measures, on real MNIST:

1. the host's cost of one tiny eager op (launch included), the floor of any eager step;
2. the trainer's eager step (`vaelab.trainer.fit`: Batches, model.loss, backward, finiteness check, fused
   Adam), with torch.profiler's count of GPU kernels per step and their summed GPU time;
3. the same step captured once as a CUDA graph (forward, backward and a capturable fused Adam) and
   replayed, the batch drawn by the same Batches and copied into the graph's input; the mean training
   NELBO of its last iterations beside the eager run's, as a check that it trains the same model;
4. a default-length run (20,000 iterations) of the graphed step: the GPU speed target is 15 s.

    python benchmarks/gpu_step.py --data-dir ../shared/data      # on a machine with a CUDA GPU

Writes benchmarks/results/gpu-step.{json,md}.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch
from common import DEFAULT_DATA, RESULTS, save
from torch.profiler import ProfilerActivity, profile

from vaelab.batches import Batches, prepare_data
from vaelab.config import TrainConfig
from vaelab.models import build_model
from vaelab.trainer import fit


def op_microseconds(n: int = 5000) -> float:
    """Host time of one tiny eager op (dispatch and kernel launch), in microseconds."""
    a = torch.zeros(1, device="cuda")
    for _ in range(100):
        a.add_(1)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        a.add_(1)
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n * 1e6


def eager(cfg: TrainConfig, data, iters: int) -> dict:
    """The trainer's own eager step: it/s over `iters` iterations, then a profile of 50 steps."""
    torch.manual_seed(0)
    model = build_model("vae", data.x_dim).cuda()
    fit(model, data, dataclasses.replace(cfg, iters=100))   # warm-up: allocator, cuBLAS handles
    torch.manual_seed(0)
    model = build_model("vae", data.x_dim).cuda()
    hist = fit(model, data, dataclasses.replace(cfg, iters=iters, log_every=iters // 10))
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fit(model, data, dataclasses.replace(cfg, iters=50))
    kernels = [e for e in prof.events() if e.device_type.name == "CUDA"]
    return {"it_per_s": iters / hist["train_seconds"], "last_nelbo": hist["nelbo"][-1],
            "kernels_per_step": len(kernels) / 50,
            "gpu_ms_per_step": sum(e.time_range.elapsed_us() for e in kernels) / 50 / 1e3,
            "top_host_ops": prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)}


def graphed(cfg: TrainConfig, data, iters: int) -> dict:
    """The whole step as one CUDA graph: it/s and the training NELBO's mean over the last log window."""
    try:
        return _graphed(cfg, data, iters, {"fused": True})
    except RuntimeError as err:   # a torch whose fused Adam cannot be captured: the multi-tensor one can
        print(f"fused Adam not capturable here ({err}); the graph uses foreach Adam")
        return {**_graphed(cfg, data, iters, {"foreach": True}), "adam": "foreach"}


def _graphed(cfg: TrainConfig, data, iters: int, adam: dict) -> dict:
    torch.manual_seed(0)
    model = build_model("vae", data.x_dim).cuda().train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, capturable=True, **adam)
    batches = Batches(data.train_x, data.train_y, cfg.batch_size, True, seed=1)
    x_in = next(batches)[0].clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):   # warm-up steps off the capture stream, as torch.cuda.graph asks
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            model.loss(x_in)[0].backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        loss, terms = model.loss(x_in)
        loss.backward()
        opt.step()
    window, seen = torch.zeros((), device="cuda"), 0
    torch.cuda.synchronize()
    t = time.perf_counter()
    for it in range(1, iters + 1):
        x_in.copy_(next(batches)[0])
        graph.replay()
        if it > iters - iters // 10:
            window += terms["nelbo"]
            seen += 1
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    return {"it_per_s": iters / seconds, "seconds": seconds, "last_nelbo": (window / seen).item(), "adam": "fused"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA))
    ap.add_argument("--iters", type=int, default=2000, help="iterations of each timed comparison")
    ap.add_argument("--full", type=int, default=20_000, help="iterations of the default-length graphed run")
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the results files")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        ap.error("no CUDA GPU is visible to PyTorch")
    cfg = TrainConfig(model="vae", dataset="mnist", data_dir=args.data_dir, device="cuda", progress=False).validate()
    data = prepare_data(cfg, torch.device("cuda"))
    data = dataclasses.replace(data, val_x=data.val_x[:0])   # training steps only
    us = op_microseconds()
    e = eager(cfg, data, args.iters)
    g = graphed(cfg, data, args.iters)
    full = graphed(cfg, data, args.full)
    gpu = torch.cuda.get_device_name()
    md = (f"# The default VAE's training step on a GPU: eager against one CUDA graph\n\n"
          f"{gpu}, torch {torch.__version__}; real MNIST, batch {cfg.batch_size}, dynamic binarization.\n\n"
          f"- One tiny eager op (dispatch and launch, host side): **{us:.1f} us**.\n"
          f"- Eager step (`fit`): {e['kernels_per_step']:.0f} GPU kernels per step, {e['gpu_ms_per_step']:.3f} ms of "
          f"GPU time per step; **{e['it_per_s']:.0f} it/s** over {args.iters} iterations (so "
          f"{1e3 / e['it_per_s']:.2f} ms per step: the host, not the GPU, sets the pace).\n"
          f"- The step as one CUDA graph (forward, backward, capturable fused Adam; batches drawn as in `fit`): "
          f"**{g['it_per_s']:.0f} it/s** over {args.iters} iterations, {g['it_per_s'] / e['it_per_s']:.1f}x eager.\n"
          f"- Training NELBO, mean of the last {args.iters // 10} iterations: eager {e['last_nelbo']:.2f}, graph "
          f"{g['last_nelbo']:.2f} (same start, different noise draws).\n"
          f"- {args.full} iterations (the default run) as a graph: **{full['seconds']:.1f} s** of training "
          f"(NELBO of the last 10%: {full['last_nelbo']:.2f}); the target is 15 s.\n\n"
          f"Top host-side ops of 50 eager steps:\n\n```\n{e['top_host_ops']}\n```\n")
    save("gpu-step", {"gpu": gpu, "torch": torch.__version__, "op_us": us, "eager": {k: v for k, v in e.items()
                      if k != "top_host_ops"}, "graph": g, "graph_full": full, "iters": args.iters}, md,
         folder=args.results)
    print(md)


if __name__ == "__main__":
    main()
