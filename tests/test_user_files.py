"""A user's files are never touched, the right weights are always used, and every mistake is one line."""
import os

import pytest
import torch

from conftest import CLI_QUICK as QUICK
from vaelab.cli import main
from vaelab import tracking
from vaelab.errors import VaelabError
from vaelab.runs.folder import lock_run_dir
from vaelab.storage import read_json
from vaelab.tracking import EVENT_FILES



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
    from vaelab.runs.commands import score_run

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

    from vaelab.runs.commands import sample_run

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
    (["--threads", "100000"], "--threads 100000: this process may run on"),   # OpenMP crashed with a segfault
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


# --- overwrite=True removes a run's own files and nothing else ---

PY_QUICK = dict(iters=40, eval_every=20, log_every=10, checkpoint_every=20, iwae_k=[1], eval_repeats=1,
                progress=False, z_dim=2, hidden="16")


def _tree(folder):
    """Every file under folder with its bytes: what must be unchanged after a refused overwrite."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("config", ['{"name": "my project"}', "{}", "not json at all", None])
def test_overwrite_refuses_a_project_folder_and_deletes_nothing(tmp_path, config):
    import vaelab

    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "data").mkdir()
    (project / "src" / "main.py").write_text("print('mine')\n")
    (project / "data" / "results.csv").write_text("a,b\n1,2\n")
    (project / "thesis.tex").write_text("\\documentclass{article}\n")
    if config is not None:
        (project / "config.json").write_text(config)
    before = _tree(project)
    with pytest.raises(VaelabError, match=r"is not a vaelab run; overwrite replaces only a vaelab run folder") as e:
        vaelab.train("vae", out=project, overwrite=True, **PY_QUICK)
    assert "\n" not in str(e.value) and "out='" in str(e.value) and "--out" not in str(e.value)
    assert _tree(project) == before and sorted(os.listdir(project)) == sorted(
        ["src", "data", "thesis.tex"] + (["config.json"] if config is not None else []))


def test_overwrite_keeps_a_users_file_in_a_run_folder(done, tmp_path):
    import shutil

    import vaelab

    out = tmp_path / "run"
    shutil.copytree(done, out)
    (out / "my_analysis.ipynb").write_text("{}")
    (out / "seed-0" / "notes.txt").write_text("mine")
    before = _tree(out)
    with pytest.raises(VaelabError, match=r"also holds files vaelab did not write \(my_analysis.ipynb, "
                                          r"seed-0/notes.txt\); move them elsewhere first"):
        vaelab.train("vae", out=out, overwrite=True, **PY_QUICK)
    assert _tree(out) == before


def test_overwrite_respects_the_lock_of_a_running_run(done, tmp_path):
    import shutil

    import vaelab

    out = tmp_path / "run"
    shutil.copytree(done, out)
    before = _tree(out)
    with lock_run_dir(out):   # as a `vaelab train` still writing this folder holds it
        with pytest.raises(VaelabError, match=r"is in use by another vaelab process \(pid \d+\)"):
            vaelab.train("vae", out=out, overwrite=True, **PY_QUICK)
        assert {k: v for k, v in _tree(out).items() if k != ".lock"} == \
            {k: v for k, v in before.items() if k != ".lock"}


def test_every_file_vaelab_writes_is_its_own_and_overwrite_replaces_them(done, tmp_path, capsys):
    """A run folder after train, sample, score and plot holds only files foreign_files knows as vaelab's;
    overwrite=True then replaces the run (the folder stays, nothing of the old run is left)."""
    import shutil

    import vaelab
    from vaelab.runs.report import FIGURES
    from vaelab.runs.folder import RUN_FILES, _ours, foreign_files

    assert all(_ours(name, RUN_FILES) for name, *_ in FIGURES)   # a new report figure must be listed as vaelab's
    out = tmp_path / "run"
    shutil.copytree(done, out)
    for args in (["sample", str(out), "--rows", "2", "--cols", "3"], ["score", str(out), "--no-progress"],
                 ["score", str(out), "--normal-classes", "1", "2", "--no-progress"], ["plot", str(out), "recon"],
                 ["plot", str(out), "curves"]):
        assert main(args) == 0, capsys.readouterr().err
    (out / ".metrics.json.abcd1234.tmp").write_text("{")   # a write cut short by a kill
    (out / "seed-0" / ".checkpoint.pt.abcd1234.tmp").write_bytes(b"")
    names = set(os.listdir(out))
    events = sorted((out / "seed-0").glob(EVENT_FILES))   # TensorBoard's, written when its package is installed
    assert len(events) == int(tracking.available())
    assert {"samples-2x3-seed0.png", "recon.png", "scores-mnist-5k-seed0.csv",
            "scores-mnist-5k-seed0-normal1-2.json"} <= names, names
    assert foreign_files(out) == []
    run = vaelab.train("vae", out=out, overwrite=True, **{**PY_QUICK, "iters": 20, "eval_every": 10,
                                                          "checkpoint_every": 10})
    assert run.config.iters == 20 and len(run.history(0)["iteration"]) == 2
    assert not any(n.startswith(("scores-", "samples-2x3", ".metrics")) for n in os.listdir(out))
    assert not (out / "seed-0" / ".checkpoint.pt.abcd1234.tmp").exists() and not any(p.exists() for p in events)


def test_a_run_killed_before_its_config_was_renamed_can_start_again(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text("12345\n")
    (out / ".config.json.k1ll3d00.tmp").write_text('{"model": "va')
    assert main(["train", "vae", "--out", str(out), *QUICK]) == 0, capsys.readouterr().err
    assert not list(out.glob(".config.json.*.tmp")) and read_json(out / "config.json")["model"] == "vae"
    from vaelab.runs.folder import check_replaceable

    left = tmp_path / "left"   # what a run refused after taking its lock leaves: overwrite may use it
    left.mkdir()
    (left / ".lock").write_text("")
    check_replaceable(left)


def test_more_threads_than_cpus_is_refused_everywhere(done, capsys):
    """A thread count beyond the machine's CPUs crashed the OpenMP runtime (a segmentation fault that kills
    a notebook's kernel), and `sample` then blamed a damaged checkpoint: it is one line naming the option."""
    import vaelab
    from vaelab.machine import available_cpus

    too_many = available_cpus() + 1
    for command in (["sample", str(done)], ["eval", str(done), "--iwae-k", "1"], ["plot", str(done), "curves"],
                    ["score", str(done)]):
        assert main([*command, "--threads", str(too_many)]) == 2
        err = capsys.readouterr().err
        assert f"--threads {too_many}: this process may run on {too_many - 1} CPU(s); give at most" in err, err
        assert "damaged" not in err and err.count("\n") == 1
    with pytest.raises(VaelabError, match=rf"^threads={too_many}: this process may run on"):
        vaelab.train("vae", threads=too_many, iters=10)
    assert main(["sample", str(done), "--threads", str(too_many - 1), "--rows", "1", "--cols", "1"]) == 0


