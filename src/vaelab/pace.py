"""The CPU thread count chosen while training, by timing the training steps themselves.

Quiet, all cores train the default VAE faster than 1 thread; with one other busy process beside it, all
cores fall far below 1 thread (OpenMP's threads wait for each other at every barrier, and one of them is
descheduled) while 1 thread keeps most of its speed: benchmarks/results/threads-under-load.md. So when the user has not
chosen a count (`--threads`, or OMP_NUM_THREADS in the environment), training times a few steps at each
candidate count, keeps the fastest, and times them again when the steps become much slower.

Thread counts change the order of floating-point sums, not what is computed: a run whose count was chosen
this way is reproducible to rounding; `--threads N` makes it bit for bit.
"""
from __future__ import annotations

import os
from typing import Callable

import torch

from .machine import available_cpus

WARMUP_STEPS = 5      # untimed steps after a change of count (the thread pool wakes up)
TRIAL_STEPS = 20      # timed steps per candidate count and round
ROUNDS = 2            # rounds of a trial, the candidates alternating: a drift in speed (caches warming at the
                      # start of training) falls on every candidate alike
WATCH_STEPS = 200     # steps between checks of the chosen count's speed
SLOWER = 0.6          # a watched speed below this fraction of the chosen count's trial speed: time them again
RETRY_STEPS = 5_000   # and in any case after this many steps (a choice made in a noisy moment is not kept for ever)


def chooses_threads(threads: int | None, device: torch.device, processes: int) -> bool:
    """Whether training picks its own thread count: none given (threads=None and no OMP_NUM_THREADS), on a
    CPU with more than one core, in a single process (under torchrun each process keeps its own count)."""
    return (threads is None and "OMP_NUM_THREADS" not in os.environ and device.type == "cpu" and processes == 1
            and available_cpus() > 1)


class ThreadPacer:
    """Times training steps (step_done(seconds), once per step) and sets the fastest thread count.

    Candidates: all available CPUs and 1. A trial gives each candidate, in ROUNDS alternating rounds,
    WARMUP_STEPS untimed steps then TRIAL_STEPS timed ones; the fastest is kept and its speed remembered.
    Every WATCH_STEPS steps the speed is compared with it, and a new trial starts when it has fallen below
    SLOWER of it, or RETRY_STEPS after the last choice. `choices` records each decision: (step number,
    count, {count: steps per second})."""

    def __init__(self, cpus: int | None = None, set_threads: Callable[[int], None] = torch.set_num_threads):
        cpus = cpus or available_cpus()
        self.candidates = sorted({cpus, 1}, reverse=True)
        self.set_threads = set_threads
        self.choices: list[tuple[int, int, dict[int, float]]] = []
        self.steps_done = 0
        self.chosen: int | None = None
        self.reference = 0.0
        self._start_trial()

    def _start_trial(self) -> None:
        self.queue = self.candidates * ROUNDS
        self.totals = {c: [0, 0.0] for c in self.candidates}   # timed steps, seconds
        self._use(self.queue[0])

    def _use(self, count: int) -> None:
        self.set_threads(count)
        self.skip, self.timed, self.seconds = WARMUP_STEPS, 0, 0.0

    def step_done(self, seconds: float) -> None:
        """One training step took `seconds` (validation and checkpoints left out by the caller)."""
        self.steps_done += 1
        if self.skip:
            self.skip -= 1
            return
        self.timed += 1
        self.seconds += seconds
        if self.queue and self.timed == TRIAL_STEPS:   # a candidate's round is over
            total = self.totals[self.queue.pop(0)]
            total[0], total[1] = total[0] + self.timed, total[1] + self.seconds
            if self.queue:
                self._use(self.queue[0])
            else:
                self._choose()
        elif not self.queue and self.timed == WATCH_STEPS:   # watching the chosen count
            slower = self.timed / max(self.seconds, 1e-9) < SLOWER * self.reference
            if slower or self.steps_done - self.choices[-1][0] >= RETRY_STEPS:
                self._start_trial()
            else:
                self.timed, self.seconds = 0, 0.0

    def _choose(self) -> None:
        rates = {c: steps / max(seconds, 1e-9) for c, (steps, seconds) in self.totals.items()}
        self.chosen = max(rates, key=lambda c: (rates[c], c))
        self.reference = rates[self.chosen]
        self.choices.append((self.steps_done, self.chosen, rates))
        self._use(self.chosen)
