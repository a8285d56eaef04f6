"""GMVAE and SSVAE (M2): their terms against torch.distributions and brute force."""
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import distributions as D

from vaelab.data import labelled_subset
from vaelab.densities import kl_normal
from vaelab.errors import VaelabError
from vaelab.models import build_model
from vaelab.models.ssvae import SSVAE


def test_gmvae_prior_is_the_uniform_mixture():
    torch.manual_seed(0)
    model = build_model("gmvae", 20, z_dim=3, hidden="8", k=7)
    m, v = model.prior()
    assert m.shape == v.shape == (1, 7, 3) and (v > 0).all()
    mix = D.MixtureSameFamily(D.Categorical(logits=torch.zeros(7)), D.Independent(D.Normal(m[0], v[0].sqrt()), 1))
    z = torch.randn(50, 3) * 0.2
    assert torch.allclose(model.log_pz(z), mix.log_prob(z), atol=1e-5)
    # (k, batch, dim) inputs, as the IWAE bound uses them.
    assert torch.allclose(model.log_pz(z.view(5, 10, 3)), mix.log_prob(z).view(5, 10), atol=1e-5)


def test_gmvae_initialisation_scale_matches_the_reference():
    torch.manual_seed(0)
    model = build_model("gmvae", 784)   # k = 500, z = 10
    assert model.z_pre.shape == (1, 1000, 10)
    assert model.z_pre.std().item() == pytest.approx(1 / math.sqrt(500 * 10), rel=0.05)