# --- kills at the end of a run, and run folders edited by hand ---

def _copy(done, to):
    import shutil

    shutil.copytree(done, to)
    return to


def test_a_kill_during_evaluation_resumes_with_the_whole_history(done, tmp_path):
    """Killed after training, during the evaluation: the resumed seed's history keeps its best validation
    iteration and value (they were lost), and its metrics are the uninterrupted run's."""
    run = _copy(done, tmp_path / "killed")
    (run / "metrics.json").unlink()
    (run / "report.md").unlink()
    assert main(["train", "--resume", str(run)]) == 0
    before, after = read_json(done / "seed-0" / "history.json"), read_json(run / "seed-0" / "history.json")
    assert after["best_iteration"] == before["best_iteration"] > 0 and after["best_val"] == before["best_val"]
    assert after["iteration"] == before["iteration"] and after["val_nelbo"] == before["val_nelbo"]
    assert read_json(run / "metrics.json")["per_seed"]["0"]["nelbo"] == read_json(done / "metrics.json")["per_seed"]["0"]["nelbo"]


def test_a_stale_report_is_rebuilt_on_resume(done, tmp_path, capsys):
    """Killed between metrics.json and report.md: the report left is older than the metrics (it showed the
    seeds finished before); --resume rebuilds it instead of calling the run complete."""
    run = _copy(done, tmp_path / "stale")
    (run / "report.md").write_text("an earlier report\n")
    metrics_time = os.stat(run / "metrics.json").st_mtime
    os.utime(run / "report.md", (metrics_time - 60, metrics_time - 60))
    assert main(["train", "--resume", str(run)]) == 0
    assert (run / "report.md").read_text() == (done / "report.md").read_text()
    assert main(["train", "--resume", str(run)]) == 2
    assert "already complete" in capsys.readouterr().err


