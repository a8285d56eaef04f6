"""The training runtime: exact resume after SIGKILL, run-folder lock, non-finite gradients, --resume options."""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from vaelab.cli import main
from vaelab.errors import VaelabError
from vaelab.runs.folder import lock_run_dir
from vaelab.storage import load_checkpoint
from vaelab.config import TrainConfig
from vaelab.trainer import fit
from vaelab.batches import prepare_data
from vaelab.runs.train import resume_run, train_run
import vaelab.runs.train as pipeline_mod
import vaelab.trainer as trainer_mod

SRC = Path(__file__).resolve().parents[1] / "src"
TIMING = ("train_seconds", "iters_per_second")   # wall-clock numbers: the only ones allowed to differ


def _per_seed(run: Path) -> dict:
    per_seed = json.loads((run / "metrics.json").read_text())["per_seed"]
    return {s: {k: v for k, v in m.items() if k not in TIMING} for s, m in per_seed.items()}


def _same(a: dict, b: dict) -> None:
    """Exact equality (NaN == NaN where a metric is NaN)."""
    assert a.keys() == b.keys()
    for s in a:
        assert a[s].keys() == b[s].keys()
        for k in a[s]:
            assert a[s][k] == b[s][k] or (a[s][k] != a[s][k] and b[s][k] != b[s][k]), (s, k, a[s][k], b[s][k])


KILL_ARGS = ["--iters", "200", "--checkpoint-every", "25", "--eval-every", "50", "--val-size", "200",
             "--iwae-k", "2", "--eval-repeats", "1", "--threads", "1", "--no-progress"]


def test_sigterm_stops_training_as_ctrl_c_does_and_names_the_resume_command(tmp_path):
    """A job scheduler's SIGTERM: exit status 143 and one line saying how to continue, not a silent death."""
    run = tmp_path / "termed"
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "vaelab", "train", "vae", "--out", str(run), "--iters", "100000",
                             "--threads", "1", "--no-progress"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "seed-0").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)   # into the training loop
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == (f"vaelab: terminated; files already written are complete (checkpoints are "
                                            f"written atomically); continue it with `vaelab train --resume {run}` "
                                            f"(training goes on from the last checkpoint written)")


def test_run_killed_with_sigkill_and_resumed_ends_exactly_like_an_uninterrupted_run(tmp_path):
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "vaelab", "train", "vae", "--out", str(killed), *KILL_ARGS],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = killed / "seed-0" / "checkpoint.pt"
    delay = random.uniform(0.0, 1.0)   # a random point after the first checkpoint: mid-step, mid-write, or later

    def kill_after_first_checkpoint():
        deadline = time.monotonic() + 120
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_after_first_checkpoint)
    killer.start()
    try:   # meanwhile, the uninterrupted reference (in this process: same code, same single thread)
        assert main(["train", "vae", "--out", str(tmp_path / "reference"), *KILL_ARGS]) == 0
    finally:
        killer.join()
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    assert load_checkpoint(ckpt)["iteration"] % 25 == 0   # the atomic write left a whole checkpoint
    if (killed / "metrics.json").exists():   # killed after the end (rare): nothing to resume
        assert _exit_code(["train", "--resume", str(killed)]) == 2
    else:
        assert main(["train", "--resume", str(killed), "--threads", "1", "--no-progress"]) == 0
    _same(_per_seed(killed), _per_seed(tmp_path / "reference"))
    hist = [json.loads((run / "seed-0" / "history.json").read_text()) for run in (killed, tmp_path / "reference")]
    for key in ("iteration", "nelbo", "kl", "rec", "val_iteration", "val_nelbo"):
        assert hist[0][key] == hist[1][key], key


class _Interrupt(BaseException):
    pass


