"""Autoencoders (plain, sparse, contractive, denoising), corruptions, toy data, the Gaussian VAE's
Monte Carlo samples: penalties against hand-computed values on tiny networks."""
import math

import pytest
import torch
from torch import nn

from vaelab.data import load_dataset
from vaelab.data.corruption import corrupt, draw_level, mask_noise, parse_level, salt_pepper_noise, gaussian_noise
from vaelab.data.toy import TOY_DATASETS
from vaelab.errors import VaelabError
from vaelab.evaluate import roc_auc
from vaelab.models import build_model
from vaelab.models.cae import jacobian_frobenius_exact, jacobian_frobenius_hutchinson
from vaelab.models.sae import top_k_codes


# -- toy data -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(TOY_DATASETS))
def test_toy_sets_are_standardised_fixed_and_2d(name):
    ds = load_dataset(name)
    assert ds.train_x.shape == (10_000, 2) and ds.test_x.shape == (2_000, 2) and ds.image_shape is None
    assert torch.allclose(ds.train_x.mean(0), torch.zeros(2), atol=1e-4)
    assert torch.allclose(ds.train_x.std(0), torch.ones(2), atol=1e-4)
    assert torch.equal(load_dataset(name).test_x, ds.test_x)           # fixed seeds
    x1, _ = ds.sampler(50)
    x2, _ = ds.sampler(50)
    assert x1.shape == (50, 2) and not torch.equal(x1, x2)             # fresh draws


def test_swiss_roll_is_columns_0_and_2_of_sklearns():
    from sklearn.datasets import make_swiss_roll

    raw = make_swiss_roll(10_000, noise=0.1, random_state=0)[0][:, [0, 2]]
    raw = torch.as_tensor(raw, dtype=torch.float32)
    assert torch.allclose(load_dataset("swiss-roll").train_x, (raw - raw.mean(0)) / raw.std(0), atol=1e-5)


# -- corruptions -------------------------------------------------------------------------
def test_corruptions_keep_shape_range_and_rate():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(200, 784, generator=gen) * 0.8 + 0.1        # no exact 0 / 1 values
    for noise in ("gaussian", "mask", "salt-pepper"):
        out = corrupt(x, noise, 0.3, torch.Generator().manual_seed(1))
        assert out.shape == x.shape and out.dtype == x.dtype
        assert out.min() >= 0 and out.max() <= 1
    masked = mask_noise(x, 0.3, gen)
    changed = masked != x
    assert (masked[changed] == 0).all()
    assert abs(changed.float().mean().item() - 0.3) < 0.01          # 156,800 draws: SE 0.0012
    sp = salt_pepper_noise(x, 0.3, gen)
    hit = sp != x
    assert abs(hit.float().mean().item() - 0.3) < 0.01
    assert set(sp[hit].unique().tolist()) == {0.0, 1.0} and abs(sp[hit].mean().item() - 0.5) < 0.02
    g = gaussian_noise(torch.full((100_000, 1), 0.5), 0.1, gen)
    assert abs((g - 0.5).std().item() - 0.1) < 0.003
    assert gaussian_noise(torch.zeros(10, 2), 5.0, gen, clip=False).min() < 0
    assert torch.equal(corrupt(x, "mask", 0.0), x)


def test_noise_levels_parse_and_draw_in_range():
    assert parse_level("0.5") == (0.5, 0.5) and parse_level("0.3,0.7") == (0.3, 0.7)
    levels = [draw_level(0.3, 0.7) for _ in range(200)]
    assert 0.3 <= min(levels) and max(levels) <= 0.7 and max(levels) - min(levels) > 0.3
    for bad in ("0.7,0.3", "abc", "1.5"):
        with pytest.raises(ValueError):
            parse_level(bad, "mask")
    with pytest.raises(VaelabError, match="unknown noise"):
        corrupt(torch.zeros(2), "blur", 0.1)


