"""The VAE's loss terms against torch.distributions, and its IWAE estimator against a closed form."""
import math
import os
import platform
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import distributions as D
from torch import nn

from vaelab.evaluate import evaluate_terms, evaluate_niwae
from vaelab.models import build_model
from vaelab.models.base import Model
from vaelab.errors import VaelabError


def test_negative_elbo_bound_terms_match_torch_distributions():
    torch.manual_seed(0)
    model = build_model("vae", 784)
    x = torch.bernoulli(torch.rand(32, 784))
    torch.manual_seed(1)
    nelbo, kl, rec = model.negative_elbo_bound(x)
    # Recompute with the same noise, through torch.distributions.
    torch.manual_seed(1)
    m, v = model.enc(x)
    z = m + v.sqrt() * torch.randn_like(m)
    q = D.Independent(D.Normal(m, v.sqrt()), 1)
    p = D.Independent(D.Normal(torch.zeros(10), torch.ones(10)), 1)
    px = D.Independent(D.Bernoulli(logits=model.dec(z)), 1)
    assert torch.allclose(kl, D.kl_divergence(q, p).mean(), rtol=1e-5)
    assert torch.allclose(rec, -px.log_prob(x).mean(), rtol=1e-5)
    assert torch.allclose(nelbo, kl + rec)
    assert nelbo.shape == kl.shape == rec.shape == ()


def test_beta_scales_only_the_training_kl():
    torch.manual_seed(0)
    model = build_model("vae", 20, z_dim=3, hidden="16", beta=4.0)
    x = torch.bernoulli(torch.rand(8, 20))
    torch.manual_seed(5)
    loss, terms = model.loss(x)
    assert torch.allclose(loss, terms["rec"] + 4.0 * terms["kl"])
    assert torch.allclose(terms["nelbo"], terms["rec"] + terms["kl"])


def test_gaussian_likelihood_matches_torch_and_learns_sigma():
    torch.manual_seed(0)
    model = build_model("vae", 5, z_dim=2, hidden="8", likelihood="gaussian", sigma="learned")
    assert any(n == "log_sigma" for n, _ in model.named_parameters())
    with torch.no_grad():
        model.log_sigma.fill_(math.log(0.3))
    x, z = torch.randn(4, 5), torch.randn(4, 2)
    expected = D.Independent(D.Normal(model.dec(z), 0.3), 1).log_prob(x)
    assert torch.allclose(model.log_px_given_z(x, z), expected, atol=1e-5)
    fixed = build_model("vae", 5, z_dim=2, hidden="8", likelihood="gaussian", sigma="0.1")
    assert not any(n == "log_sigma" for n, _ in fixed.named_parameters())


def _linear_gaussian_vae():
    """x = W z + b + sigma * noise: log p(x) = log N(x | b, W W^T + sigma^2 I) exactly."""
    torch.manual_seed(3)
    model = build_model("vae", 4, z_dim=2, hidden="", likelihood="gaussian", sigma="0.5").double()
    return model


def test_iwae_converges_to_the_exact_log_likelihood_of_a_linear_gaussian_model():
    model = _linear_gaussian_vae()
    lin = model.dec.net[0]
    cov = lin.weight @ lin.weight.T + 0.25 * torch.eye(4, dtype=torch.float64)
    x = D.MultivariateNormal(lin.bias, cov).sample((200,)).detach()
    exact_nll = -D.MultivariateNormal(lin.bias, cov).log_prob(x).mean().item()
    torch.manual_seed(0)
    with torch.no_grad():
        nelbo = evaluate_terms(model, x, repeats=20)["nelbo"]
        iwae = {k: evaluate_niwae(model, x, k, progress=False) for k in (1, 100, 5000)}
    # Each bound sits above -log p(x), tightens with k, and IWAE-5000 nearly closes the gap
    # even though the (untrained) encoder is a poor proposal.
    assert nelbo > exact_nll and iwae[1] > exact_nll
    assert abs(iwae[1] - nelbo) < 0.1 * (nelbo - exact_nll) + 0.1
    assert iwae[1] > iwae[100] > iwae[5000] > exact_nll - 0.02
    assert iwae[5000] - exact_nll < 0.05 * (iwae[1] - exact_nll)