@pytest.mark.parametrize("iteration", [10**9, -5])
def test_an_edited_checkpoint_iteration_is_refused(done, tmp_path, iteration, capsys):
    from vaelab.storage import load_checkpoint, save_checkpoint

    run = _copy(done, tmp_path / "edited")
    (run / "metrics.json").unlink()
    state = load_checkpoint(run / "seed-0" / "checkpoint.pt")
    save_checkpoint(run / "seed-0" / "checkpoint.pt", {**state, "iteration": iteration})
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"iteration {iteration} is outside this run's 0..40; the checkpoint was edited or damaged" in err, err
    assert not (run / "metrics.json").exists()


@pytest.mark.parametrize("field, value, shown", [
    ("dataset", "fashion-mnist", "metrics.json (dataset='mnist-5k')"),
    ("model_options", {"z_dim": 3}, "seed-0/checkpoint.pt (model_options={'z_dim': 2, 'hidden': '16'})"),
])
def test_a_config_json_edited_by_hand_is_not_used_silently(done, tmp_path, field, value, shown, capsys):
    """eval evaluated an MNIST model on Fashion-MNIST after config.json's dataset was edited, and merged that
    into metrics.json: the checkpoint's own configuration is compared first."""
    import json

    run = _copy(done, tmp_path / "edited")
    config = read_json(run / "config.json")
    value = {**config[field], **value} if isinstance(value, dict) else value
    (run / "config.json").write_text(json.dumps({**config, field: value}))
    metrics = (run / "metrics.json").read_text()
    assert main(["eval", str(run), "--iwae-k", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"config.json: {field} differ(s) from {shown}" in err and "the run folder was edited" in err, err
    assert (run / "metrics.json").read_text() == metrics


@pytest.mark.parametrize("args, message", [
    (["vae", "--sigma", "0.5"], "--sigma 0.5: sigma is the Gaussian likelihood's std, and this run's likelihood "
                                "is bernoulli; leave --sigma out, or add --likelihood gaussian"),
    (["vae", "--channels", "8,16"], "--channels 8,16: the channels are the conv nets' widths, and this run's net is "
                                    "mlp; leave --channels out, or add --net conv"),
    (["cvae", "--n-classes", "3", "--net", "mlp"], "--n-classes 3: mnist-5k has labels 0..9; give --n-classes 10"),
])
def test_options_that_would_be_ignored_or_cannot_fit_are_refused(args, message, tmp_path, capsys):
    """--sigma with a Bernoulli likelihood and --channels with the MLP were stored and ignored without a word;
    --n-classes 3 on ten classes failed with a one-hot error from inside torch."""
    assert main(["train", args[0], "--out", str(tmp_path / "r"), *QUICK[:-4], *args[1:]]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists()


def test_options_that_apply_and_model_inputs_are_checked():
    from vaelab.config import TrainConfig
    from vaelab.models import build_model

    TrainConfig(model="vae", model_options={"likelihood": "gaussian", "sigma": "0.5"}).validate()
    TrainConfig(model="cvae", model_options={"channels": "8,16"}).validate()   # cvae's nets are conv by default
    with pytest.raises(VaelabError, match=r"^x_dim = 0: a model needs a positive whole number of input values"):
        build_model("vae", 0)


def test_a_checkpoint_with_a_tensor_of_another_shape_is_one_line(done, tmp_path, capsys):
    from vaelab.storage import load_checkpoint, save_checkpoint

    run = _copy(done, tmp_path / "shape")
    (run / "metrics.json").unlink()
    state = load_checkpoint(run / "seed-0" / "checkpoint.pt")
    name = next(iter(state["model"]))
    state["model"][name] = torch.zeros(3, 3)
    save_checkpoint(run / "seed-0" / "checkpoint.pt", state)
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt: its weights do not fit this run's model (" in err and err.count("\n") == 1, err


def test_a_data_folder_given_to_a_data_set_that_reads_none_is_refused(tmp_path, capsys):
    """--data-dir with the embedded mnist-5k (or a generated toy set) was stored and ignored: the run trained on
    the embedded digits while the user meant the files in that folder."""
    for dataset in ([], ["--dataset", "moons"]):
        assert main(["train", "vae", "--data-dir", str(tmp_path), *dataset, *QUICK[:-4],
                     "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert f"--data-dir {tmp_path} is given but " in err and "reads no files (embedded or generated): pass --dataset mnist" in err
        assert not (tmp_path / "r").exists()
