"""How many CPU threads PyTorch uses: one check against the machine, then set.

More threads than the process has CPUs never helps (OpenMP's threads wait on each other at every
barrier), and a count far beyond them (100,000) crashes the OpenMP runtime with a segmentation
fault that kills a notebook's kernel, so such a count is refused before it reaches torch.
"""
from __future__ import annotations

import os

import torch

from .errors import VaelabError


def available_cpus() -> int:
    """The CPUs this process may run on: its affinity mask where the system has one, else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):   # no affinity masks (macOS, Windows)
        return os.cpu_count() or 1


def check_threads(threads, flag: str = "--threads") -> None:
    """A thread count must be a positive integer no larger than available_cpus() (VaelabError naming `flag`)."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise VaelabError(f"{flag} must be a positive integer, got {threads!r}")
    cpus = available_cpus()
    if threads > cpus:
        raise VaelabError(f"{flag} {threads}: this process may run on {cpus} CPU(s); give at most {cpus} "
                          f"(more threads than CPUs only wait on each other)")


def set_threads(threads: int | None, flag: str = "--threads") -> None:
    """Check a thread count (check_threads) and give it to PyTorch; None leaves PyTorch's own count."""
    check_threads(threads, flag)
    if threads is not None:
        torch.set_num_threads(threads)
