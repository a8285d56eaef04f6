"""Where the default VAE's training step spends its time on this CPU, and the ceiling it implies.

Measures, at one thread: the machine's matrix-product rate (a 1024x1024 float32 product), the
matrix products one default VAE step needs (forward and backward of the six Linear layers at
batch 100, timed alone), and the trainer's step (the same Batches, model.loss, backward and
fused Adam as `vaelab.train.fit`, without its finiteness checks; benchmarks/speed.py times
`fit` itself), with the top operators from torch.profiler. Writes benchmarks/results/step-profile.{json,md}.

    OMP_NUM_THREADS=1 python benchmarks/step_profile.py
"""
from __future__ import annotations

import time

import torch
from common import save
from torch.profiler import profile

from vaelab.models import build_model
from vaelab.batches import Batches

torch.set_num_threads(1)


def timed(fn, n):
    for _ in range(max(3, n // 10)):
        fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def main():
    a, b = torch.rand(1024, 1024), torch.rand(1024, 1024)
    peak = 2 * 1024 ** 3 / timed(lambda: a @ b, 20) / 1e9
    # The step's matrix products: forward x W^T, backward grad_W = g^T x and grad_x = g W (not for the input layer).
    shapes = [(784, 300), (300, 300), (300, 20), (10, 300), (300, 300), (300, 784)]
    mats = []
    for i, (n_in, n_out) in enumerate(shapes):
        x, w, g = torch.rand(100, n_in), torch.rand(n_out, n_in), torch.rand(100, n_out)
        mats += [lambda x=x, w=w: x @ w.T, lambda g=g, x=x: g.T @ x]
        if i > 0:
            mats.append(lambda g=g, w=w: g @ w)
    mm = sum(timed(f, 200) for f in mats)
    flops = sum(2 * 100 * i * o * (2 if k == 0 else 3) for k, (i, o) in enumerate(shapes))

    torch.manual_seed(0)
    x = torch.rand(60_000, 784) * (torch.rand(60_000, 784) < 0.19)   # MNIST-like sparsity of grey levels
    model = build_model("vae", 784)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    batches = Batches(x, torch.zeros(60_000, dtype=torch.long), 100, dynamic=True)

    def step():
        xb, yb = next(batches)
        loss, _ = model.loss(xb, yb)
        loss.item()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step_s = timed(step, 1000)
    with profile() as prof:
        for _ in range(200):
            step()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    md = (f"# The default VAE step on this CPU (1 thread)\n\n"
          f"- matrix-product rate (1024x1024 float32): {peak:.1f} GFLOP/s\n"
          f"- the step's matrix products ({flops / 1e6:.0f} MFLOP) timed alone: {mm * 1e3:.2f} ms "
          f"-> at most {1 / mm:.0f} it/s even if nothing else cost anything\n"
          f"- the whole step (batch, binarization, forward, backward, fused Adam): "
          f"{step_s * 1e3:.2f} ms = {1 / step_s:.0f} it/s\n\n"
          f"Top operators over 200 steps:\n\n```\n{table}\n```\n")
    save("step-profile", {"peak_gflops": peak, "matmul_ms": mm * 1e3, "matmul_mflop": flops / 1e6,
                          "step_ms": step_s * 1e3, "iters_per_second": 1 / step_s}, md)


if __name__ == "__main__":
    main()
