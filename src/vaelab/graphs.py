"""The training step as one CUDA graph (`--cuda-graph`).

On a GPU a small model's eager step is bound by the host, not the GPU: the default VAE's step launches
about 130 kernels holding 0.5 ms of GPU work, and takes 4.4 ms on an H200 because each launch costs the
host about 10 us (benchmarks/results/gpu-step.md). A CUDA graph records the forward pass, the backward
pass and the optimizer's update once and then launches them as one unit: the same kernels, the same
random draws from the same generator, for the cost of one launch.

What capture asks of the step, and how the trainer meets it:
- fixed shapes and fixed memory: every batch is copied into the graph's own input tensors; the
  gradients, the weights and Adam's state stay where the capture found them (the gradients are never
  set to None again);
- no host reads of tensor values inside the step (models declare `graphable`; M1M2 reads its stage);
- values the trainer changes between steps live on the device: the learning rate (a tensor that
  a capturable Adam reads) and the KL warm-up weight (`model.kl_weight`, then a 0-dim tensor);
- a few eager steps first, on a side stream, so that cuBLAS and Adam's state exist before capture;
  they are ordinary training steps, so a graphed run trains exactly the steps an eager run does.
"""
from __future__ import annotations

import torch

from .errors import VaelabError, arg

EAGER_STEPS = 3   # ordinary steps before the capture (cuBLAS workspaces, Adam's state)


class GraphedStep:
    """`forward_backward_step(*inputs)` run eagerly for EAGER_STEPS calls, then captured and replayed.

    forward_backward_step does one whole training step on its inputs (tensors, or None) and returns
    (loss, terms); a call returns the same, the graph's output tensors once captured (overwritten by
    the next replay: read or copy them before the next call)."""

    def __init__(self, forward_backward_step):
        self.fn = forward_backward_step
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager_left = EAGER_STEPS
        self.side = torch.cuda.Stream()

    def __call__(self, *inputs):
        if self.eager_left:
            self.eager_left -= 1
            self.side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.side):
                out = self.fn(*inputs)
            torch.cuda.current_stream().wait_stream(self.side)
            return out
        if self.graph is None:
            self.inputs = [None if t is None else t.clone() for t in inputs]
            self.graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(self.graph):
                    self.out = self.fn(*self.inputs)
            except RuntimeError as err:
                raise VaelabError(f"{arg('cuda_graph')}: the training step could not be captured as a CUDA graph "
                                  f"({str(err).splitlines()[0]}); train without {arg('cuda_graph')}") from err
        else:
            for static, t in zip(self.inputs, inputs):
                if static is not None:
                    static.copy_(t)
        self.graph.replay()
        return self.out


def capturable_adam(opt_class, params, lr: float, device: torch.device, **options):
    """An Adam(W) whose update can be captured, with its learning rate as a device tensor that a
    schedule changes in place (set_lr)."""
    return opt_class(params, lr=torch.tensor(lr, device=device), capturable=True, fused=True, **options)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """The learning rate of every group: in place when it is a tensor (a captured step reads it there)."""
    for group in opt.param_groups:
        if torch.is_tensor(group["lr"]):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def lr_to_device(opt: torch.optim.Optimizer, device: torch.device) -> None:
    """After loading a checkpoint into a capturable optimizer: each group's learning rate a tensor on `device`."""
    for group in opt.param_groups:
        group["lr"] = torch.tensor(float(group["lr"]), device=device)