def test_iwae_passes_merge_exactly():
    """k split over several passes (and images over several batches) gives log (1/k) sum_i w_i of all k weights."""
    class Fixed(Model):      # log w_i(x) = x_0 + sin(i): deterministic, so the exact bound is known
        x_dim, z_dim, likelihood = 1, 1, "gaussian"

        def __init__(self):
            super().__init__()
            self.unused = nn.Parameter(torch.zeros(1, dtype=torch.float64))   # where the model lives

        def log_importance_weights(self, x, k, y=None):
            self.start = getattr(self, "start", 0)
            i = torch.arange(self.start, self.start + k, dtype=torch.float64)
            self.start = (self.start + k) % 50
            return x[:, 0].unsqueeze(0) + torch.sin(i).unsqueeze(1)

    x = torch.arange(7, dtype=torch.float64).unsqueeze(1)
    exact = -(x[:, 0] + torch.logsumexp(torch.sin(torch.arange(50.0, dtype=torch.float64)), 0) - math.log(50)).mean()
    for rows in (7, 30, 1000):      # 8 passes of up to 7 weights per image / 1 image per pass / all at once
        assert evaluate_niwae(Fixed(), x, 50, progress=False, rows_per_pass=rows) == pytest.approx(exact.item(), abs=1e-9)


@pytest.mark.parametrize("name", ["vamp", "hvae"])
def test_compiled_evaluation_gives_the_same_bound(name):
    """compile=True draws the same samples as the model's own method: the same seed, the same bound."""
    torch.manual_seed(0)
    model = build_model(name, 784, **({"z_dim": 8, "k": 20} if name == "vamp" else {})).eval()
    x = torch.bernoulli(torch.rand(3, 784))
    bounds = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for compile in (False, True):
            torch.manual_seed(1)
            bounds.append(evaluate_niwae(model, x, 300, progress=False, rows_per_pass=100, compile=compile))
    assert not [w for w in caught if "compile=True" in str(w.message)]   # it compiled (gcc is installed)
    assert bounds[1] == pytest.approx(bounds[0], abs=1e-3)
    torch.manual_seed(2)   # and another draw differs: the comparison above is not of constants
    assert evaluate_niwae(model, x, 300, progress=False, rows_per_pass=100) != pytest.approx(bounds[0], abs=1e-3)


def test_log_importance_weights_shape_and_mean_is_elbo():
    torch.manual_seed(0)
    model = build_model("vae", 30, z_dim=4, hidden="16")
    x = torch.bernoulli(torch.rand(6, 30))
    with torch.no_grad():
        lw = model.log_importance_weights(x, 4000)
    assert lw.shape == (4000, 6)
    # E_q[log w] = ELBO: the Monte Carlo mean of the log-weights matches -NELBO's expectation.
    torch.manual_seed(1)
    with torch.no_grad():
        nelbo_avg = model.negative_elbo_bound(x.repeat(4000, 1), reduce=False)[0].view(4000, 6).mean(0)
    assert torch.allclose(-lw.mean(0), nelbo_avg, atol=0.3)


@pytest.mark.parametrize("opts, fragment", [
    ({"likelihood": "poisson"}, "likelihood"),
    ({"hidden": "300,abc"}, "hidden"),
    ({"nope": 1}, "no option"),
])
def test_bad_model_options_are_one_line_errors(opts, fragment):
    with pytest.raises(VaelabError, match=fragment) as e:
        build_model("vae", 784, **opts)
    assert "\n" not in str(e.value)


def test_unknown_model_lists_known_ones():
    with pytest.raises(VaelabError, match="choose one of vae"):
        build_model("transformer", 784)