def test_multi_seed_run_interrupted_in_its_second_seed_resumes_skipping_the_finished_one(tmp_path, monkeypatch):
    cfg = dict(iters=60, checkpoint_every=20, eval_every=30, log_every=10, seeds=[0, 1], val_size=100, iwae_k=[2],
               eval_repeats=1, progress=False, threads=1)
    reference = train_run(TrainConfig(out=str(tmp_path / "ref"), **cfg))
    real_save, saves = trainer_mod.save_checkpoint, []

    def save_then_die(path, state):
        if Path(path).name != "checkpoint.pt":   # best.pt, at each better validation
            return real_save(path, state)
        if len(saves) == 4:   # seed 0: 20, 40, 60; seed 1: 20, then "killed" before 40
            raise _Interrupt
        saves.append(state["iteration"])
        real_save(path, state)

    monkeypatch.setattr(trainer_mod, "save_checkpoint", save_then_die)
    with pytest.raises(_Interrupt):
        train_run(TrainConfig(out=str(tmp_path / "run"), **cfg))
    monkeypatch.setattr(trainer_mod, "save_checkpoint", real_save)
    assert list(_per_seed(tmp_path / "run")) == ["0"]
    seed0 = (tmp_path / "run" / "seed-0" / "model.safetensors").stat().st_mtime_ns
    calls = []
    real_fit = pipeline_mod.fit
    monkeypatch.setattr(pipeline_mod, "fit", lambda *a, **k: calls.append(k["resume"]["iteration"]) or real_fit(*a, **k))
    resume_run(tmp_path / "run", threads=1)
    assert calls == [20]   # seed 0 skipped, seed 1 continued from its iteration-20 checkpoint
    assert (tmp_path / "run" / "seed-0" / "model.safetensors").stat().st_mtime_ns == seed0
    _same(_per_seed(tmp_path / "run"), _per_seed(reference))
    with pytest.raises(VaelabError, match="already complete"):
        resume_run(tmp_path / "run")


def test_a_second_writer_of_a_run_folder_in_use_is_refused(tmp_path, capsys):
    run = tmp_path / "busy"
    with lock_run_dir(run):
        assert _exit_code(["train", "vae", "--out", str(run), "--iters", "5", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"is in use by another vaelab process (pid {os.getpid()})" in err and "--out" not in err
        assert "wait for it to finish, or work on a copy of the run folder" in err
        assert not (run / "config.json").exists()
    with lock_run_dir(run):   # released with its holder
        pass


def test_resume_refuses_changed_options_and_names_the_allowed_ones(tmp_path, capsys):
    run = tmp_path / "r"
    (run).mkdir()
    (run / "config.json").write_text(json.dumps({**TrainConfig(iters=300).validate().__dict__, "out": str(run)}))
    assert _exit_code(["train", "vae", "--resume", str(run), "--iters", "500"]) == 2
    err = capsys.readouterr().err
    assert "--iters (run: 300, given: 500)" in err and "--threads" in err and len(err.splitlines()) == 1
    assert _exit_code(["train", "gmvae", "--resume", str(run)]) == 2
    assert "trains 'vae', not 'gmvae'" in capsys.readouterr().err
    assert _exit_code(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "not a vaelab run folder" in capsys.readouterr().err
    assert _exit_code(["train"]) == 2
    assert "needs a MODEL" in capsys.readouterr().err


def test_non_finite_gradient_stops_before_the_step_naming_iteration_and_parameter(tmp_path):
    cfg = TrainConfig(iters=30, checkpoint_every=10, eval_every=1000, progress=False, val_size=0).validate()
    data = prepare_data(cfg, torch.device("cpu"))
    from vaelab.models import build_model
    model = build_model("vae", data.x_dim)
    real_loss, calls = model.loss, {"n": 0}
    w = model.dec.net[0].weight

    def poisoned(x, y=None):
        calls["n"] += 1
        loss, terms = real_loss(x, y)
        if calls["n"] == 17:   # value 0, gradient 0 * inf = NaN: the loss stays finite
            loss = loss + 0.0 * torch.sqrt(w.sum() - w.sum().detach())
        return loss, terms

    model.loss = poisoned
    (tmp_path / "seed-0").mkdir()
    with pytest.raises(VaelabError) as e:
        fit(model, data, cfg, tmp_path / "seed-0")
    msg = str(e.value)
    assert "gradients went non-finite at iteration 17" in msg and "dec.net.0.weight" in msg
    assert "iteration 10" in msg and "lower lr" in msg
    assert torch.isfinite(w).all()   # stopped before the optimizer step
    assert load_checkpoint(tmp_path / "seed-0" / "checkpoint.pt")["iteration"] == 10


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def test_figures_are_written_atomically(tmp_path, monkeypatch):
    """A PNG is rendered in memory and renamed into place: a failure mid-write keeps the old picture."""
    import matplotlib.image
    import matplotlib.pyplot as plt
    from vaelab import plots

    path = tmp_path / "samples.png"
    plots.save_grid(path, torch.rand(4, 784), 2, 2)
    before = path.read_bytes()
    assert before[:8] == b"\x89PNG\r\n\x1a\n"

    def broken(fname, *args, **kwargs):
        fname.write(b"\x89PNG half")
        raise OSError("disk full")
    monkeypatch.setattr(matplotlib.image, "imsave", broken)
    with pytest.raises(OSError, match="disk full"):
        plots.save_grid(path, torch.rand(4, 784), 2, 2)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["samples.png"]
    fig = plt.figure()
    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        plots.save_figure(fig, tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()