# -- plain AE ------------------------------------------------------------------------------
def test_ae_loss_is_the_hand_computed_mse():
    torch.manual_seed(0)
    model = build_model("ae", 3, z_dim=2, hidden="4")
    x = torch.randn(5, 3)
    loss, terms = model.loss(x)
    x_hat = model.dec(model.enc(x))
    assert torch.allclose(loss, ((x_hat - x) ** 2).mean())
    assert terms["penalty"] == 0 and torch.allclose(terms["mse"], loss)
    bce = build_model("ae", 3, z_dim=2, hidden="4", loss="bce")
    xb = torch.rand(5, 3)
    logits = bce.dec(bce.enc(xb))
    expected = -(xb * torch.sigmoid(logits).log() + (1 - xb) * torch.sigmoid(-logits).log()).mean()
    assert torch.allclose(bce.loss(xb)[0], expected, atol=1e-6)


# -- sparse AE ----------------------------------------------------------------------------
def test_sparse_penalty_matches_hand_computation():
    model = build_model("sae", 2, z_dim=3, hidden="", alpha=0.5, p=1.5)
    with torch.no_grad():    # E(x) = W x with W known: codes by hand
        model.enc[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -2.0], [1.0, 1.0]]))
        model.enc[0].bias.zero_()
    x = torch.tensor([[1.0, 1.0], [2.0, -1.0]])
    z = torch.tensor([[1.0, -2.0, 2.0], [2.0, 2.0, 1.0]])
    per_example = 0.5 * (z.abs() ** 1.5).sum(-1)                # alpha ||z||_p^p
    assert torch.allclose(model.penalty(x, model.enc(x)), per_example)
    _, rec, pen, _ = model.terms(x)
    assert torch.allclose(pen, per_example.mean())              # alpha / N sum_n ||E(x_n)||_p^p


def test_top_k_keeps_exactly_k_largest_magnitude_codes():
    z = torch.randn(100, 16)
    for k in (1, 4, 16):
        kept = top_k_codes(z, k)
        assert ((kept != 0).sum(-1) == k).all()
        kth = z.abs().topk(k, -1).values[:, -1:]
        assert torch.equal(kept != 0, z.abs() >= kth)
        assert torch.equal(kept[kept != 0], z[kept != 0])
    model = build_model("sae", 10, z_dim=8, hidden="6", top_k=3)
    x = torch.randn(7, 10)
    assert ((model.eval().encode(x) != 0).sum(-1) == 3).all()
    assert ((model.train().encode(x) != 0).sum(-1) == 8).all()    # top-K only at inference


# -- contractive AE ----------------------------------------------------------------------
def test_contractive_penalty_of_a_linear_encoder_is_alpha_times_frobenius_norm():
    model = build_model("cae", 3, z_dim=2, hidden="", alpha=0.1)
    W = model.enc[0].weight.detach()
    x = torch.randn(4, 3)
    assert torch.allclose(model.penalty(x, None), 0.1 * W.pow(2).sum().expand(4), rtol=1e-5)


def test_exact_jacobian_norm_matches_a_hand_derivative():
    # E(x) = tanh(A x): J = diag(1 - tanh^2(A x)) A.
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(5, 3, bias=False), nn.Tanh())
    A = enc[0].weight.detach()
    x = torch.randn(6, 5)
    J = (1 - torch.tanh(x @ A.T) ** 2).unsqueeze(-1) * A          # (6, 3, 5)
    assert torch.allclose(jacobian_frobenius_exact(enc, x), J.pow(2).sum((-2, -1)), rtol=1e-5)
    wide = nn.Sequential(nn.Linear(2, 7), nn.ELU(), nn.Linear(7, 9))   # jacfwd branch (2 < 9)
    xw = torch.randn(3, 2)
    Jw = torch.stack([torch.autograd.functional.jacobian(wide, xi) for xi in xw])
    assert torch.allclose(jacobian_frobenius_exact(wide, xw), Jw.pow(2).sum((-2, -1)), rtol=1e-5)


def test_hutchinson_estimate_is_unbiased_and_converges_to_the_exact_norm():
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 16))
    x = torch.rand(4, 784)
    exact = jacobian_frobenius_exact(enc, x)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        few = jacobian_frobenius_hutchinson(enc, x, projections=1, generator=gen)
        many = jacobian_frobenius_hutchinson(enc, x, projections=4000, generator=gen)
    assert not torch.allclose(few, exact, rtol=1e-3)              # one projection: noisy
    assert torch.allclose(many, exact, rtol=0.03)                 # relative SE about sqrt(2 / 4000) * ...
    model = build_model("cae", 784, z_dim=4, hidden="8", alpha=1.0)
    assert not model.exact                                        # auto: estimate for image-sized inputs
    loss, _ = model.loss(torch.rand(8, 784))
    loss.backward()                                               # the estimate trains the encoder
    assert model.enc[0].weight.grad.abs().sum() > 0