def test_iwae_passes_halve_when_the_gpu_runs_out_of_memory(monkeypatch):
    """The default pass size is a guess for the GPU at hand: a pass that runs out of memory is done again
    in halves, and the bound is the same; a pass size the caller chose is kept (the error is theirs)."""
    import vaelab.evaluate as ev

    torch.manual_seed(0)
    model = build_model("vae", 12, z_dim=2, hidden="8")
    x = torch.bernoulli(torch.rand(40, 12))
    real, sizes = ev.iwae_per_example, []

    def small_memory(model, xb, k, yb, rows, weights=None):
        sizes.append(rows)
        if rows > 2000:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, xb, k, yb, rows, weights)

    monkeypatch.setattr(ev, "iwae_per_example", small_memory)
    monkeypatch.setattr(ev, "iwae_rows_per_pass", lambda device: 8000)
    torch.manual_seed(1)
    backed_off = evaluate_niwae(model, x, 100, progress=False)
    assert sizes[:3] == [8000, 4000, 2000] and set(sizes[2:]) == {2000}
    torch.manual_seed(1)
    assert backed_off == evaluate_niwae(model, x, 100, progress=False, rows_per_pass=2000)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        evaluate_niwae(model, x, 100, progress=False, rows_per_pass=4000)


def test_compiled_evaluation_falls_back_once_with_a_warning(monkeypatch):
    """A compiler failure: one warning, then the model's own method; the model's own error is raised as is."""
    import vaelab.evaluate as ev

    def broken(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler (simulated)")
        return call
    monkeypatch.setattr(ev.torch, "compile", broken)
    torch.manual_seed(0)
    model = build_model("vae", 20, z_dim=2, hidden="8").eval()
    x = torch.bernoulli(torch.rand(3, 20))
    torch.manual_seed(1)
    eager = evaluate_niwae(model, x, 50, progress=False, rows_per_pass=10)
    torch.manual_seed(1)
    with pytest.warns(UserWarning, match="torch.compile failed here .no C.. compiler") as caught:
        assert evaluate_niwae(model, x, 50, progress=False, rows_per_pass=10, compile=True) == pytest.approx(eager)
    assert len([w for w in caught if "compile=True" in str(w.message)]) == 1   # not once per pass
    def own(x, k, y=None):
        raise ValueError("the model's own error")
    model.log_importance_weights = own   # after the fallback, the model's own error is raised as is
    with pytest.warns(UserWarning, match="torch.compile failed here"), pytest.raises(ValueError, match="own error"):
        evaluate_niwae(model, x, 50, progress=False, rows_per_pass=10, compile=True)


def test_long_evaluations_compile_by_default_and_short_ones_do_not(monkeypatch):
    """compile=None compiles a CPU evaluation of COMPILE_AUTO_ROWS sample rows or more (len(x) * k), not a
    shorter one; compile=False never, compile=True always."""
    import vaelab.evaluate as ev

    made = []

    class Spy(ev.CompiledWeights):
        def __init__(self, model, auto=False):
            made.append(auto)
            super().__init__(model, auto)
    monkeypatch.setattr(ev, "CompiledWeights", Spy)
    monkeypatch.setattr(ev, "COMPILE_AUTO_ROWS", 150)
    torch.manual_seed(0)
    model = build_model("vae", 20, z_dim=2, hidden="8").eval()
    x = torch.bernoulli(torch.rand(3, 20))
    evaluate_niwae(model, x, 49, progress=False)                  # 147 rows: below
    assert made == []
    evaluate_niwae(model, x, 49, progress=False, compile=True)
    evaluate_niwae(model, x, 50, progress=False, compile=False)   # 150 rows, told not to
    evaluate_niwae(model, x, 50, progress=False)                  # 150 rows: compiled, as the default's choice
    assert made == [False, True]
    with pytest.raises(VaelabError, match=r"^compile = 'yes': give True, False or None"):
        evaluate_niwae(model, x, 50, progress=False, compile="yes")


@pytest.mark.parametrize("name, bad, message", [
    ("vae", lambda x, y: (x * 255, None), r"^x must hold pixel values in \[0, 1\] for this Bernoulli model, got values from 0 to 255"),
    ("vae", lambda x, y: (x[:, :100], None), r"^x must have shape \(batch, 784\) .*got \(4, 100\)$"),
    ("vae", lambda x, y: (x[:0], None), r"^x holds no examples; pass at least one$"),
    ("cvae", lambda x, y: (x, y[:3]), r"^y has 3 labels for 4 examples"),
    ("cvae", lambda x, y: (x, y + 12), r"^y must be class indices 0..9, got values from 12"),
    ("cvae", lambda x, y: (x, None), r"^CVAE is conditional: pass the labels y"),
])
@pytest.mark.parametrize("evaluate", ["elbo", "iwae"])
def test_evaluation_checks_its_data_before_computing_anything(name, bad, message, evaluate):
    """Grey values 0..255 gave a bound of -6.8 million nats instead of an error; a wrong width a deep torch error."""
    torch.manual_seed(0)
    x, y = torch.bernoulli(torch.rand(4, 784)), torch.arange(4)
    model = build_model(name, 784).eval()
    xb, yb = bad(x, y)
    with pytest.raises(VaelabError, match=message):
        evaluate_terms(model, xb, y=yb) if evaluate == "elbo" else evaluate_niwae(model, xb, 5, progress=False, y=yb)


def test_evaluation_refuses_what_is_not_a_model():
    with pytest.raises(VaelabError, match=r"^model must be a vaelab model, got object: pass a model such as run.model\(\)"):
        evaluate_niwae(object(), torch.rand(2, 784), 5, progress=False)


@pytest.mark.parametrize("call, message", [
    (lambda m, x: evaluate_terms(m, x, repeats=0), r"^repeats must be a positive integer .*, got 0$"),
    (lambda m, x: evaluate_terms(m, x, batch_size=2.5), r"^batch_size must be a positive integer .*, got 2.5$"),
    (lambda m, x: evaluate_niwae(m, x, k=0), r"^k must be a positive integer .*, got 0$"),
    (lambda m, x: evaluate_niwae(m, x, k=2.5), r"^k must be a positive integer .*, got 2.5$"),
    (lambda m, x: evaluate_niwae(m, x, k=5, rows_per_pass=-1), r"^rows_per_pass must be a positive integer"),
])
def test_evaluation_refuses_bad_counts(call, message):
    """A count that is not a positive integer is a one-line error naming the argument, not NaN metrics
    or an error from inside torch; a numpy integer is a count like any other."""
    model, x = build_model("vae", 784, z_dim=2, hidden="16"), torch.rand(4, 784).round()
    with pytest.raises(VaelabError, match=message):
        call(model, x)
    assert math.isfinite(evaluate_niwae(model, x, np.int64(3), progress=False))
    assert math.isfinite(evaluate_terms(model, x, repeats=np.int64(2))["nelbo"])


_FAULTS_SCRIPT = """
import resource, sys, torch
from vaelab.evaluate import evaluate_niwae, hold_freed_memory
from vaelab.models import build_model
torch.set_num_threads(1)
model = build_model("vae", 784).eval()
x = torch.bernoulli(torch.rand(10, 784))
evaluate_niwae(model, x, 5000, progress=False)            # the first passes find the heap empty
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
evaluate_niwae(model, x, 5000, progress=False)            # 50 passes of 1,000 x 784 decoder rows
print(hold_freed_memory(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc thresholds")
def test_iwae_passes_reuse_freed_memory_instead_of_faulting_it_in_again():
    """evaluate_niwae keeps freed tensor memory in the process: after the first evaluation, the 50 passes of
    another take (almost) no page faults, where glibc's defaults can fault a 3 MB pass buffer in every pass
    (hundreds of thousands of faults, a third of the eager time). VAELAB_HOLD_MEMORY=0 turns it off."""
    def run(**env):
        out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT], capture_output=True, text=True, check=True,
                             env={**os.environ, **env}).stdout.split()
        return out[0] == "True", int(out[1])
    held, faults = run(VAELAB_HOLD_MEMORY="1")
    assert held and faults < 200, faults   # a 3 MB buffer faulted in again would be 784 faults in one pass
    assert run(VAELAB_HOLD_MEMORY="0")[0] is False   # (here: 35,000-40,000 faults then)


def test_every_image_vae_reports_its_reconstruction_mse(done):
    """metrics.json's mse: the grey test images against the decoder's mean at their posterior means, so that
    Bernoulli, Gaussian and logistic VAEs and the autoencoders compare on one number."""
    import vaelab

    run = vaelab.load_run(done)
    model, data = run.model(), run.data()
    with torch.no_grad():
        recon = model.mean_x_given_z(model.posterior_mean(data.test_x, data.test_y), data.test_y)
    expected = (recon - data.test_x_grey).pow(2).mean(1).mean().item()
    assert run.per_seed()[0]["mse"] == pytest.approx(expected, rel=1e-5)
