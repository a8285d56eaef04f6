"""Every command-line option answers a bad value with one line `PROG: error: ...` (exit 2), never a traceback."""
import argparse

import pytest

from vaelab.cli import build_parser, main


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def _all_options():
    stack, found = [build_parser()], []
    while stack:
        p = stack.pop()
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                stack.extend(a.choices.values())
            elif a.option_strings:
                found.append((p.prog, a))
    return found


def test_no_option_takes_a_bare_int_or_float():
    """Bare int/float accept 0, negatives, nan, inf: every numeric option has a checking type."""
    loose = [f"{prog} {a.option_strings[0]}" for prog, a in _all_options() if a.type in (int, float)]
    assert not loose


QUICK = ["--iters", "2", "--eval-repeats", "1", "--iwae-k", "1", "--no-progress", "--threads", "1", "--val-size", "0"]


@pytest.mark.parametrize("argv, fragment", [
    (["train", "vae", "--z-dim", "0"], "positive integer"),
    (["train", "vae", "--z-dim", "x"], "positive integer"),
    (["train", "vae", "--itres", "5"], "unrecognized arguments: --itres 5; --itres: did you mean --iters? "
                                       "(see `vaelab train vae --help`)"),
    (["train", "vae", "--k", "5"], "--k is an option of `vaelab train gmvae`, `vaelab train vamp`"),
    (["train", "ssvae", "--iw-k", "5"], "--iw-k is an option of `vaelab train` for vae, gmvae, vamp, hvae, cvae"),
    (["sample", ".", "--seeds", "1"], "--seeds: did you mean --seed? (see `vaelab sample --help`)"),
    (["train", "--threads", "1", "vae", "--itres", "5"], "--itres: did you mean --iters? (see `vaelab train vae --help`)"),
    (["train", "--iters", "5"], "the model comes right after `train`"),
    (["train", "vea"], "invalid choice: 'vea' (choose from 'vae', 'gmvae', 'vamp', 'hvae', 'ssvae', 'm1m2', 'cvae', 'ae', 'sae', 'cae', 'dae'); did you mean vae?"),
    (["train", "vae", "--z_dim", "3"], "--z_dim: did you mean --z-dim?"),
    (["train", "vae", "--hidden", "3,x"], "hidden sizes"),
    (["train", "vae", "--likelihood", "gaussian", "--sigma", "-1"], "sigma '-1'"),
    (["train", "vae", "--likelihood", "poisson"], "unknown likelihood"),
    (["train", "vae", "--lr", "inf"], "positive finite"),
    (["train", "vae", "--lr=-1e-3"], "positive"),
    (["train", "vae", "--seeds", "-1"], "from 0 to"),
    (["train", "vae", "--seeds", "1", "1"], "repeated"),
    (["train", "vae", "--seeds", "1" + "0" * 30], "from 0 to"),
    (["train", "vae", "--binarize", "maybe"], "invalid choice"),
    (["train", "vae", "--val-size", "-1"], ">= 0"),
    (["train", "vae", "--eval-every", "0"], "positive integer"),
    (["train", "vae", "--checkpoint-every", "1.5"], "positive integer"),
    (["train", "vae", "--iwae-k", "0"], "positive integer"),
    (["train", "vae", "--eval-repeats", "-2"], "positive integer"),
    (["train", "vae", "--threads", "0"], "positive integer"),
    (["train", "vae", "--device", "tpu"], "invalid choice"),
    (["train", "vae", "--data-dir", "/no/such/folder"], "no such folder"),
    (["train", "vae", "--batch-size", "100000"], "larger than the training set"),
    (["train", "vae", "--out", "/proc/no/such/run"], "cannot create"),
    (["train", "gmvae", "--k", "0"], "positive integer"),
    (["train", "sae", "--top-k", "-1"], "an integer >= 0"),
    (["train", "dae", "--clip", "2"], "expected 0 or 1, got 2"),
    (["train", "ssvae", "--gw", "nan"], "finite"),
    (["train", "ssvae", "--cw", "-1"], "weights must be >= 0"),
    (["train", "m1m2", "--iters", "100", "--m1-iters", "100"], "no iterations after stage 1"),
    (["train", "m1m2", "--m1-iters", "-1"], "an integer >= 0"),
    (["train", "m1m2", "--z1-sigma", "learned"], "z1_sigma = 'learned': give 'dim'"),
    (["train", "m1m2", "--m1-run", "/no/such/run"], "m1_run = '/no/such/run': /no/such/run: no such folder"),
    (["train", "ssvae", "--labels-per-class", "1000"], "lower --labels-per-class"),
    (["train", "ssvae", "--label-seed", "-3"], "from 0 to"),
    (["train", "--resume"], "expected one argument"),
    (["eval", "/no/such/run"], "/no/such/run: no such folder"),
    (["eval", ".", "--iwae-k", "0"], "positive integer"),
    (["eval", ".", "--eval-repeats", "0"], "positive integer"),
    (["sample", "/no/such/run"], "/no/such/run: no such folder"),
    (["sample", ".", "--rows", "0"], "positive integer"),
    (["sample", ".", "--rows", "1000", "--cols", "1000"], "at most"),
    (["sample", ".", "--seed", "x"], "from 0 to"),
    (["sample", ".", "--device", "gpu"], "invalid choice"),
    (["plot", ".", "curves", "--tsne"], "--tsne adds a panel to the scatter figure; drop it for curves"),
    (["datasets", "--data-dir", "/no/such/folder"], "no such folder"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_values_get_one_line_errors(argv, fragment, tmp_path, capsys):
    if argv[0] == "train" and "--out" not in argv and argv[1] != "--resume":
        argv = [*argv, "--out", str(tmp_path / "run"), *QUICK]
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("vaelab") and ": error: " in err and fragment in err, err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("validation") / "vae"
    assert main(["train", "vae", "--out", str(out), *QUICK]) == 0
    return out


def _one_line_error(argv, capsys) -> str:
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("vaelab: error: "), err
    return err


@pytest.mark.parametrize("extra, named", [
    (["--lr", "0.01"], "--lr cannot be given"),
    (["--threads", "1", "--iters=5", "--z-dim", "3"], "--iters --z-dim cannot be given"),
    (["stray"], "stray cannot be given"),
])
def test_training_options_after_resume_without_model_are_named(tiny_run, capsys, extra, named):
    err = _one_line_error(["train", "--resume", str(tiny_run), *extra], capsys)
    assert f"--resume {tiny_run} continues the run with its saved configuration, so {named}" in err, err
    assert "only --data-dir, --device, --threads, --no-progress and --time-budget (to extend the run) may follow " \
           "--resume RUN" in err
    assert "invalid choice" not in err


@pytest.mark.parametrize("argv", [
    ["train", "--resume", "r", "--threads", "2", "--no-progress", "--device", "cpu"],
    ["train", "--resume=r", "--thr", "2", "--data-dir=/tmp"],
    ["train", "--resume", "vae"],                            # a run folder named like a model
    ["train", "--resume", "r", "vae", "--lr", "0.01"],       # MODEL given: compared with the saved configuration
    ["train", "vae", "--lr", "0.01", "--resume", "r"],
    ["train", "--help"],
    ["eval", "r", "--lr", "1"],
])
def test_resume_misuse_check_leaves_other_command_lines_alone(argv):
    from vaelab.cli import _resume_misuse
    assert _resume_misuse(argv) is None


@pytest.mark.parametrize("classes, fragments", [
    (["11"], ["--normal-classes 11: mnist-5k has no such class", "its classes are 0..9"]),
    (["3", "10", "12"], ["--normal-classes 10 12: mnist-5k has no such class"]),
    (["1", "1"], ["--normal-classes 1 1: a class is given twice; name each normal class once"]),
    ([str(c) for c in range(10)], ["--normal-classes 0 1 2 3 4 5 6 7 8 9: that is every class of mnist-5k",
                                   "no test image is an anomaly"]),
])
def test_score_normal_classes_the_data_lacks_or_all_classes_are_errors(tiny_run, tmp_path, capsys, classes, fragments):
    err = _one_line_error(["score", str(tiny_run), "--normal-classes", *classes, "--eval-repeats", "1",
                           "--out", str(tmp_path / "s"), "--threads", "1"], capsys)
    assert all(f in err for f in fragments), err
    assert list(tmp_path.iterdir()) == []


def test_score_on_a_data_set_of_another_shape_is_one_error(tiny_run, tmp_path, capsys):
    """An MNIST run scored on 2D points: the shapes differ, said before the points are prepared (binarized)."""
    err = _one_line_error(["score", str(tiny_run), "--dataset", "moons", "--out", str(tmp_path / "s"),
                           "--threads", "1"], capsys)
    assert "dataset 'moons' has 2 values per example, but the run's model takes 784" in err, err
    assert list(tmp_path.iterdir()) == []


def test_score_with_some_normal_classes_reports_an_auc(tiny_run, tmp_path, capsys):
    assert main(["score", str(tiny_run), "--normal-classes", "1", "--eval-repeats", "1", "--out", str(tmp_path / "s"),
                 "--threads", "1"]) == 0
    assert "ROC AUC" in capsys.readouterr().out


def test_eval_of_a_run_in_use_does_not_suggest_out(tiny_run, capsys):
    from vaelab.runs.folder import lock_run_dir
    with lock_run_dir(tiny_run):
        err = _one_line_error(["eval", str(tiny_run), "--iwae-k", "1", "--no-progress", "--threads", "1"], capsys)
    assert "is in use by another vaelab process" in err and "--out" not in err, err
    assert "wait for it to finish, or work on a copy of the run folder" in err
