"""Training on your own data: arrays and tensors, (x, y), dicts, torch Datasets, .npz files and folders of
(colour, non-square) images, from Python and from the command line; reopened, checked, refused when changed."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

import vaelab
from vaelab.cli import main
from vaelab.errors import VaelabError

QUICK = dict(iters=30, eval_every=15, log_every=5, checkpoint_every=15, iwae_k=[1, 5], eval_repeats=1, progress=False,
             val_size=20, batch_size=32, tensorboard=False)
CLI_QUICK = ["--iters", "30", "--eval-every", "15", "--log-every", "5", "--checkpoint-every", "15", "--iwae-k", "1",
             "5", "--eval-repeats", "1", "--no-progress", "--val-size", "20", "--batch-size", "32", "--no-tensorboard"]


def colour_folder(root, n_per_class=50, size=(9, 12)):
    """Two class subfolders of random RGB PNGs of height 9 and width 12."""
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        for i in range(n_per_class):
            Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def png_mode(path) -> str:
    return Image.open(io.BytesIO(path.read_bytes())).mode


def test_an_array_with_labels_trains_reopens_and_refuses_other_data(tmp_path):
    rng = np.random.default_rng(1)
    x = (rng.random((300, 14, 14)) * 255).astype(np.uint8)   # grey images, uint8 0..255
    y = rng.integers(0, 3, 300)
    run = vaelab.train("vae", dataset=(x, y), out=tmp_path / "r", **QUICK)
    assert run.complete and run.config.dataset == "array"
    origin = run.config.data_origin
    assert origin["kind"] == "array" and origin["shape"] == [300, 14, 14] and origin["split_seed"] == 0
    assert len(run.test_data()[0]) == 60 and run.test_data()[0].shape[1] == 196   # a fifth held out for testing
    with pytest.raises(VaelabError, match=r"trained on data given in memory .* pass the same data again"):
        vaelab.load_run(tmp_path / "r").test_data()
    again = vaelab.load_run(tmp_path / "r", data=(x, y))
    assert torch.equal(again.test_data()[0], run.test_data()[0])
    changed = x.copy()
    changed[0, 0, 0] ^= 1
    with pytest.raises(VaelabError, match=r"not the data this run was trained on \(SHA-256"):
        vaelab.load_run(tmp_path / "r", data=(changed, y)).test_data()
    same = vaelab.train("vae", dataset=(x, y), out=tmp_path / "r", resume=True, **QUICK)   # the same cell again
    assert same.per_seed()[0]["nelbo"] == run.per_seed()[0]["nelbo"]


def test_a_colour_folder_of_non_square_images_trains_the_conv_vae(tmp_path):
    photos = colour_folder(tmp_path / "photos")
    run = vaelab.train("vae", dataset=photos, net="conv", out=tmp_path / "r", **QUICK)
    assert run.config.dataset == str(photos) and run.config.data_origin["kind"] == "folder"
    model = run.model()
    assert model.image_shape == (3, 9, 12) and model.sample(2).shape == (2, 3 * 9 * 12)
    assert png_mode(run.path / "samples.png") in ("RGB", "RGBA")   # drawn in colour
    assert vaelab.load_run(tmp_path / "r").test_data()[0].shape == (20, 324)   # read again from the folder
    cvae = vaelab.train("cvae", dataset=photos, out=tmp_path / "c", **QUICK)   # subfolders are the classes
    assert cvae.model().n_classes == 10 and cvae.complete
    Image.fromarray(np.zeros((9, 12, 3), np.uint8)).save(photos / "cats" / "0.png")
    with pytest.raises(VaelabError, match=r"photos: not the data this run was trained on"):
        vaelab.load_run(tmp_path / "r").test_data()


def test_dicts_torch_datasets_and_vectors(tmp_path):
    rng = np.random.default_rng(2)
    train, test = rng.random((200, 64), dtype=np.float32), rng.random((50, 64), dtype=np.float32)
    run = vaelab.train("ae", dataset={"train": train, "test": test}, out=tmp_path / "d", **QUICK)
    assert len(run.test_data()[0]) == 50 and run.config.data_origin["split_seed"] is None
    images = torch.rand(200, 1, 8, 8)
    ds = torch.utils.data.TensorDataset(images, torch.randint(0, 2, (200,)))
    assert vaelab.train("vae", dataset=ds, out=tmp_path / "t", **QUICK).config.dataset == "torch-dataset"
    points = rng.normal(size=(400, 5)).astype(np.float32)   # vectors with any values: continuous data
    run = vaelab.train("vae", dataset=points, likelihood="gaussian", out=tmp_path / "v", **QUICK)
    assert run.config.binarize == "none"
    with pytest.raises(VaelabError, match=r"^binarize='dynamic': array holds vectors, not grey levels"):
        vaelab.train("vae", dataset=points, likelihood="gaussian", binarize="dynamic", out=tmp_path / "b", **QUICK)


def test_refusals_name_the_argument_and_the_fix(tmp_path):
    x = np.random.default_rng(3).random((200, 10, 10), dtype=np.float32)
    with pytest.raises(VaelabError, match=r"^cvae learns from labels, and array has none"):
        vaelab.train("cvae", dataset=x, out=tmp_path / "a", **QUICK)
    with pytest.raises(VaelabError, match=r"^data_dir='.*' is given, but dataset is your own data"):
        vaelab.train("vae", dataset=x, data_dir=tmp_path, out=tmp_path / "b", **QUICK)
    with pytest.raises(VaelabError, match=r"^dataset='no-such-thing': neither a data set vaelab knows"):
        vaelab.train("vae", dataset="no-such-thing", out=tmp_path / "c", **QUICK)
    with pytest.raises(VaelabError, match=r"^train_classes=\[1\]: array has no labels"):
        vaelab.train("vae", dataset=x, train_classes=1, out=tmp_path / "d", **QUICK)
    assert not any((tmp_path / n).exists() for n in "abcd")


def test_the_command_line_trains_on_a_folder_and_an_npz_file(tmp_path, capsys):
    photos = colour_folder(tmp_path / "photos")
    assert main(["train", "vae", "--dataset", str(photos), "--net", "conv", "--resize", "16", *CLI_QUICK,
                 "--out", str(tmp_path / "r")]) == 0
    run = vaelab.load_run(tmp_path / "r")
    assert run.model().image_shape == (3, 16, 16)
    assert main(["sample", str(tmp_path / "r"), "--rows", "2", "--cols", "3", "--out", str(tmp_path / "s.png")]) == 0
    assert png_mode(tmp_path / "s.png") in ("RGB", "RGBA")
    assert main(["eval", str(tmp_path / "r"), "--iwae-k", "5"]) == 0
    rng = np.random.default_rng(4)
    np.savez(tmp_path / "digits.npz", x=(rng.random((200, 8, 8)) * 255).astype(np.uint8), y=rng.integers(0, 4, 200))
    assert main(["train", "cvae", "--dataset", str(tmp_path / "digits.npz"), "--n-classes", "4", *CLI_QUICK,
                 "--out", str(tmp_path / "n")]) == 0
    assert vaelab.load_run(tmp_path / "n").config.data_origin["kind"] == "npz"
    capsys.readouterr()
    assert main(["train", "vae", "--dataset", str(photos), "--data-dir", str(tmp_path), *CLI_QUICK]) == 2
    assert "--data-dir" in capsys.readouterr().err


def test_the_discretized_logistic_on_8_bit_colour_reports_bits_per_dim(tmp_path):
    x = (np.random.default_rng(5).random((300, 3, 8, 8)) * 255).astype(np.uint8)
    run = vaelab.train("vae", dataset=x, likelihood="logistic", net="conv", out=tmp_path / "r", **QUICK)
    m = run.per_seed()[0]
    assert run.config.binarize == "none"   # it models the 8-bit levels themselves
    assert m["nelbo_bpd"] == pytest.approx(m["nelbo"] / (3 * 8 * 8 * np.log(2)))
    assert m["niwae_5_bpd"] == pytest.approx(m["niwae_5"] / (3 * 8 * 8 * np.log(2)))
    assert 0 < m["niwae_5_bpd"] <= m["nelbo_bpd"] + 0.05   # the IWAE bound is (nearly always) the tighter
    with pytest.raises(VaelabError, match=r"^binarize='dynamic': the discretized logistic .* models 8-bit grey levels"):
        vaelab.train("vae", dataset=x, likelihood="logistic", binarize="dynamic", out=tmp_path / "b", **QUICK)
    with pytest.raises(VaelabError, match=r"sigma is the Gaussian likelihood's std, and this run's likelihood is logistic"):
        vaelab.train("vae", dataset=x, likelihood="logistic", sigma="0.2", out=tmp_path / "s", **QUICK)


def test_colour_images_default_to_the_discretized_logistic(tmp_path):
    """A VAE on 8-bit colour images takes the logistic likelihood of their levels unless a likelihood (or a
    binarization) is asked for; the run records the choice; grey images keep the Bernoulli default."""
    x = (np.random.default_rng(6).random((300, 8, 8, 3)) * 255).astype(np.uint8)
    run = vaelab.train("vae", dataset=x, out=tmp_path / "c", **QUICK)
    assert run.config.model_options["likelihood"] == "logistic" and run.config.binarize == "none"
    assert "nelbo_bpd" in run.per_seed()[0] and vaelab.load_run(tmp_path / "c", data=x).model().likelihood == "logistic"
    asked = vaelab.train("vae", dataset=x, likelihood="gaussian", out=tmp_path / "g", **QUICK)
    assert asked.config.model_options["likelihood"] == "gaussian"
    grey = vaelab.train("vae", dataset=x[..., 0], out=tmp_path / "b", **QUICK)
    assert "likelihood" not in grey.config.model_options and grey.model().likelihood == "bernoulli"
    assert main(["train", "vae", "--dataset", str(colour_folder(tmp_path / "photos")), *CLI_QUICK,
                 "--out", str(tmp_path / "cli")]) == 0
    assert vaelab.load_run(tmp_path / "cli").model().likelihood == "logistic"