# -- denoising AE --------------------------------------------------------------------------
def test_denoising_ae_corrupts_only_during_training():
    torch.manual_seed(0)
    model = build_model("dae", 20, z_dim=4, hidden="8", noise="mask", level="1.0")
    x = torch.rand(6, 20)
    # level 1 masks every input: the training loss is the reconstruction from zeros.
    zeros_rec = ((model.dec(model.enc(torch.zeros_like(x))) - x) ** 2).mean()
    assert torch.allclose(model.train().loss(x)[0], zeros_rec)
    clean_rec = ((model.dec(model.enc(x)) - x) ** 2).mean()
    assert torch.allclose(model.eval().terms(x)[0], clean_rec)
    with pytest.raises(VaelabError, match="noise"):
        build_model("dae", 20, noise="blur")
    gauss = build_model("dae", 2, noise="gaussian", level="0.1,0.3", clip=0)   # continuous data: no clipping
    assert gauss.corrupt(torch.full((1000, 2), -5.0)).max() < -4
    assert 0.1 < (gauss.corrupt(torch.zeros(10_000, 2)).std()) < 0.3


# -- Gaussian VAE with L Monte Carlo samples --------------------------------------------
def test_vae_mc_samples_average_the_reconstruction_term():
    torch.manual_seed(0)
    model = build_model("vae", 2, z_dim=2, hidden="8", likelihood="gaussian", sigma="0.1", mc_samples=5)
    x = torch.randn(3, 2)
    torch.manual_seed(1)
    nelbo, kl, rec = model.negative_elbo_bound(x, reduce=False)
    torch.manual_seed(1)
    m, v = model.enc(x)
    z = m + v.sqrt() * torch.randn(5, 3, 2)
    log_px = -0.5 * ((x - model.dec(z)) ** 2 / 0.01 + math.log(2 * math.pi * 0.01)).sum(-1)   # by hand
    assert torch.allclose(rec, -log_px.mean(0), rtol=1e-5)
    assert torch.allclose(nelbo, rec + kl)


def test_roc_auc():
    assert roc_auc(torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([0, 0, 1, 1])) == 1.0
    assert roc_auc(torch.tensor([0.1, 0.5, 0.5, 0.9]), torch.tensor([0, 1, 0, 1])) == 0.875


def test_denoise_takes_what_encode_takes_and_autoencoders_default_to_mnist_size():
    """denoise checks its input as encode does (image-shaped or flat, else a one-line error); every
    autoencoder class defaults to x_dim = 784, as the VAE classes do."""
    import vaelab
    from vaelab.errors import VaelabError

    assert {cls().x_dim for cls in (vaelab.AE, vaelab.SparseAE, vaelab.ContractiveAE, vaelab.DenoisingAE)} == {784}
    dae = vaelab.DenoisingAE().eval()
    x = torch.rand(3, 784)
    assert torch.equal(dae.denoise(x.view(3, 1, 28, 28)), dae.denoise(x))
    with pytest.raises(VaelabError, match="x must have shape"):
        dae.denoise(x[:, :100])



def test_a_denoising_ae_scores_anomalies_by_its_denoising_error(tmp_path):
    """A mask-trained DAE scored by the reconstruction of the clean input was near chance on a one-class
    task: it is scored by what it learned, the error of denoising a corrupted copy (fixed noise)."""
    import vaelab

    run = vaelab.train("dae", out=tmp_path / "dae", train_classes=[8], iters=1000, iwae_k=[], eval_repeats=1,
                       progress=False)
    model = run.model()
    x, y = run.test_data()
    with torch.no_grad():
        clean = (model.mean_x_given_z(model.posterior_mean(x)) - x).pow(2).mean(-1)
    denoising = vaelab.anomaly_scores(model, x)
    assert torch.equal(denoising, vaelab.anomaly_scores(model, x))   # fixed noise: the same scores every call
    auc = run.summary()["auc"]["mean"]
    assert auc == pytest.approx(vaelab.roc_auc(denoising, y != 8))
    assert auc > vaelab.roc_auc(clean, y != 8) + 0.1, (auc, vaelab.roc_auc(clean, y != 8))