def test_gmvae_monte_carlo_kl_is_unbiased_for_a_one_component_standard_prior():
    torch.manual_seed(0)
    model = build_model("gmvae", 20, z_dim=4, hidden="8", k=1).double()
    with torch.no_grad():   # one component N(0, I): softplus(raw) = 1
        model.z_pre[:, 0] = 0.0
        model.z_pre[:, 1] = math.log(math.e - 1)
    m, v = torch.randn(3, 4, dtype=torch.float64), torch.rand(3, 4, dtype=torch.float64) + 0.2
    z = m + v.sqrt() * torch.randn(200_000, 3, 4, dtype=torch.float64)
    mc = model.kl_z(m, v, z).mean(0)
    exact = kl_normal(m, v, torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(mc, exact, atol=0.02)


def test_gmvae_samples_come_from_the_mixture():
    torch.manual_seed(0)
    model = build_model("gmvae", 20, z_dim=2, hidden="8", k=2)
    with torch.no_grad():
        model.z_pre[0, 0] = torch.tensor([5.0, 5.0])
        model.z_pre[0, 1] = torch.tensor([-5.0, -5.0])
        model.z_pre[0, 2:] = -10.0   # tiny variances
    z = model.sample_z(2000)
    near = ((z - 5).norm(dim=1) < 0.1) | ((z + 5).norm(dim=1) < 0.1)
    assert near.all() and 0.4 < ((z[:, 0] > 0).float().mean()) < 0.6


def _ssvae():
    torch.manual_seed(0)
    return build_model("ssvae", 12, z_dim=3, hidden="16")


def test_ssvae_nelbo_is_the_exact_sum_over_labels():
    model = _ssvae()
    x = torch.bernoulli(torch.rand(5, 12))
    torch.manual_seed(7)
    nelbo, kl_y, kl_z, rec = model.negative_elbo_bound(x, reduce=False)
    torch.manual_seed(7)   # same noise: eps is drawn for all (label, image) pairs at once, label-major
    eps = torch.randn(10 * 5, 3).view(10, 5, 3)
    qy = D.Categorical(logits=model.cls(x))
    expect_kl_y = D.kl_divergence(qy, D.Categorical(probs=torch.full((10,), 0.1)))
    expect_kl_z, expect_rec = torch.zeros(5), torch.zeros(5)
    for label in range(10):
        y = F.one_hot(torch.full((5,), label), 10).float()
        m, v = model.enc(x, y)
        q = D.Independent(D.Normal(m, v.sqrt()), 1)
        z = m + v.sqrt() * eps[label]
        px = D.Independent(D.Bernoulli(logits=model.dec(z, y)), 1)
        w = qy.probs[:, label]
        expect_kl_z += w * D.kl_divergence(q, D.Independent(D.Normal(torch.zeros(3), torch.ones(3)), 1))
        expect_rec += w * -px.log_prob(x)
    for got, want in ((kl_y, expect_kl_y), (kl_z, expect_kl_z), (rec, expect_rec)):
        assert torch.allclose(got, want, atol=1e-4)
    assert torch.allclose(nelbo, kl_y + kl_z + rec)


def test_ssvae_objective_weights_and_supervised_baseline():
    model = _ssvae()
    x, xl, yl = torch.bernoulli(torch.rand(6, 12)), torch.bernoulli(torch.rand(4, 12)), torch.tensor([0, 3, 5, 9])
    torch.manual_seed(1)
    loss, terms = model.loss(x, None, labelled=(xl, yl))
    assert torch.allclose(loss, terms["nelbo"] + 100.0 * F.cross_entropy(model.cls(xl), yl))
    model.gw = 0.0
    loss, terms = model.loss(x, None, labelled=(xl, yl))
    assert set(terms) == {"ce"} and torch.allclose(loss, 100.0 * terms["ce"])


def test_labelled_subset_is_balanced_and_deterministic():
    y = torch.arange(10).repeat(50)
    x = torch.arange(500).float().unsqueeze(1)
    xa, ya = labelled_subset(x, y, 10, seed=3)
    xb, yb = labelled_subset(x, y, 10, seed=3)
    xc, _ = labelled_subset(x, y, 10, seed=4)
    assert torch.equal(xa, xb) and not torch.equal(xa, xc)
    assert torch.bincount(ya).tolist() == [10] * 10
    assert torch.equal(y[xa.squeeze(1).long()], ya)


def test_encoder_every_label_shortcut_equals_the_plain_forward():
    from vaelab.nets import Encoder
    torch.manual_seed(0)
    enc = Encoder(12, 3, (16, 8), y_dim=10)
    x = torch.rand(5, 12)
    y = torch.eye(10).repeat_interleave(5, dim=0)
    m1, v1 = enc(x.repeat(10, 1), y)
    m2, v2 = enc.forward_every_label(x, 10)
    assert torch.allclose(m1, m2, atol=1e-6) and torch.allclose(v1, v2, atol=1e-6)


def _m1m2(**options):
    torch.manual_seed(0)
    return build_model("m1m2", 12, z1_dim=4, m1_hidden="16", z_dim=3, hidden="16", **options)


def test_m1m2_bound_stacks_the_ssvae_bound_on_m1s_features():
    """NELBO(x) = -log p(x|z1) + log q(z1|x) + NELBO_M2(z1), z1 ~ q(z1|x), with M2's exact sum over labels
    and a diagonal Gaussian p(z1 | y, z2): against torch.distributions and a loop over labels."""
    model = _m1m2()
    with torch.no_grad():
        model.log_sigma.copy_(0.3 * torch.randn(4))
    x = torch.bernoulli(torch.rand(5, 12))
    torch.manual_seed(7)
    nelbo, kl, rec, kl_y, kl_z2 = model.negative_elbo_bound(x, reduce=False)
    torch.manual_seed(7)   # same noise: z1's first, then z2's for all (label, image) pairs, label-major
    m, v = model.m1.enc(x)
    z1 = m + v.sqrt() * torch.randn(5, 4)
    eps2 = torch.randn(10 * 5, 3).view(10, 5, 3)
    qy = D.Categorical(logits=model.cls(z1))
    std = D.Independent(D.Normal(torch.zeros(3), torch.ones(3)), 1)
    expect_kl_y = D.kl_divergence(qy, D.Categorical(probs=torch.full((10,), 0.1)))
    expect_kl_z2, rec_z1 = torch.zeros(5), torch.zeros(5)
    for label in range(10):
        y = F.one_hot(torch.full((5,), label), 10).float()
        m2, v2 = model.enc(z1, y)
        z2 = m2 + v2.sqrt() * eps2[label]
        p_z1 = D.Independent(D.Normal(model.dec(z2, y), model.log_sigma.exp()), 1)
        w = qy.probs[:, label]
        expect_kl_z2 += w * D.kl_divergence(D.Independent(D.Normal(m2, v2.sqrt()), 1), std)
        rec_z1 += w * -p_z1.log_prob(z1)
    expect_rec = -D.Independent(D.Bernoulli(logits=model.m1.dec(z1)), 1).log_prob(x)
    log_q_z1 = D.Independent(D.Normal(m, v.sqrt()), 1).log_prob(z1)
    for got, want in ((rec, expect_rec), (kl_y, expect_kl_y), (kl_z2, expect_kl_z2),
                      (kl, log_q_z1 + expect_kl_y + expect_kl_z2 + rec_z1)):
        assert torch.allclose(got, want, atol=1e-4)
    assert torch.allclose(nelbo, rec + kl)


@pytest.mark.parametrize("z1_sigma", ["dim", "decoder"])
def test_m1m2_trains_m1_first_then_m2_on_its_frozen_features(z1_sigma):
    model = _m1m2(m1_iters=2, z1_sigma=z1_sigma)
    x, xl, yl = torch.bernoulli(torch.rand(6, 12)), torch.bernoulli(torch.rand(4, 12)), torch.tensor([0, 3, 5, 9])
    m2_parts = {"enc", "dec", "cls"} | ({"log_sigma"} if z1_sigma == "dim" else set())
    for step in range(4):
        loss, terms = model.loss(x, None, labelled=(xl, yl))
        model.zero_grad(set_to_none=True)
        loss.backward()
        trained = {n.split(".")[0] for n, q in model.named_parameters() if q.grad is not None and q.grad.abs().sum() > 0}
        assert trained == ({"m1"} if step < 2 else m2_parts), step
        if step < 2:
            assert torch.allclose(loss, terms["m1_nelbo"])
    assert int(model.steps_done) == 4
    model.eval()   # evaluation does not advance the stage counter
    model.loss(x, None, labelled=(xl, yl))
    assert int(model.steps_done) == 4
    assert model.accuracy(xl, yl) == (model.cls(model.m1.enc(xl)[0]).argmax(-1) == yl).float().mean().item()


def test_m1m2_on_m1s_active_units_only():
    """m1_active: dims whose posterior means vary by at most the threshold are zero for M2's networks and keep
    M1's N(0, 1) prior in the bound; M2's likelihood covers the others (against torch.distributions)."""
    model = _m1m2(m1_active=0.1)
    assert model.active.tolist() == [1, 1, 1, 1] and not model.active_chosen   # every dim until chosen
    means = torch.randn(100, 4) * torch.tensor([1.0, 0.05, 0.5, 0.01])
    model.choose_active(means)
    assert model.active.tolist() == [1, 0, 1, 0] and model.active_chosen
    with torch.no_grad():
        model.log_sigma.copy_(0.3 * torch.randn(4))
    z1, z2 = torch.randn(5, 4), torch.randn(5, 3)
    y = F.one_hot(torch.tensor([0, 3, 5, 9, 1]), 10).float()
    want = D.Normal(model.dec(z2, y), model.log_sigma.exp()).log_prob(z1)[:, [0, 2]].sum(-1)
    assert torch.allclose(model.log_px_given_zy(z1, z2, y), want, atol=1e-5)
    moved = z1.clone()
    moved[:, [1, 3]] += 3.0   # the inactive dims: invisible to M2's networks, scored by N(0, 1)
    torch.manual_seed(1)
    nelbo, kl_y, kl_z2 = model.nelbo_m2(z1)
    torch.manual_seed(1)
    nelbo_moved, kl_y_moved, kl_z2_moved = model.nelbo_m2(moved)
    assert torch.allclose(kl_y, kl_y_moved) and torch.allclose(kl_z2, kl_z2_moved)
    std = D.Normal(0.0, 1.0)
    rest_change = (std.log_prob(z1[:, [1, 3]]) - std.log_prob(moved[:, [1, 3]])).sum(-1)
    assert torch.allclose(nelbo_moved - nelbo, rest_change, atol=1e-4)
    x = torch.bernoulli(torch.rand(3, 12))
    assert torch.equal(model.classifier_logits(x), model.cls(model.m1.enc(x)[0] * torch.tensor([1.0, 0, 1, 0])))
    with pytest.raises(VaelabError, match="no dim of M1's z1 has a posterior-mean std above it .* lower m1_active"):
        _m1m2(m1_active=5.0).choose_active(means)
    with pytest.raises(VaelabError, match="m1_active = -1.0: give a posterior-mean std threshold >= 0"):
        _m1m2(m1_active=-1.0)
    assert _m1m2().active is None and "active" not in _m1m2().state_dict()   # off: runs saved without it open


def test_m1m2_z1_sigma_from_the_decoder():
    """z1_sigma='decoder': p(z1 | y, z2) takes a mean and a log-std per dim and example from the decoder's two
    halves (against torch.distributions, on every dim and on the active ones); the samples' means use the
    first half; 'dim' keeps one learned std per dim; anything else is refused by name."""
    model = _m1m2(z1_sigma="decoder")
    assert "log_sigma" not in model.state_dict() and model.dec(torch.zeros(2, 3), torch.zeros(2, 10)).shape == (2, 8)
    z1, z2 = torch.randn(5, 4), torch.randn(5, 3)
    y = F.one_hot(torch.tensor([0, 3, 5, 9, 1]), 10).float()
    out = model.dec(z2, y)
    want = D.Independent(D.Normal(out[:, :4], out[:, 4:].exp()), 1).log_prob(z1)
    assert torch.allclose(model.log_px_given_zy(z1, z2, y), want, atol=1e-5)
    active = _m1m2(z1_sigma="decoder", m1_active=0.1)
    missing, unexpected = active.load_state_dict(model.state_dict(), strict=False)
    assert set(missing) == {"active", "active_chosen"} and not unexpected
    active.choose_active(torch.randn(100, 4) * torch.tensor([1.0, 0.05, 0.5, 0.01]))
    want_active = D.Normal(out[:, :4], out[:, 4:].exp()).log_prob(z1)[:, [0, 2]].sum(-1)
    assert torch.allclose(active.log_px_given_zy(z1, z2, y), want_active, atol=1e-5)
    labels = torch.tensor([2, 7])
    mean_z1 = model.dec(z2[:2], F.one_hot(labels, 10).float())[:, :4]
    assert torch.allclose(model.mean_x_given_z(z2[:2], labels), model.m1.mean_x_given_z(mean_z1))
    assert torch.allclose(active.mean_x_given_z(z2[:2], labels),   # inactive dims at their prior mean 0
                          model.m1.mean_x_given_z(mean_z1 * torch.tensor([1.0, 0, 1, 0])))
    with torch.no_grad():   # a runaway log-std output is held at +-7, so the density stays finite
        model.dec.net[-1].bias[4:].fill_(1e4)
    assert torch.equal(model.p_z1(z2, y)[1], torch.full((5, 4), 7.0))
    assert torch.isfinite(model.log_px_given_zy(z1, z2, y)).all()
    assert torch.isfinite(model.negative_elbo_bound(torch.bernoulli(torch.rand(5, 12)))[0])
    assert "log_sigma" in _m1m2().state_dict()
    with pytest.raises(VaelabError, match="z1_sigma = 'learned': give 'dim' .* or 'decoder'"):
        _m1m2(z1_sigma="learned")


def test_m1m2_chooses_active_units_at_its_first_m2_step_and_keeps_them(tmp_path):
    import vaelab

    run = vaelab.train("m1m2", out=tmp_path / "r", z1_dim=4, m1_hidden="16", z_dim=3, hidden="16", iters=40,
                       m1_iters=20, batch_size=50, m1_active=0.05, **M1_RUN_QUICK)
    model = run.model()
    assert model.active_chosen and set(model.active.tolist()) <= {0.0, 1.0} and model.active.sum() >= 1
    fresh = _m1m2(m1_active=0.05)
    assert not fresh.active_chosen   # chosen in training, then saved with the weights
    x = torch.bernoulli(torch.rand(6, 12))
    before = fresh.active.clone()
    fresh.train()
    fresh.steps_done.fill_(fresh.m1_iters)   # the first M2 step
    fresh.loss(x, None, labelled=(x[:2], torch.tensor([1, 2])))
    chosen = fresh.active.clone()
    assert fresh.active_chosen and torch.equal(before, torch.ones(4))
    fresh.loss(torch.bernoulli(torch.rand(6, 12)), None, labelled=(x[:2], torch.tensor([1, 2])))
    assert torch.equal(fresh.active, chosen)   # chosen once


def test_ssvae_labelled_bound_and_its_weight_in_the_objective():
    """-log p(x, y) <= KL(q(z|x,y) || p(z)) - log p(x|z,y) - log p(y), against torch.distributions; lw adds it."""
    model = build_model("ssvae", 12, z_dim=3, hidden="16", lw=0.5)
    xl, yl = torch.bernoulli(torch.rand(4, 12)), torch.tensor([0, 3, 5, 9])
    torch.manual_seed(3)
    got = model.labelled_negative_elbo(xl, yl)
    torch.manual_seed(3)
    y = F.one_hot(yl, 10).float()
    m, v = model.enc(xl, y)
    z = m + v.sqrt() * torch.randn(4, 3)
    q = D.Independent(D.Normal(m, v.sqrt()), 1)
    kl = D.kl_divergence(q, D.Independent(D.Normal(torch.zeros(3), torch.ones(3)), 1))
    log_px = D.Independent(D.Bernoulli(logits=model.dec(z, y)), 1).log_prob(xl)
    assert torch.allclose(got, kl - log_px + math.log(10), atol=1e-4)   # -log p(y) = log 10
    x = torch.bernoulli(torch.rand(6, 12))
    torch.manual_seed(4)
    loss, terms = model.loss(x, None, labelled=(xl, yl))
    torch.manual_seed(4)   # the labelled bound draws first, then the unlabelled one
    want = 0.5 * model.labelled_negative_elbo(xl, yl).mean()
    want = want + model.negative_elbo_bound(x)[0] + 100.0 * F.cross_entropy(model.cls(xl), yl)
    assert torch.allclose(loss, want, atol=1e-4) and "nelbo_labelled" in terms
    with pytest.raises(Exception, match="not all 0"):
        build_model("ssvae", 12, gw=0.0, cw=0.0, lw=0.0)


M1_RUN_QUICK = dict(eval_every=20, log_every=10, checkpoint_every=20, iwae_k=[1], eval_repeats=1, progress=False)


def test_m1m2_takes_m1_from_a_finished_vae_run_and_trains_only_m2(tmp_path):
    """m1_run: M1 starts from the VAE run's weights, every iteration trains M2 (m1_iters defaults to 0), and the
    M1+M2 run opens again after the VAE run is gone (its checkpoint holds M1)."""
    import shutil

    import vaelab

    vae_run = vaelab.train("vae", out=tmp_path / "m1", z_dim=4, hidden="16", iters=20, **M1_RUN_QUICK)
    m1 = vae_run.model()
    stacked = build_model("m1m2", 784, z1_dim=4, m1_hidden="16", z_dim=3, hidden="16", m1_run=str(vae_run.path))
    assert stacked.m1_iters == 0
    for name, weight in m1.state_dict().items():
        assert torch.equal(stacked.m1.state_dict()[name], weight), name
    # m1_iters=0 given as m1m2_long.py gives it: the run is rebuilt without m1_run (a weight-only option) on loading
    run = vaelab.train("m1m2", out=tmp_path / "m1m2", z1_dim=4, m1_hidden="16", z_dim=3, hidden="16", iters=20,
                       batch_size=50, m1_run=str(vae_run.path), m1_iters=0, **M1_RUN_QUICK)
    shutil.rmtree(vae_run.path)
    trained = run.model()
    for name, weight in m1.state_dict().items():   # M1 frozen: stage 1 had no iterations
        assert torch.equal(trained.m1.state_dict()[name], weight), name
    assert 0 <= run.per_seed()[0]["accuracy"] <= 1


@pytest.mark.parametrize("change, message", [
    (dict(z1_dim=5), "pass z1_dim=4 and m1_hidden='16'"),
    (dict(m1_hidden="32"), "pass z1_dim=4 and m1_hidden='16'"),
    (dict(m1_seed=3), "has seeds [0]; choose m1_seed among them"),
])
def test_m1m2_refuses_an_m1_run_that_does_not_fit(tmp_path, change, message):
    import vaelab
    from vaelab.errors import VaelabError

    path = vaelab.train("vae", out=tmp_path / "m1", z_dim=4, hidden="16", iters=20, **M1_RUN_QUICK).path
    with pytest.raises(VaelabError, match=re.escape(message)):
        vaelab.train("m1m2", out=tmp_path / "m1m2", iters=20, batch_size=50, m1_run=str(path),
                     **{"z1_dim": 4, "m1_hidden": "16", **change}, **M1_RUN_QUICK)
    assert not (tmp_path / "m1m2").exists()   # refused before anything was written


def test_m1m2_refuses_an_m1_run_of_another_model(tmp_path):
    import vaelab
    from vaelab.errors import VaelabError

    path = vaelab.train("ae", out=tmp_path / "ae", z_dim=4, hidden="16", iters=20, **M1_RUN_QUICK).path
    with pytest.raises(VaelabError, match="holds a run of ae; M1 is a VAE"):
        vaelab.train("m1m2", out=tmp_path / "m1m2", iters=20, m1_run=str(path), z1_dim=4, m1_hidden="16")
    with pytest.raises(VaelabError, match=r"m1_run = .*nowhere: no such folder"):
        vaelab.train("m1m2", out=tmp_path / "m1m2", iters=20, m1_run=str(tmp_path / "nowhere"))


def test_ssvae_activation_option_sets_every_network():
    """activation= puts one hidden activation in M2's encoder, decoder and classifier (M1+M2's decoder of
    z1's mean and log-std too); by default encoder and decoder keep ELU and the classifier ReLU; an unknown
    name is refused with the known ones."""
    def kinds(model):
        return {name: {type(m).__name__ for m in net.net if not isinstance(m, torch.nn.Linear)}
                for name, net in (("enc", model.enc), ("dec", model.dec), ("cls", model.cls))}

    assert kinds(SSVAE(x_dim=6, hidden="5")) == {"enc": {"ELU"}, "dec": {"ELU"}, "cls": {"ReLU"}}
    assert kinds(SSVAE(x_dim=6, hidden="5,4", activation="softplus")) == {k: {"Softplus"} for k in ("enc", "dec", "cls")}
    assert kinds(_m1m2(activation="tanh", z1_sigma="decoder")) == {k: {"Tanh"} for k in ("enc", "dec", "cls")}
    with pytest.raises(ValueError, match="unknown activation 'gelu': use elu, relu, tanh, leaky_relu, softplus"):
        SSVAE(x_dim=6, activation="gelu")
