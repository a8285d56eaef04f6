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
    (["train", "ssvae", "--gw", "nan"], "finite"),
    (["train", "ssvae", "--cw", "-1"], "weights must be >= 0"),
    (["train", "m1m2", "--iters", "100", "--m1-iters", "100"], "no iterations after stage 1"),
    (["train", "m1m2", "--m1-iters", "-1"], "positive integer"),
    (["train", "ssvae", "--labels-per-class", "1000"], "lower --labels-per-class"),
    (["train", "ssvae", "--label-seed", "-3"], "from 0 to"),
    (["train", "--resume"], "expected one argument"),
    (["eval", "/no/such/run"], "not a vaelab run folder"),
    (["eval", ".", "--iwae-k", "0"], "positive integer"),
    (["eval", ".", "--eval-repeats", "0"], "positive integer"),
    (["sample", "/no/such/run"], "not a vaelab run folder"),
    (["sample", ".", "--rows", "0"], "positive integer"),
    (["sample", ".", "--rows", "1000", "--cols", "1000"], "at most"),
    (["sample", ".", "--seed", "x"], "from 0 to"),
    (["sample", ".", "--device", "gpu"], "invalid choice"),
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
