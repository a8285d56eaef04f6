"""Several processes training one model: torchrun + DistributedDataParallel, and nothing else.

    torchrun --nproc_per_node N -m vaelab train MODEL ...

torchrun starts N copies of `vaelab train` and tells each its rank through the environment
(RANK, WORLD_SIZE, LOCAL_RANK). `train_run` then joins them in one process group (gloo on
the CPU, nccl on GPUs, one GPU per process) and

- every rank draws the same global batch (--batch-size) and keeps its contiguous shard of it;
- DDP averages the gradients, so every step is the step on the mean loss over the global batch;
- the logged training terms are averaged over the ranks, validation / test metrics summed over
  the ranks' shards of the images (every rank gets the same numbers);
- rank 0 alone touches the run folder (lock, config, checkpoints, figures, metrics, report).

One process (no torchrun, or --nproc_per_node 1): every helper here is a no-op.
"""
from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist

from .errors import VaelabError, arg


def _env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def launched() -> bool:
    """Started by torchrun with more than one process."""
    return _env("WORLD_SIZE", 1) > 1


def active() -> bool:
    """A process group of more than one process is up: the collectives below talk to the others."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> int:
    """How many processes train together (1 without torchrun)."""
    return dist.get_world_size() if active() else max(1, _env("WORLD_SIZE", 1))


def rank() -> int:
    """This process's rank, 0 to world() - 1."""
    return dist.get_rank() if active() else (_env("RANK", 0) if launched() else 0)


def is_main() -> bool:
    """Rank 0: the only process that writes the run folder and prints."""
    return rank() == 0


def rank_seed(seed: int) -> int:
    """The seed of this rank's random stream: `seed` on rank 0 (so rank 0 draws what one process
    would), seed + rank * 2**40 on the others (never a user seed, which is below 2**32)."""
    return seed + rank() * 2**40


def local_cuda_device() -> torch.device:
    """cuda:LOCAL_RANK, one GPU per process; VaelabError when this machine has fewer GPUs than processes."""
    local, local_world = _env("LOCAL_RANK", 0), _env("LOCAL_WORLD_SIZE", world())
    if torch.cuda.device_count() < local_world:
        raise VaelabError(f"{arg('device', 'cuda')}: torchrun started {local_world} processes on this machine but only "
                          f"{torch.cuda.device_count()} GPU(s) are visible; use --nproc_per_node "
                          f"{torch.cuda.device_count()} (one process per GPU), or {arg('device', 'cpu')}")
    return torch.device("cuda", local)


@contextlib.contextmanager
def process_group(device: torch.device):
    """Join the torchrun processes for the life of the block (gloo on the CPU, nccl on CUDA).

    Does nothing for one process, or when the caller has already set up a group."""
    if not launched() or (dist.is_available() and dist.is_initialized()):
        yield
        return
    if not dist.is_available():
        raise VaelabError("torchrun started several processes, but this PyTorch build has no torch.distributed; "
                          "run one process (without torchrun)")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield
        # Leave together: rank 0 still writes figures and the report after the others are done, and a rank
        # that tears its group down meanwhile was seen to abort in gloo ("terminate called without an active
        # exception") in two of five full test runs. Skipped on an error, which stops every rank anyway.
        dist.barrier()
    finally:
        dist.destroy_process_group()


class SharedError(VaelabError):
    """A VaelabError that every rank raises together (rank 0 reports it; the others stay quiet)."""


@contextlib.contextmanager
def same_on_every_rank():
    """A block whose errors depend on the options and data alone, so every rank raises the same one:
    rank 0 reports it, the others stay quiet."""
    try:
        yield
    except SharedError:
        raise
    except VaelabError as e:
        if not launched():
            raise
        raise SharedError(e.message) from None


def on_main(fn, *args):
    """fn(*args) on rank 0 only, its result handed to every rank (pickled; keep it small).

    A VaelabError raised by fn is raised on every rank, so no rank waits forever for one that
    stopped. Other exceptions stop rank 0 alone; torchrun then ends the others."""
    if not active():
        return fn(*args)
    box = [None]
    if is_main():
        try:
            box = [(True, fn(*args))]
        except VaelabError as e:
            box = [(False, e.message)]
    dist.broadcast_object_list(box, src=0)
    ok, value = box[0]
    if not ok:
        raise SharedError(value)
    return value


def all_gather(obj) -> list:
    """Every rank's obj (picklable), in rank order, on every rank."""
    if not active():
        return [obj]
    out = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def sum_across(t: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of t over the ranks, on t's device (t itself for one process)."""
    if not active():
        return t
    where = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else t.device
    total = t.to(where, copy=True)   # nccl reduces GPU tensors only
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.to(t.device)


def mean_across(values: dict) -> dict:
    """{name: tensor}: each value averaged over the ranks (one all-reduce); unchanged for one process."""
    if not active() or not values:
        return values
    names = list(values)
    stacked = sum_across(torch.stack([torch.as_tensor(values[k]).float() for k in names])) / world()
    return dict(zip(names, stacked.unbind()))


def shard(n: int) -> slice:
    """This rank's contiguous part of n items (the whole range for one process)."""
    if not active():
        return slice(0, n)
    r, w = rank(), world()
    return slice(r * n // w, (r + 1) * n // w)


def broadcast_module(module: torch.nn.Module) -> None:
    """Overwrite every rank's weights and buffers with rank 0's."""
    if active():
        for t in module.state_dict().values():
            dist.broadcast(t, src=0)


class LossForward(torch.nn.Module):
    """model.loss as a forward pass: DDP averages the gradients of calls through forward only."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args, **kwargs):
        return self.model.loss(*args, **kwargs)


def data_parallel(model: torch.nn.Module, device: torch.device):
    """The callable a training step goes through: model.loss for one process, else model.loss
    wrapped in DistributedDataParallel (which broadcasts rank 0's weights once, here)."""
    if not active():
        return model.loss
    import inspect

    from torch.nn.parallel import DistributedDataParallel as DDP

    # Buffers (prior means and variances, a fixed sigma) never change: no broadcast every step
    # (the option's name changed in torch 2.13). A model whose loss leaves some parameters out
    # (the SSVAE with gw = 0) says so.
    no_sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DDP).parameters else "broadcast_buffers"
    return DDP(LossForward(model), device_ids=[device.index] if device.type == "cuda" else None, **{no_sync: False},
               find_unused_parameters=not model.trains_every_parameter)
