"""Objectives and schedules of the likelihood race: IWAE training, VampPrior, two stochastic layers, KL warm-up,
learning-rate schedules, time budgets; each checked against torch.distributions or a closed form."""
import math

import pytest
import torch
from conftest import killed_then_resumed
from torch import distributions as D

import vaelab
from vaelab.config import TrainConfig
from vaelab.densities import log_mean_exp
from vaelab.errors import VaelabError
from vaelab.models import build_model
from vaelab.nets import Tanh
from vaelab.runs.train import resume_run, train_run
from vaelab.schedules import IWAE_EPOCHS, lr_factor, parse_duration, parse_schedule, warmup_weight

x8 = torch.bernoulli(torch.rand(8, 784, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("name", ["vae", "gmvae", "vamp", "hvae"])
def test_the_iwae_objective_is_the_negative_iwae_bound_and_k1_is_the_elbo(name):
    torch.manual_seed(0)
    model = build_model(name, 784, iw_k=7, **({"k": 5} if name in ("gmvae", "vamp") else {}))
    torch.manual_seed(1)
    loss, terms = model.loss(x8)
    torch.manual_seed(1)
    want = -log_mean_exp(model.log_importance_weights(x8, 7), dim=0).mean()
    assert torch.allclose(loss, want, atol=1e-4) and torch.allclose(terms["niwae_train"], want, atol=1e-4)
    model.iw_k = 1
    torch.manual_seed(2)
    loss1, terms1 = model.loss(x8)
    assert torch.allclose(loss1, terms1["nelbo"]) and terms1["nelbo"].item() == pytest.approx((terms1["kl"] + terms1["rec"]).item(), rel=1e-6)
    assert "niwae_train" not in terms1


def test_the_vampprior_is_the_mixture_of_the_encoder_posteriors_at_the_pseudo_inputs():
    torch.manual_seed(0)
    model = build_model("vamp", 784, z_dim=3, k=4, hidden="16")
    z = torch.randn(6, 3)
    m, v = model.enc(model.pseudo_inputs())
    mixture = D.MixtureSameFamily(D.Categorical(logits=torch.zeros(4)), D.Independent(D.Normal(m, v.sqrt()), 1))
    assert torch.allclose(model.log_pz(z), mixture.log_prob(z), atol=1e-5)
    assert ((model.pseudo_inputs() >= 0) & (model.pseudo_inputs() <= 1)).all()
    model.eval()
    with torch.no_grad():   # evaluation caches the prior; training mode recomputes it
        first = model.prior()[0]
        assert model.prior()[0] is first
    model.train()
    assert model.prior()[0] is not first and model.u_pre.grad is None
    model.loss(x8)[0].backward()
    assert model.u_pre.grad is not None and model.u_pre.grad.abs().sum() > 0   # the pseudo-inputs are learned


def test_the_two_layer_bound_matches_torch_distributions():
    torch.manual_seed(0)
    model = build_model("hvae", 784, z_dim=3, z1_dim=4, hidden="16", hidden2="8")
    torch.manual_seed(5)
    lw = model.log_importance_weights(x8, 2)
    torch.manual_seed(5)   # the same draws, by hand: z1 ~ q(z1|x), then z2 ~ q(z2|z1)
    m1, v1 = model.q_z1(x8)
    z1 = m1.expand(2, -1, -1) + v1.sqrt() * torch.randn(2, 8, 4)
    m2, v2 = model.q_z2(z1.reshape(-1, 4))
    z2 = m2 + v2.sqrt() * torch.randn(16, 3)
    pm, pv = model.p_z1(z2)
    normal = lambda m, v: D.Independent(D.Normal(m, v.sqrt()), 1)  # noqa: E731
    want = (D.Independent(D.Bernoulli(logits=model.p_x(z1)), 1).log_prob(x8.expand(2, -1, -1))
            + (normal(torch.zeros(3), torch.ones(3)).log_prob(z2) + normal(pm, pv).log_prob(z1.reshape(-1, 4))
               - normal(m2, v2).log_prob(z2)).view(2, 8) - normal(m1, v1).log_prob(z1))
    assert torch.allclose(lw, want, atol=1e-4)
    nelbo, kl, rec = model.negative_elbo_bound(x8)
    assert nelbo.item() == pytest.approx((kl + rec).item(), rel=1e-6)
    assert model.sample(3).shape == (3, 784) and model.encode(x8).shape == (8, 3)


def test_the_tanh_units_are_tanh():
    """The tanh activation is torch.tanh uncompiled and 2 sigmoid(2x) - 1 under torch.compile (cheaper on a
    CPU): against float64 tanh near 0, far out and at the infinities, with its gradient 1 - tanh^2."""
    torch.manual_seed(0)
    x = torch.cat([torch.randn(10_000) * 3, torch.randn(10_000) * 1e-4,
                   torch.tensor([0.0, 30.0, -30.0, 1e4, -1e4, math.inf, -math.inf])]).requires_grad_()
    assert torch.equal(Tanh()(x), torch.tanh(x))
    compiled = torch.compile(Tanh(), dynamic=False)
    y = compiled(x)
    assert not torch.equal(y, torch.tanh(x))   # the sigmoid form ran (it rounds differently)
    assert (y.double() - torch.tanh(x.double())).abs().max().item() < 2e-7
    assert y[-6:].tolist() == [1.0, -1.0, 1.0, -1.0, 1.0, -1.0]
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.allclose(grad[:-2], 1 - torch.tanh(x[:-2].detach()) ** 2, atol=1e-6)
    assert isinstance(build_model("hvae", 784).p_x.net[1], Tanh)


def test_warmup_weights_the_kl_term():
    torch.manual_seed(0)
    model = build_model("vae", 784, z_dim=2, hidden="16")
    model.kl_weight = 0.25
    torch.manual_seed(1)
    loss, terms = model.loss(x8)
    assert loss.item() == pytest.approx((terms["rec"] + 0.25 * terms["kl"]).item(), rel=1e-6)
    assert [warmup_weight(i, 4) for i in (1, 2, 4, 9)] == [0.25, 0.5, 1.0, 1.0] and warmup_weight(3, 0) == 1.0


def test_learning_rate_schedules():
    assert lr_factor(parse_schedule("constant"), 123.4) == 1.0
    assert [lr_factor(parse_schedule("step:10:0.5"), e) for e in (0, 9.9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    assert lr_factor(parse_schedule("exp:0.9"), 2) == pytest.approx(0.81)
    iwae = parse_schedule("iwae")   # 10^(-i/7) for 3^i epochs: epochs 0 | 1-3 | 4-12 | ...
    assert [lr_factor(iwae, e) for e in (0, 0.99, 1, 3.99, 4)] == pytest.approx([1, 1, 10 ** (-1 / 7), 10 ** (-1 / 7),
                                                                                  10 ** (-2 / 7)])
    assert IWAE_EPOCHS == 3280 and lr_factor(iwae, 5000) == pytest.approx(10 ** (-1))
    assert parse_duration("90s") == 90 and parse_duration("15m") == 900 and parse_duration("1.5h") == 5400


@pytest.mark.parametrize("cfg, message", [
    (dict(model_options={"iw_k": 0}), "iw_k must be a positive integer, got 0"),
    (dict(warmup=50.0, iters=100), r"warmup=50 epochs \(1800 iterations\) is longer than the run \(100 iterations\)"),
    (dict(model="ae", warmup=1.0), r"warmup: ae does not weight its KL term\(s\) for a warm-up \(the models that "
                                    r"do: vae, gmvae, vamp, hvae, cvae\)"),
    (dict(lr_schedule="step:ten:0.5"), "lr_schedule='step:ten:0.5': give constant, step:EPOCHS:FACTOR"),
    (dict(lr_schedule="exp:2"), "factors are in \\(0, 1\\]"),
    (dict(time_budget="0m"), "time_budget='0m': give a positive duration"),
    (dict(adam_eps=0.0), "adam_eps must be a positive number"),
    (dict(model_options={"iw_k": 5, "beta": 2.0}), "trains on the IWAE bound, which has no beta"),
])
def test_bad_options_are_refused_before_training(cfg, message, tmp_path):
    with pytest.raises(VaelabError, match=message):
        train_run(TrainConfig(out=str(tmp_path / "r"), progress=False, **cfg))
    assert not (tmp_path / "r").exists()


def test_the_two_layer_model_has_no_conv_option(capsys):
    from vaelab.cli import main

    with pytest.raises(SystemExit) as e:   # argparse's one line, before anything runs
        main(["train", "hvae", "--net", "conv"])
    assert e.value.code == 2 and "unrecognized arguments: --net conv" in capsys.readouterr().err


def test_a_time_budget_stops_training_cleanly_and_evaluates(tmp_path, capsys):
    run = vaelab.train("vae", out=tmp_path / "budget", iters=10**6, time_budget="2s", progress=True, iwae_k=[1],
                       eval_repeats=1, log_every=20, warmup=0.5, lr_schedule="exp:0.9")
    hist = run.history()
    assert hist["stopped_by"] == "time budget" and 0 < hist["iterations_run"] < 10**6
    training = next(line for line in (run.path / "report.md").read_text().splitlines() if line.startswith("- training:"))
    assert training.startswith("- training: 1000000 iterations, KL warm-up over 0.5 epochs, batch 100, Adam lr 0.001, "
                               "lr schedule exp:0.9,") and training.endswith(
        f"; time budget 2s; seed 0 stopped by the time budget after {hist['iterations_run']} iterations")
    assert 2 <= hist["train_seconds"] < 30 and run.summary()["nelbo"]["mean"] > 0
    assert "budget left=0:00:00" in capsys.readouterr().err   # the bar's last state: the budget is spent


def test_a_longer_budget_continues_a_budget_stopped_run_exactly(tmp_path, capsys):
    from vaelab.cli import main

    cfg = dict(iters=72, log_every=12, eval_every=12, checkpoint_every=36, val_size=400, iwae_k=[2], eval_repeats=1,
               progress=False, threads=1, z_dim=2, hidden="32")
    reference = vaelab.train("vae", out=tmp_path / "ref", **cfg)
    short = vaelab.train("vae", out=tmp_path / "run", time_budget="0.001s", **cfg)   # stops at the first log point
    assert short.history()["iterations_run"] == 12 and short.complete
    again = vaelab.train("vae", out=tmp_path / "run", resume=True, time_budget="0.001s", **cfg)
    assert again.history()["iterations_run"] == 12   # the same budget: the same cell returns the run as it is
    with pytest.raises(VaelabError, match=r"time_budget='0.0001s' is not longer than the training its budget-stopped "
                                          r"seed\(s\) have had \(.* s\); nothing to continue"):
        resume_run(tmp_path / "run", time_budget="0.0001s")
    assert vaelab.load_run(tmp_path / "run").config.time_budget == "0.001s"   # the refused budget is not recorded
    longer = vaelab.train("vae", out=tmp_path / "run", resume=True, time_budget="1h", **cfg)
    assert "stopped_by" not in longer.history() and longer.config.time_budget == "1h"
    a, b = longer.per_seed()[0], reference.per_seed()[0]
    for key in ("nelbo", "kl", "rec", "niwae_2"):
        assert a[key] == b[key], key
    assert longer.history()["loss"] == reference.history()["loss"]
    with pytest.raises(VaelabError, match="already complete .* a longer time_budget continues only the seeds a budget"):
        resume_run(tmp_path / "run", time_budget="2h")
    vaelab.train("vae", out=tmp_path / "cli", time_budget="0.001s", **cfg)
    assert main(["train", "--resume", str(tmp_path / "cli"), "--time-budget", "1h"]) == 0
    assert vaelab.load_run(tmp_path / "cli").per_seed()[0]["nelbo"] == b["nelbo"]
    with pytest.raises(VaelabError, match="time_budget='soon': give a positive duration"):
        resume_run(tmp_path / "cli", time_budget="soon")


def test_every_run_keeps_its_best_validation_weights(tmp_path):
    run = vaelab.train("vae", out=tmp_path / "r", iters=60, eval_every=20, log_every=20, val_size=400, iwae_k=[1],
                       eval_repeats=1, progress=False, threads=1, z_dim=2, hidden="32", lr=3e-2)
    hist, seed_dir = run.history(), run.path / "seed-0"
    vals = hist["val_nelbo"]
    assert hist["best_iteration"] == hist["val_iteration"][vals.index(min(vals))] and hist["best_val"] == min(vals)
    assert "stopped_early" not in hist   # no early stopping: the results come from the last weights
    best, last = run.model(best=True), run.model()
    best_state = torch.load(seed_dir / "best.pt", weights_only=False)
    assert best_state["iteration"] == hist["best_iteration"]
    assert best_state["optimizer"] is None   # weights only: resume reads checkpoint.pt
    last_weights = torch.load(seed_dir / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(v, last_weights[k]) for k, v in last.state_dict().items())
    if hist["best_iteration"] != 60:
        assert not all(torch.equal(v, last_weights[k]) for k, v in best.state_dict().items())
    none = vaelab.train("vae", out=tmp_path / "noval", iters=20, val_size=0, iwae_k=[1], eval_repeats=1, progress=False,
                        z_dim=2, hidden="32")
    with pytest.raises(VaelabError, match="no best.pt; runs keep their best validation weights only with a validation"):
        none.model(best=True)


def test_schedules_and_warmup_resume_exactly(tmp_path, monkeypatch):
    cfg = dict(model="vae", iters=72, checkpoint_every=36, eval_every=36, log_every=12, val_size=400, iwae_k=[2],
               eval_repeats=1, progress=False, threads=1, warmup=1.0, lr_schedule="step:1:0.5",
               model_options={"z_dim": 2, "hidden": "32", "iw_k": 3})
    reference = vaelab.Run(train_run(TrainConfig(out=str(tmp_path / "ref"), **cfg)))
    resumed = killed_then_resumed(monkeypatch, cfg, tmp_path / "run", 72, threads=1)
    a, b = resumed.per_seed()[0], reference.per_seed()[0]
    for key in ("nelbo", "kl", "rec", "niwae_2"):
        assert a[key] == b[key], key
    assert resumed.history()["niwae_train"] == reference.history()["niwae_train"]
    assert math.isfinite(a["nelbo"])
