"""What this machine can hold: CPU threads for PyTorch and memory, checked before any work.

More threads than the process has CPUs never helps (OpenMP's threads wait on each other at every
barrier), and a count far beyond them (100,000) crashes the OpenMP runtime with a segmentation
fault that kills a notebook's kernel, so such a count is refused before it reaches torch. Likewise
a size that would ask for more memory than the machine has free (a billion samples) is refused with
the size named, instead of an allocator error from deep inside torch or the kernel's OOM killer.
"""
from __future__ import annotations

import os

import torch

from .errors import VaelabError, arg


def available_cpus() -> int:
    """The CPUs this process may run on: its affinity mask where the system has one, else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):   # no affinity masks (macOS, Windows)
        return os.cpu_count() or 1


def check_threads(threads, name: str = "threads") -> None:
    """A thread count must be a positive integer no larger than available_cpus() (VaelabError naming `name`)."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise VaelabError(f"{arg(name)} must be a positive integer, got {threads!r}")
    cpus = available_cpus()
    if threads > cpus:
        raise VaelabError(f"{arg(name, threads)}: this process may run on {cpus} CPU(s); give at most {cpus} "
                          f"(more threads than CPUs only wait on each other)")


def set_threads(threads: int | None, name: str = "threads") -> None:
    """Check a thread count (check_threads) and give it to PyTorch; None leaves PyTorch's own count."""
    check_threads(threads, name)
    if threads is not None:
        torch.set_num_threads(threads)


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes that `device` can still give: a GPU's free memory, or for the CPU Linux's MemAvailable (what
    the system can give without swapping); None where it cannot be known."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_memory(nbytes: float, what: str, fix: str, device: torch.device | str = "cpu") -> None:
    """A VaelabError when `what` needs more than the memory `device` has free: '{what} needs about X GB, ...;
    {fix}'. Nothing is allocated to find out."""
    free = available_memory(device)
    if free is not None and nbytes > free:
        raise VaelabError(f"{what} needs about {_size(nbytes)} of memory, more than the {_size(free)} free "
                          f"{'on the GPU' if torch.device(device).type == 'cuda' else 'on this machine'}; {fix}")


def _size(nbytes: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes / 1e3:.3g} kB"
