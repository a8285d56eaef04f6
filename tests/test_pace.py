"""Training picks its CPU thread count by timing its own steps, and picks again when they slow down."""
import pytest
import torch

import vaelab
from vaelab import pace
from vaelab.pace import (RETRY_STEPS, ROUNDS, SLOWER, TRIAL_STEPS, WARMUP_STEPS, WATCH_STEPS, ThreadPacer,
                         chooses_threads)


def drive(pacer: ThreadPacer, seconds_per_step: dict, steps: int, used: list) -> None:
    """Feed the pacer `steps` steps, each taking what the current thread count takes."""
    for _ in range(steps):
        pacer.step_done(seconds_per_step[used[-1]])


def test_the_fastest_count_is_kept_and_timed_again_when_steps_slow_down():
    used = []
    pacer = ThreadPacer(cpus=2, set_threads=used.append)
    trial = 2 * ROUNDS * (WARMUP_STEPS + TRIAL_STEPS)
    drive(pacer, {2: 0.03, 1: 0.01}, trial, used)   # loaded: 2 threads wait on each other
    assert used == [2, 1] * ROUNDS + [1] and pacer.chosen == 1
    (step, count, rates), = pacer.choices
    assert step == trial and count == 1 and rates == pytest.approx({2: 1 / 0.03, 1: 1 / 0.01})
    drive(pacer, {2: 0.03, 1: 0.01 / (SLOWER + 0.1)}, WARMUP_STEPS + WATCH_STEPS, used)   # slower, not enough
    assert used == [2, 1] * ROUNDS + [1] and len(pacer.choices) == 1
    drive(pacer, {2: 0.01, 1: 0.05}, WARMUP_STEPS + WATCH_STEPS, used)   # the load went, 1 thread got slow
    assert used[-1] == 2 and len(pacer.choices) == 1   # a new trial has begun, with all CPUs
    drive(pacer, {2: 0.01, 1: 0.05}, trial, used)
    assert pacer.chosen == 2 and pacer.choices[-1][1] == 2 and used[-1] == 2
    before = len(used)
    drive(pacer, {2: 0.01, 1: 0.05}, RETRY_STEPS + trial, used)   # as fast as ever: timed again all the same
    assert len(used) > before and len(pacer.choices) == 3 and pacer.chosen == 2


def test_a_tie_keeps_more_threads_and_one_cpu_has_nothing_to_choose():
    used = []
    pacer = ThreadPacer(cpus=4, set_threads=used.append)
    drive(pacer, {4: 0.01, 1: 0.01}, 2 * ROUNDS * (WARMUP_STEPS + TRIAL_STEPS), used)
    assert pacer.chosen == 4 and ThreadPacer(cpus=1, set_threads=used.append).candidates == [1]


def test_only_a_count_nobody_chose_is_chosen(monkeypatch):
    monkeypatch.setattr(pace, "available_cpus", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cpu = torch.device("cpu")
    assert chooses_threads(None, cpu, 1)
    assert not chooses_threads(1, cpu, 1)                        # --threads N
    assert not chooses_threads(None, torch.device("cuda"), 1)    # a GPU's steps
    assert not chooses_threads(None, cpu, 2)                     # torchrun
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert not chooses_threads(None, cpu, 1)                     # the environment's choice
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(pace, "available_cpus", lambda: 1)
    assert not chooses_threads(None, cpu, 1)


def test_a_run_records_the_count_it_chose(tmp_path, monkeypatch):
    monkeypatch.setattr(pace, "available_cpus", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads = torch.get_num_threads()
    run = vaelab.train("vae", out=tmp_path / "r", iters=120, eval_every=60, log_every=10, checkpoint_every=60,
                       iwae_k=[1], eval_repeats=1, progress=False, z_dim=2, hidden="16")
    (choice,) = run.history()["threads"]
    assert choice["iteration"] == 2 * ROUNDS * (WARMUP_STEPS + TRIAL_STEPS) and choice["threads"] in (1, 2)
    assert set(choice["steps_per_second"]) == {"1", "2"} and min(choice["steps_per_second"].values()) > 0
    assert torch.get_num_threads() == threads   # vaelab.train gives the session its count back
