"""Autoencoder and toy-data runs through the command line, `vaelab score`, and short real-data runs."""
import json

import pytest

from conftest import REAL_DATA, requires_real
from vaelab.cli import main
from vaelab.config import TrainConfig
from vaelab.runs.train import train_run

QUICK = ["--iters", "40", "--eval-every", "20", "--checkpoint-every", "40", "--eval-repeats", "2",
         "--no-progress", "--threads", "1"]


@pytest.mark.parametrize("model, extra, keys", [
    ("ae", [], ["loss", "mse"]),
    ("cae", [], ["penalty"]),
    ("vae", ["--likelihood", "gaussian", "--z-dim", "2", "--mc-samples", "3", "--iwae-k", "5"], ["nelbo", "niwae_5"]),
])
def test_models_on_swiss_roll_write_scatter_figures(model, extra, keys, tmp_path, capsys):
    out = tmp_path / model
    assert main(["train", model, "--dataset", "swiss-roll", "--out", str(out), *QUICK, *extra]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in keys:
        assert key in metrics["mean_se"], key
    for name in ("samples.png", "reconstruction.png", "curves.png", "report.md"):
        assert (out / name).is_file(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["binarize"] == "none"
    assert cfg["optimizer"] == ("adam" if model == "vae" else "adamw")
    assert "![Test data and reconstructions](reconstruction.png)" in (out / "report.md").read_text()
    if model == "vae":
        assert "## Test-set metrics (nats per point)" in (out / "report.md").read_text()
    if model == "ae":   # the saved-run commands work on autoencoders and 2D data too
        assert main(["sample", str(out), "--rows", "2", "--cols", "5", "--out", str(tmp_path / "s.png")]) == 0
        assert (tmp_path / "s.png").is_file()
        assert main(["eval", str(out), "--eval-repeats", "1", "--no-progress", "--threads", "1"]) == 0
        assert main(["plot", str(out), "recon", "--threads", "1"]) == 2   # 2D points: no image figures to remake
        assert "holds 2D points (swiss-roll): its figures (samples.png, reconstruction.png) are drawn at training " \
               "time" in capsys.readouterr().err


def test_fresh_batches_and_image_autoencoder_figures(tmp_path):
    assert main(["train", "ae", "--dataset", "moons", "--fresh-batches", "--out", str(tmp_path / "m"), *QUICK]) == 0
    assert json.loads((tmp_path / "m" / "config.json").read_text())["fresh_batches"] is True
    assert main(["train", "dae", "--out", str(tmp_path / "d"), *QUICK]) == 0        # mnist-5k, masking 0.5
    m = json.loads((tmp_path / "d" / "metrics.json").read_text())["per_seed"]["0"]
    assert {"psnr", "psnr_corrupted", "psnr_denoised"} <= set(m)
    assert (tmp_path / "d" / "denoising.png").is_file()
    assert main(["train", "sae", "--top-k", "4", "--out", str(tmp_path / "s"), *QUICK]) == 0
    assert (tmp_path / "s" / "codes.png").is_file()
    m = json.loads((tmp_path / "s" / "metrics.json").read_text())["per_seed"]["0"]
    assert m["nonzero_fraction"] == pytest.approx(4 / 16)


@pytest.mark.parametrize("args, fragment", [
    (["train", "ae", "--dataset", "swiss-roll", "--binarize", "dynamic"], "cannot be binarized"),
    (["train", "vae", "--dataset", "swiss-roll"], "--likelihood gaussian"),
    (["train", "ae", "--fresh-batches"], "only the generated toy"),
    (["train", "ae", "--classes", "12"], "classes 0..9"),
    (["train", "dae", "--level", "0.7,0.3"], "noise level"),
    (["train", "sae", "--top-k", "99"], "top_k"),
    (["train", "dae", "--dataset", "moons", "--noise", "gaussian", "--level", "0.2"], "give --clip 0"),
    (["train", "dae", "--dataset", "moons", "--noise", "salt-pepper"], "--noise salt-pepper sets values to 0 or 1"),
])
def test_bad_autoencoder_input_is_a_one_line_error(args, fragment, tmp_path, capsys):
    assert main([*args, "--out", str(tmp_path / "x"), *QUICK]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_one_class_training_and_score(tmp_path, capsys):
    out = tmp_path / "oc"
    assert main(["train", "ae", "--classes", "1", "--out", str(out), *QUICK, "--iters", "150"]) == 0
    assert json.loads((out / "config.json").read_text())["train_classes"] == [1]
    assert main(["score", str(out), "--threads", "1"]) == 0
    s = json.loads((out / "scores-mnist-5k-seed0.json").read_text())
    assert s["normal_classes"] == [1] and s["n"] == 1000 and s["auc"] > 0.8     # ones are easy to tell apart
    lines = (out / "scores-mnist-5k-seed0.csv").read_text().splitlines()
    assert lines[0] == "index,label,anomaly,score" and len(lines) == 1001
    assert "ROC AUC" in capsys.readouterr().out
    # other normal classes: their own files, the run's own scoring kept
    assert main(["score", str(out), "--normal-classes", "1", "7", "--threads", "1"]) == 0
    other = json.loads((out / "scores-mnist-5k-seed0-normal1-7.json").read_text())
    assert other["normal_classes"] == [1, 7] and other["auc"] != s["auc"]
    assert json.loads((out / "scores-mnist-5k-seed0.json").read_text()) == s
    assert main(["score", str(out), "--dataset", "swiss-roll"]) == 2                # wrong shape: error
    # a run of a class subset: its test data, evaluation and figures as for any run
    assert main(["eval", str(out), "--eval-repeats", "1", "--no-progress", "--threads", "1"]) == 0
    assert main(["plot", str(out), "recon", "--threads", "1"]) == 0
    assert main(["eval", str(out), "--iwae-k", "10", "--no-progress", "--threads", "1"]) == 2
    assert "--iwae-k: ae has no importance-weighted bound; leave --iwae-k out" in capsys.readouterr().err


def test_one_dimensional_latents_and_conditional_models_get_the_figures_they_can_have(tmp_path, capsys):
    """z_dim = 1: training ends with every figure but the two latent-plane ones, which `plot` refuses by name;
    a conditional model's interpolation and anomaly scores are refused, not skipped in silence."""
    z1 = tmp_path / "z1"
    assert main(["train", "vae", "--z-dim", "1", "--iwae-k", "1", "--out", str(z1), *QUICK]) == 0
    assert (z1 / "recon.png").is_file() and not (z1 / "manifold.png").exists() and not (z1 / "scatter.png").exists()
    assert main(["plot", str(z1), "manifold", "--threads", "1"]) == 2
    assert "the manifold figure draws a plane of the latent space, and VAE's has z_dim = 1; train with z_dim >= 2" \
        in capsys.readouterr().err
    cvae = tmp_path / "cvae"
    assert main(["train", "cvae", "--net", "mlp", "--z-dim", "2", "--iwae-k", "1", "--out", str(cvae), *QUICK]) == 0
    assert main(["plot", str(cvae), "interpolate", "--threads", "1"]) == 2
    assert "interpolate: CVAE is conditional" in capsys.readouterr().err
    assert main(["score", str(cvae), "--threads", "1"]) == 2
    assert "score: cvae is conditional (its bound needs each image's label y)" in capsys.readouterr().err


@requires_real("fashion-mnist")
def test_denoising_ae_learns_real_fashion_mnist(tmp_path):
    cfg = TrainConfig(model="dae", dataset="fashion-mnist", data_dir=str(REAL_DATA), out=str(tmp_path / "run"),
                      iters=300, iwae_k=[], progress=False, threads=1, model_options={"level": "0.5"})
    m = json.loads((train_run(cfg) / "metrics.json").read_text())["per_seed"]["0"]
    assert m["n_test"] == 10_000
    assert m["psnr_denoised"] > m["psnr_corrupted"] + 3, m     # measured +3.9 dB after 300 iterations

