"""Disentanglement metrics (MIG, SAP, DCI as disentanglement_lib defines them) on codes whose answer is known:
the factors themselves, a rotation of them, constant codes, a factor copied into two dimensions."""
import numpy as np
import pytest
import torch

from vaelab.disentanglement import dci, dci_from_importances, mig, mutual_information_gaps, sap
from vaelab.errors import VaelabError

N = 2000


@pytest.fixture(scope="module")
def factors():
    rng = np.random.default_rng(0)
    return np.stack([rng.integers(0, k, N) for k in (5, 6, 8, 10)], axis=1)


def noisy(x, seed=1):
    return x + 0.01 * np.random.default_rng(seed).standard_normal(x.shape)


def rotated(factors):
    standard = (factors - factors.mean(0)) / factors.std(0)
    # a rotation that mixes fully: each code dimension weighs every factor by +-1/2 (a 4x4 Hadamard matrix / 2);
    # a rotation drawn at random may lie near an axis-aligned one and keep part of the gap
    h = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2
    return standard @ h


def test_codes_equal_to_the_factors_score_high(factors):
    codes = noisy(factors.astype(float))
    assert mig(codes, factors) > 0.95
    assert sap(codes, factors) > 0.2   # a one-feature linear SVM caps each accuracy (see sap's docstring)
    scores = dci(codes, factors, trees=20)
    assert scores["disentanglement"] > 0.9 and scores["completeness"] > 0.9 and scores["informativeness"] > 0.95


def test_a_rotation_of_the_factors_scores_low(factors):
    codes, rot = noisy(factors.astype(float)), rotated(factors)
    assert mig(rot, factors) < 0.3
    assert sap(rot, factors) < sap(codes, factors)
    assert dci(rot, factors, trees=20)["disentanglement"] < dci(codes, factors, trees=20)["disentanglement"] - 0.5


def test_constant_codes_score_zero(factors):
    codes = np.zeros((N, 4))
    assert mig(codes, factors) == 0.0
    assert sap(codes, factors) == pytest.approx(0.0, abs=1e-9)


def test_a_factor_copied_into_two_dimensions_has_no_gap(factors):
    codes = noisy(factors.astype(float))
    copied = np.c_[codes[:, :1], noisy(codes[:, :1], seed=3), codes[:, 1:]]
    gaps = mutual_information_gaps(copied, factors)
    assert gaps[0] < 0.05 and (gaps[1:] > 0.95).all()
    assert mig(copied, factors) < mig(codes, factors) - 0.2
    assert dci(copied, factors, trees=20)["completeness"] < dci(codes, factors, trees=20)["completeness"] - 0.05


def test_dci_from_known_importance_matrices():
    assert dci_from_importances(np.eye(3)) == pytest.approx((1.0, 1.0))
    assert dci_from_importances(np.ones((3, 3))) == pytest.approx((0.0, 0.0), abs=1e-9)
    d, c = dci_from_importances(np.array([[1.0, 0.0], [1.0, 0.0]]))   # two codes for one factor
    assert d == pytest.approx(1.0) and c == pytest.approx(0.0, abs=1e-6)


def test_torch_tensors_and_label_values_are_accepted(factors):
    codes = noisy(factors.astype(float))
    labels = factors * 7 - 3   # any values: each column is relabelled
    assert mig(torch.from_numpy(codes), torch.from_numpy(labels)) == pytest.approx(mig(codes, factors))


@pytest.mark.parametrize("metric", [mig, sap, lambda c, f: dci(c, f, trees=2)])
def test_bad_inputs_are_one_line_errors_naming_the_argument(metric, factors):
    codes = noisy(factors[:200].astype(float))
    f = factors[:200]
    cases = [
        ((codes[:150], f), r"codes has 150 rows but factors has 200"),
        ((np.where(np.arange(200)[:, None] == 5, np.nan, codes), f), r"codes holds NaN"),
        ((codes, np.c_[f, np.full(200, 4)]), r"factors column 4 takes one value only"),
        ((codes, np.where(np.arange(200)[:, None] == 0, np.nan, f)), r"factors holds NaN"),
        ((codes[:, :, None], f), r"codes must be 2-D"),
    ]
    for args, message in cases:
        with pytest.raises(VaelabError, match=message) as caught:
            metric(*args)
        assert "\n" not in str(caught.value)


def test_mig_needs_two_code_dimensions_and_positive_bins(factors):
    with pytest.raises(VaelabError, match="codes has 1 dimension"):
        mig(factors[:, :1].astype(float), factors)
    with pytest.raises(VaelabError, match="bins must be a positive integer"):
        mig(factors.astype(float), factors, bins=0)


def test_eval_scores_a_dsprites_run_against_its_factors(tmp_path, monkeypatch, capsys, done):
    """`vaelab eval RUN --disentanglement` adds MIG, SAP and DCI of the test codes to metrics.json (the factor
    that takes one value, dsprites' colour, left out); a data set without factors is one line naming the flag."""
    import vaelab
    import vaelab.judge as judge
    from vaelab.cli import main

    train_judge = judge.train_judge   # a short judge: the sample-quality classifier is not what is tested here
    monkeypatch.setattr(judge, "train_judge", lambda *a, **k: train_judge(*a, **{**k, "iters": 50}))
    run = vaelab.train("vae", dataset="dsprites", iters=20, hidden=16, z_dim=4, progress=False, batch_size=64,
                       eval_every=20, checkpoint_every=20, iwae_k=[1], eval_repeats=1, out=tmp_path / "run",
                       tensorboard=False)
    assert main(["eval", str(run.path), "--disentanglement", "--no-progress"]) == 0
    scores = vaelab.load_run(run.path).per_seed()[0]
    for key in ("mig", "sap", "dci_disentanglement", "dci_completeness", "dci_informativeness"):
        assert 0.0 <= scores[key] <= 1.0, key
    capsys.readouterr()
    assert main(["eval", str(done), "--disentanglement"]) == 2
    assert "--disentanglement: mnist-5k has no ground-truth factors" in capsys.readouterr().err
