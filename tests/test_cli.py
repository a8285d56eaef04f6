"""The command line end to end on the embedded data set, and its answers to bad input."""
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import pytest
import torch

from conftest import REAL_DATA
from vaelab.cli import main
from vaelab.errors import VaelabError
from vaelab.storage import load_checkpoint
from vaelab.config import TrainConfig
from vaelab.trainer import fit
from vaelab.batches import prepare_data
from vaelab.runs.train import train_run

QUICK = ["--iters", "60", "--eval-every", "30", "--checkpoint-every", "30", "--iwae-k", "1", "5",
         "--eval-repeats", "2", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vae"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["train", "vae", "--out", str(out), "--seeds", "0", "1", *QUICK]) == 0
    (out.parent / "train-stdout.txt").write_text(stdout.getvalue())
    return out


def test_train_ends_with_a_line_of_test_metrics(quick_run):
    last = (quick_run.parent / "train-stdout.txt").read_text().splitlines()[-1]
    nelbo = json.loads((quick_run / "metrics.json").read_text())["mean_se"]["nelbo"]
    assert last.startswith("test (2 seeds): nelbo ") and f"nelbo {nelbo['mean']:.4g} ± {nelbo['se']:.2g}" in last
    assert "niwae_1 " in last and "niwae_5 " in last


def test_train_writes_a_complete_run_folder(quick_run):
    for name in ["config.json", "metrics.json", "report.md", "samples.png", "curves.png", "manifold.png",
                 "scatter.png", "recon.png", "interpolate.png", "samples-5x5.png"]:
        assert (quick_run / name).is_file(), name
    for seed in (0, 1):
        for name in ["checkpoint.pt", "model.safetensors", "history.json", "samples.png"]:
            assert (quick_run / f"seed-{seed}" / name).is_file()
    metrics = json.loads((quick_run / "metrics.json").read_text())
    assert set(metrics["per_seed"]) == {"0", "1"}
    for key in ("nelbo", "kl", "rec", "niwae_1", "niwae_5"):
        vals = [metrics["per_seed"][s][key] for s in ("0", "1")]
        assert metrics["mean_se"][key]["mean"] == pytest.approx(sum(vals) / 2)
        assert metrics["mean_se"][key]["se"] == pytest.approx(abs(vals[0] - vals[1]) / 2)
    m = metrics["per_seed"]["0"]
    assert m["nelbo"] == pytest.approx(m["kl"] + m["rec"], rel=1e-6)
    assert 0 < m["kl"] and 0 < m["niwae_5"] <= m["niwae_1"] + 1.0
    assert m["n_test"] == 1000
    grid = mpimg.imread(quick_run / "samples.png")
    assert grid.shape[:2] == (2 * (10 * 30 + 2), 2 * (20 * 30 + 2))   # 10x20 digits, 2-pixel gaps, drawn 2x
    report = (quick_run / "report.md").read_text()
    assert "![Samples from p(x)](samples.png)" in report and "mean ± SE" in report
    ckpt = load_checkpoint(quick_run / "seed-0" / "checkpoint.pt")
    assert ckpt["iteration"] == 60 and "optimizer" in ckpt and "rng_cpu" in ckpt


def test_eval_adds_iwae_bounds_and_updates_report(quick_run, capsys):
    assert main(["eval", str(quick_run), "--iwae-k", "20", "--no-progress", "--threads", "1"]) == 0
    metrics = json.loads((quick_run / "metrics.json").read_text())
    assert "niwae_20" in metrics["per_seed"]["1"] and "niwae_20" in metrics["mean_se"]
    assert "IWAE-20" in (quick_run / "report.md").read_text()
    iwae = metrics["mean_se"]["niwae_20"]   # the headline line shows the recorded bound, mean ± SE over 2 seeds
    assert f"niwae_20 {iwae['mean']:.4g} ± {iwae['se']:.2g}" in capsys.readouterr().out.splitlines()[-1]


def test_the_command_line_shows_a_vaelab_warning_as_one_line(quick_run, capsys, monkeypatch):
    import vaelab.evaluate as ev

    def broken(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler (simulated)\nsecond line")
        return call
    monkeypatch.setattr(ev.torch, "compile", broken)
    assert main(["eval", str(quick_run), "--iwae-k", "9", "--run-seeds", "0", "--compile", "--no-progress",
                 "--threads", "1"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == ["vaelab: warning: compile=True: torch.compile failed here (no C++ compiler (simulated)); "
                   "evaluating uncompiled"]


def test_eval_compile_gives_the_same_bounds(quick_run):
    def bound():
        return json.loads((quick_run / "metrics.json").read_text())["per_seed"]["0"]["niwae_9"]
    assert main(["eval", str(quick_run), "--iwae-k", "9", "--run-seeds", "0", "--no-progress", "--threads", "1"]) == 0
    eager = bound()
    assert main(["eval", str(quick_run), "--iwae-k", "9", "--run-seeds", "0", "--compile", "--no-progress",
                 "--threads", "1"]) == 0
    assert bound() == pytest.approx(eager, abs=1e-3)   # the same seed: the same draws, compiled or not


def test_eval_seed_by_seed_enters_the_mean_once_every_seed_has_it(quick_run, capsys):
    def metrics():
        return json.loads((quick_run / "metrics.json").read_text())
    assert main(["eval", str(quick_run), "--iwae-k", "7", "--run-seeds", "0", "--no-progress", "--threads", "1"]) == 0
    assert "niwae_7" in metrics()["per_seed"]["0"] and "niwae_7" not in metrics()["per_seed"]["1"]
    assert "niwae_7" not in metrics()["mean_se"]
    assert main(["eval", str(quick_run), "--iwae-k", "7", "--run-seeds", "1", "--no-progress", "--threads", "1"]) == 0
    assert metrics()["mean_se"]["niwae_7"]["n"] == 2
    assert _exit_code(["eval", str(quick_run), "--iwae-k", "7", "--run-seeds", "0", "4", "--no-progress"]) == 2
    assert "--run-seeds 4: this run has seeds [0, 1]" in capsys.readouterr().err


def test_sample_writes_the_requested_grid(quick_run, tmp_path, capsys):
    out = tmp_path / "s.png"
    assert main(["sample", str(quick_run), "--rows", "3", "--cols", "4", "--out", str(out), "--threads", "1"]) == 0
    assert mpimg.imread(out).shape[:2] == (2 * (3 * 30 + 2), 2 * (4 * 30 + 2))
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize("model, extra, keys", [
    ("gmvae", ["--k", "20"], ["nelbo", "kl", "rec", "niwae_5"]),
    ("ssvae", ["--batch-size", "50"], ["nelbo", "kl_y", "kl_z", "rec", "accuracy", "accuracy_grey"]),
    ("m1m2", ["--batch-size", "50", "--m1-iters", "20", "--m1-hidden", "64", "--hidden", "32"],
     ["nelbo", "kl", "rec", "kl_y", "kl_z2", "accuracy", "accuracy_grey"]),
])
def test_gmvae_and_ssvae_runs(model, extra, keys, tmp_path):
    out = tmp_path / model
    assert main(["train", model, "--out", str(out), *QUICK, *extra]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in keys:
        assert key in metrics["mean_se"]
    if model in ("ssvae", "m1m2"):
        m = metrics["per_seed"]["0"]
        kl = m["kl_y"] + m["kl_z"] if model == "ssvae" else m["kl"]
        assert m["nelbo"] == pytest.approx(kl + m["rec"], rel=1e-6)
        assert 0.1 < m["accuracy"] <= 1.0
        assert "one row per class" in (out / "report.md").read_text()


@pytest.mark.parametrize("figure", ["manifold", "scatter", "recon", "interpolate", "samples", "curves"])
def test_plot_remakes_each_figure(quick_run, figure, capsys):
    name = "samples-5x5.png" if figure == "samples" else f"{figure}.png"
    (quick_run / name).unlink()
    assert main(["plot", str(quick_run), figure, "--threads", "1"]) == 0
    assert (quick_run / name).is_file() and name in capsys.readouterr().out


def test_plot_grids_have_the_documented_layout(quick_run):
    size = lambda rows, cols, scale=2: (scale * (rows * 30 + 2), scale * (cols * 30 + 2))  # noqa: E731
    assert mpimg.imread(quick_run / "manifold.png").shape[:2] == size(20, 20, scale=1)
    assert mpimg.imread(quick_run / "recon.png").shape[:2] == size(2, 10)
    assert mpimg.imread(quick_run / "interpolate.png").shape[:2] == size(5, 10)
    assert mpimg.imread(quick_run / "samples-5x5.png").shape[:2] == size(5, 5)


def test_principal_directions_find_the_long_axis():
    from vaelab.plots import principal_directions
    torch.manual_seed(0)
    t = torch.randn(500, 1)
    z = torch.cat([3 * t, 0.1 * torch.randn(500, 1), 0.5 * torch.randn(500, 1)], 1) + torch.tensor([1.0, 2.0, 3.0])
    mean, dirs = principal_directions(z)
    assert torch.allclose(mean, z.mean(0))
    assert abs(dirs[0, 0]) > 0.99 and abs(dirs[1, 2]) > 0.99
    assert torch.allclose(dirs @ dirs.T, torch.eye(2), atol=1e-5)


def test_train_help_shows_model_options_with_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "vae", "--help"])
    text = capsys.readouterr().out
    assert "--beta" in text and "(default: 1.0)" in text and "--z-dim" in text
    with pytest.raises(SystemExit):
        main(["train", "ssvae", "--help"])
    text = capsys.readouterr().out
    assert "--cw" in text and "(default: 100.0)" in text and "--labels-per-class" in text


@pytest.mark.parametrize("args, fragment", [
    (["--iters", "0"], "positive integer"),
    (["--batch-size", "-3"], "positive integer"),
    (["--beta", "0"], "positive"),
    (["--beta", "nan"], "positive"),
    (["--dataset", "cifar"], "--dataset cifar: neither a data set vaelab knows"),
])
def test_bad_train_options_get_one_line_errors(args, fragment, tmp_path, capsys):
    code = _exit_code(["train", "vae", "--out", str(tmp_path / "r"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and fragment in err.lower()
    assert "Traceback" not in err and len(err.splitlines()) <= 3
    assert not (tmp_path / "r" / "config.json").exists()


def test_out_folder_with_a_different_run_is_refused_and_kept(quick_run, capsys):
    before = (quick_run / "metrics.json").read_bytes()
    code = _exit_code(["train", "vae", "--out", str(quick_run), "--beta", "2", *QUICK])
    assert code == 2 and "already holds a different run" in capsys.readouterr().err
    assert (quick_run / "metrics.json").read_bytes() == before


def test_eval_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert _exit_code(["eval", str(tmp_path)]) == 2
    assert "not a vaelab run folder" in capsys.readouterr().err


def test_damaged_checkpoint_is_a_clear_error(quick_run, tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes((quick_run / "seed-0" / "checkpoint.pt").read_bytes()[:500])
    with pytest.raises(VaelabError, match="cannot read checkpoint"):
        load_checkpoint(bad)


def test_non_finite_loss_stops_with_iteration_and_keeps_last_checkpoint(tmp_path):
    cfg = TrainConfig(iters=50, checkpoint_every=10, eval_every=1000, progress=False, val_size=0).validate()
    data = prepare_data(cfg, torch.device("cpu"))
    from vaelab.models import build_model
    model = build_model("vae", data.x_dim)
    real_loss, calls = model.loss, {"n": 0}

    def poisoned(x, y=None):
        calls["n"] += 1
        loss, terms = real_loss(x, y)
        if calls["n"] == 27:
            terms["kl"] = terms["kl"] * float("inf")
            loss = terms["rec"] + terms["kl"]
        return loss, terms

    model.loss = poisoned
    (tmp_path / "seed-0").mkdir()
    with pytest.raises(VaelabError) as e:
        fit(model, data, cfg, tmp_path / "seed-0")
    msg = str(e.value)
    assert "iteration 27" in msg and "kl" in msg and "iteration 20" in msg and "lower lr" in msg
    assert load_checkpoint(tmp_path / "seed-0" / "checkpoint.pt")["iteration"] == 20


def test_same_seed_same_metrics(tmp_path):
    runs = []
    for name in ("a", "b"):
        cfg = TrainConfig(iters=40, out=str(tmp_path / name), iwae_k=[3], eval_repeats=1, progress=False, threads=1)
        runs.append(json.loads((train_run(cfg) / "metrics.json").read_text())["per_seed"]["0"])
    for key in ("nelbo", "kl", "rec", "niwae_3"):
        assert runs[0][key] == runs[1][key]


def test_datasets_command_lists_where_data_was_found(capsys):
    assert main(["datasets", "--data-dir", str(REAL_DATA)]) == 0
    out = capsys.readouterr().out
    assert "mnist-5k" in out and "fashion-mnist" in out


def test_console_script_and_module_entry_point():
    exe = Path(sys.executable).with_name("vaelab")
    for cmd in ([str(exe), "--version"], [sys.executable, "-m", "vaelab", "--version"]):
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and "vaelab 0.1.0" in res.stdout


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as e:   # argparse rejects bad values before main's body runs
        return e.code
