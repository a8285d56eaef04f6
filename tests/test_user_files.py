"""A user's files are never touched, the right weights are always used, and every mistake is one line."""
import os

import pytest
import torch

from vaelab.cli import main
from vaelab.errors import VaelabError
from vaelab.runs import lock_run_dir, read_json

QUICK = ["--iters", "40", "--eval-every", "20", "--log-every", "10", "--checkpoint-every", "20", "--iwae-k", "1",
         "--eval-repeats", "1", "--no-progress", "--z-dim", "2", "--hidden", "16"]


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    out = tmp_path_factory.mktemp("done") / "run"
    assert main(["train", "vae", "--out", str(out), *QUICK]) == 0
    return out


def test_a_folder_of_the_users_own_is_refused_and_left_alone(tmp_path, monkeypatch, capsys):
    mine = tmp_path / "p"
    mine.mkdir()
    (mine / "report.md").write_text("mine")
    monkeypatch.chdir(mine)
    assert main(["train", "vae", "--out", "", *QUICK]) == 2
    err = capsys.readouterr().err
    assert "holds other files (report.md) and is not a vaelab run" in err and err.count("\n") == 1
    assert sorted(os.listdir(mine)) == ["report.md"] and (mine / "report.md").read_text() == "mine"
    assert main(["train", "vae", "--out", str(tmp_path / "empty"), *QUICK]) == 0   # a new folder is fine


def test_a_late_check_leaves_no_folder_behind(tmp_path, capsys):
    out = tmp_path / "X"
    assert main(["train", "vae", "--out", str(out), "--batch-size", "100000", *QUICK]) == 2
    assert "--batch-size 100000 is larger than the training set" in capsys.readouterr().err
    assert not out.exists()
    assert main(["train", "vae", "--out", str(out), *QUICK]) == 0


def test_score_uses_the_best_epoch_not_the_last_checkpoint(tmp_path, capsys):
    from vaelab.saved import score_run

    out = tmp_path / "es"
    assert main(["train", "vae", "--out", str(out), "--epochs", "3", "--patience", "1", "--iwae-k", "1",
                 "--eval-repeats", "1", "--no-progress", "--z-dim", "2", "--hidden", "16"]) == 0
    nelbo = read_json(out / "metrics.json")["per_seed"]["0"]["nelbo"]
    last = torch.load(out / "seed-0" / "checkpoint.pt", weights_only=True)
    last["model"] = {k: torch.zeros_like(v) for k, v in last["model"].items()}   # the last weights, ruined
    torch.save(last, out / "seed-0" / "checkpoint.pt")
    score = score_run(out, repeats=5)["mean_score"]
    assert score == pytest.approx(nelbo, rel=0.03)   # zero weights would score 784 log 2 = 543


def test_commands_on_an_unfinished_run_say_so_and_respect_the_lock(done, tmp_path, capsys):
    import shutil

    from vaelab.saved import sample_run

    run = tmp_path / "unfinished"
    shutil.copytree(done, run)
    (run / "metrics.json").unlink()   # as if killed before the seed finished
    assert main(["sample", str(run), "--rows", "2", "--cols", "2"]) == 0
    assert "seed 0 is unfinished (checkpoint at iteration 40 of 40)" in capsys.readouterr().err
    assert main(["eval", str(run)]) == 2
    assert "no seed has finished training yet" in capsys.readouterr().err
    with lock_run_dir(run):   # a training process holds it: nothing may be written into the folder
        with pytest.raises(VaelabError, match="in use by another vaelab process"):
            sample_run(run, rows=1, cols=1)
        sample_run(run, rows=1, cols=1, out=tmp_path / "elsewhere.png")   # outside the folder: fine


def test_resume_rebuilds_a_missing_report(done, tmp_path, capsys):
    import shutil

    run = tmp_path / "noreport"
    shutil.copytree(done, run)
    (run / "report.md").unlink()   # killed between metrics.json and report.md
    assert main(["train", "--resume", str(run)]) == 0
    assert (run / "report.md").exists()
    assert main(["train", "--resume", str(run)]) == 2
    assert "already complete" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--iters", "99999999999999999999999"], "--iters 99999999999999999999999 is more than 1,000,000,000"),
    (["--hidden", ","], "hidden sizes ',': no sizes given"),
])
def test_absurd_values_are_refused(args, message, tmp_path, capsys):
    assert main(["train", "vae", "--out", str(tmp_path / "r"), *QUICK, *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_diverged_run_ends_with_a_warning(capsys):
    from vaelab.config import TrainConfig
    from vaelab.trainer import _warn_if_worse

    _warn_if_worse({"loss": [540.0, 300.0, 1.7e15]}, TrainConfig(lr=10.0), main=True)
    assert "training diverged; try a lower --lr than 10.0" in capsys.readouterr().err
    _warn_if_worse({"loss": [540.0, 100.0]}, TrainConfig(), main=True)
    assert capsys.readouterr().err == ""
