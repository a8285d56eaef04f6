"""What does vaelab.nets.Tanh (tanh as 2 sigmoid(2x) - 1 under torch.compile) gain over torch.tanh?

Three measurements, side by side in one process (this machine's speed drifts between runs):

1. elementwise kernels on 300,000 float32 values, one thread, best of 7: torch.tanh, torch.sigmoid,
   torch.exp, and tanh compiled both ways (torch.tanh, and the sigmoid form);
2. the two-layer model's compiled IWAE evaluation (its 800 tanh units per sample), ms per 1,000 sample
   rows, nn.Tanh against vaelab.nets.Tanh in the same model, alternating, --repeats rounds;
3. its uncompiled training step (the ELBO, and the IWAE-5 bound): torch.tanh (what vaelab.nets.Tanh runs
   uncompiled) against the sigmoid form run eagerly, four kernels forward and back.

    python benchmarks/tanh_speed.py --threads 2
"""
from __future__ import annotations

import argparse
import time

import torch
from common import save
from likelihood_race import cpu_model
from torch import nn

from vaelab.models import build_model
from vaelab.models.base import iwae_per_example
from vaelab.nets import Tanh


def best_ms(fn, repeats: int = 7, inner: int = 50) -> float:
    """The fastest of `repeats` timings of `inner` calls, ms per call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - t) / inner)
    return best * 1e3


def kernels() -> dict[str, float]:
    """ms per 300,000 values for each elementwise form, one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    h = torch.randn(1000, 300) * 2
    out = torch.empty_like(h)
    forms = {"torch.tanh": lambda: torch.tanh(h, out=out), "torch.sigmoid": lambda: torch.sigmoid(h, out=out),
             "torch.exp": lambda: torch.exp(h, out=out),
             "tanh, compiled": torch.compile(lambda: torch.tanh(h)),
             "2 sigmoid(2x) - 1, compiled": torch.compile(lambda: 2 * torch.sigmoid(2 * h) - 1)}
    times = {name: best_ms(fn) for name, fn in forms.items()}
    torch.set_num_threads(threads)
    return times


class EagerSigmoidTanh(nn.Module):
    """The sigmoid form without the compiler: what vaelab.nets.Tanh would cost uncompiled if it always used it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * torch.sigmoid(2 * x) - 1


def hvae(tanh: type[nn.Module], **options) -> nn.Module:
    """The two-layer model with the same initial weights, its tanh units of class `tanh`."""
    torch.manual_seed(0)
    model = build_model("hvae", 784, **options)
    for net in (model.q_z1, model.q_z2, model.p_z1, model.p_x):
        for i, layer in enumerate(net.net):
            if isinstance(layer, (Tanh, nn.Tanh, EagerSigmoidTanh)):
                net.net[i] = tanh()
    return model


def summary(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"median": values[len(values) // 2], "min": values[0], "max": values[-1], "n": len(values)}


@torch.inference_mode()
def evaluation(images: int, repeats: int) -> dict[str, dict]:
    """ms per 1,000 sample rows of the compiled IWAE-5000 evaluation, each tanh form, alternating."""
    x = torch.bernoulli(torch.rand(images + 1, 784))
    runs = {}
    for name, cls in (("nn.Tanh", nn.Tanh), ("vaelab.nets.Tanh", Tanh)):
        model = hvae(cls).eval()
        fn = torch.compile(model.log_importance_weights, dynamic=False, options={"fallback_random": True})
        runs[name] = (model, fn)
    for model, fn in runs.values():   # the one-off compiles (dynamo keeps one graph per tanh class), not timed
        iwae_per_example(model, x[:1], 5000, weights=fn)
    ms = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (model, fn) in runs.items():
            t = time.perf_counter()
            iwae_per_example(model, x[1:], 5000, weights=fn)
            ms[name].append((time.perf_counter() - t) / (images * 5) * 1e3)
    return {name: summary(v) for name, v in ms.items()}


def training(repeats: int, steps: int = 40) -> dict[str, dict]:
    """ms per uncompiled training step (batch 100) of the ELBO and the IWAE-5 bound: torch.tanh against the
    sigmoid form run eagerly."""
    x = torch.bernoulli(torch.rand(100, 784))
    out = {}
    for k in (1, 5):
        forms = {name: hvae(cls, iw_k=k) for name, cls in (("torch.tanh", nn.Tanh), ("sigmoid form", EagerSigmoidTanh))}
        optims = {name: torch.optim.Adam(m.parameters(), 1e-3) for name, m in forms.items()}
        ms = {name: [] for name in forms}
        for _ in range(repeats):
            for name, model in forms.items():
                t = time.perf_counter()
                for _ in range(steps):
                    loss, _ = model.loss(x)
                    optims[name].zero_grad()
                    loss.backward()
                    optims[name].step()
                ms[name].append((time.perf_counter() - t) / steps * 1e3)
        out[f"iw_k={k}"] = {name: summary(v) for name, v in ms.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="threads of the evaluation and training timings "
                    "(the kernel timings use one)")
    ap.add_argument("--images", type=int, default=20, help="images per timed evaluation (x 5000 samples)")
    ap.add_argument("--repeats", type=int, default=5, help="alternating rounds of each A/B")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    machine = f"{cpu_model()}, torch {torch.__version__}"
    k, e, t = kernels(), evaluation(args.images, args.repeats), training(args.repeats)

    def cell(s: dict) -> str:
        return f"{s['median']:.2f} (min {s['min']:.2f}, max {s['max']:.2f})"

    md = (f"# tanh as 2 sigmoid(2x) - 1 under torch.compile (vaelab.nets.Tanh) against torch.tanh\n\n{machine}.\n\n"
          "Elementwise, one thread, 300,000 values (best of 7, ms):\n\n| form | ms |\n|---|---|\n"
          + "".join(f"| {name} | {ms:.3f} |\n" for name, ms in k.items())
          + f"\nTwo-layer model, compiled IWAE-5000 evaluation, {args.threads} thread(s), {args.images} random images "
          f"per timing, ms per 1,000 sample rows (median of {args.repeats}, alternating):\n\n| tanh units | ms |\n|---|---|\n"
          + "".join(f"| {name} | {cell(s)} |\n" for name, s in e.items())
          + f"\nTwo-layer model, uncompiled training step, batch 100, {args.threads} thread(s), ms (median of "
          f"{args.repeats} x 40 steps; uncompiled, vaelab.nets.Tanh runs torch.tanh):\n\n"
          "| objective | torch.tanh | 2 sigmoid(2x) - 1, eager |\n|---|---|---|\n"
          + "".join(f"| {obj} | {cell(s['torch.tanh'])} | {cell(s['sigmoid form'])} |\n" for obj, s in t.items()))
    save("tanh-speed", {"machine": machine, "threads": args.threads, "kernels_ms": k, "evaluation_ms_per_1000_rows": e,
                        "training_ms_per_step": t}, md)
    print(md)


if __name__ == "__main__":
    main()
