"""Codes for what comes next: nearest neighbours, k-NN and linear-probe accuracy against cases whose answer is
known; a run's codes, `vaelab encode`, `vaelab neighbours` and `vaelab eval --codes`."""
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import vaelab
from vaelab.cli import main
from vaelab.codes import knn_accuracy, nearest, probe_accuracy
from vaelab.errors import VaelabError


def test_nearest_equals_brute_force_in_chunks():
    gen = torch.Generator().manual_seed(0)
    db, q = torch.randn(500, 6, generator=gen), torch.randn(70, 6, generator=gen)
    dist, idx = nearest(db, q, k=4, chunk=16)
    brute = torch.cdist(q, db).sort(dim=1)
    assert torch.equal(idx, brute.indices[:, :4]) and torch.allclose(dist, brute.values[:, :4])
    with pytest.raises(VaelabError, match=r"k = 501 neighbours, but the database holds 500 codes"):
        nearest(db, q, k=501)


def test_knn_and_probe_accuracy_on_known_cases():
    gen = torch.Generator().manual_seed(1)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    y, yt = torch.arange(300) % 3, torch.arange(90) % 3
    x, xt = centres[y] + torch.randn(300, 2, generator=gen), centres[yt] + torch.randn(90, 2, generator=gen)
    assert knn_accuracy(x, y, xt, yt, k=5) == 1.0 and probe_accuracy(x, y, xt, yt) == 1.0   # separable
    noise, noise_t = torch.randn(3000, 2, generator=gen), torch.randn(3000, 2, generator=gen)
    labels, labels_t = torch.randint(0, 2, (3000,), generator=gen), torch.randint(0, 2, (3000,), generator=gen)
    assert abs(knn_accuracy(noise, labels, noise_t, labels_t, k=5) - 0.5) < 0.04   # no information: chance
    assert abs(probe_accuracy(noise, labels, noise_t, labels_t) - 0.5) < 0.04


def test_a_knn_tie_goes_to_the_nearest_label():
    train = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    labels = torch.tensor([1, 0, 1, 0])   # from 0: votes 1, 0, 1, 0 -> two each; the nearest (1.0) says 1
    assert knn_accuracy(train, labels, torch.tensor([[0.0]]), torch.tensor([1]), k=4) == 1.0
    assert knn_accuracy(train.flip(0), labels, torch.tensor([[5.0]]), torch.tensor([1]), k=4) == 1.0


def test_a_runs_codes_file_neighbours_and_code_accuracies(done, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(done, run_dir)
    run = vaelab.load_run(run_dir)
    codes = run.codes()
    assert codes["train"].shape[1] == 2 and len(codes["train"]) == len(codes["train_labels"])
    assert torch.allclose(codes["test"][:5], run.model().encode(run.data().test_x_grey[:5]))
    assert main(["encode", str(run_dir), "--out", str(tmp_path / "codes.npz")]) == 0
    saved = np.load(tmp_path / "codes.npz")
    assert np.array_equal(saved["test"], codes["test"].numpy()) and list(saved["classes"]) == [str(d) for d in range(10)]
    Image.fromarray((run.data().test_x_grey[3].reshape(28, 28).numpy() * 255).astype(np.uint8)).save(tmp_path / "q.png")
    assert main(["neighbours", str(run_dir), "--query", str(tmp_path / "q.png"), "--k", "3",
                 "--out", str(tmp_path / "nb.png")]) == 0
    assert "training images" in capsys.readouterr().out and Image.open(tmp_path / "nb.png").size[0] > 0
    figure = vaelab.plots.neighbours(run, k=3)
    assert figure.axes and main(["eval", str(run_dir), "--codes"]) == 0
    seed = vaelab.load_run(run_dir).per_seed()[0]
    assert 0.1 < seed["knn5_accuracy"] <= 1 and 0.1 < seed["probe_accuracy"] <= 1 and "niwae_5000" not in seed
    capsys.readouterr()
    assert main(["neighbours", str(run_dir), "--query", str(tmp_path / "missing.png")]) == 2
    assert "--query: cannot read" in capsys.readouterr().err
