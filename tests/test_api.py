"""The public Python API: vaelab.train / load_run / Run / options, the model verbs, figures, errors."""
import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from vaelab.configure import build_config
from torch import nn

import vaelab
from vaelab.densities import log_mean_exp
from vaelab.evaluate import evaluate_terms

QUICK = dict(iters=60, eval_every=30, log_every=10, checkpoint_every=30, iwae_k=[1, 10], eval_repeats=2,
             progress=False, val_size=100)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "vae"
    return vaelab.train("vae", seeds=[0, 1], out=out, z_dim=4, hidden="32", beta=2.0, **QUICK)


def test_train_returns_a_run_with_its_metrics(run):
    assert isinstance(run, vaelab.Run) and run.complete and run.finished_seeds == [0, 1]
    table = run.summary()
    assert table["nelbo"]["n"] == 2 and table["nelbo"]["mean"] > 0 and "niwae_10" in table
    assert "<table>" in table._repr_html_() and "nelbo" in str(table)
    per_seed = run.per_seed()
    assert set(per_seed) == {0, 1}
    mean = (per_seed[0]["nelbo"] + per_seed[1]["nelbo"]) / 2
    assert table["nelbo"]["mean"] == pytest.approx(mean)
    assert run.config.model_options["beta"] == 2.0 and len(run.history(1)["iteration"]) == 6
    assert run.metrics["validation_set"] == "100 images held out of the training set"   # val_size 100 of 4,000
    capped = vaelab.train("vae", out=run.path.parent / "capped", z_dim=2, hidden="16", **{**QUICK, "val_size": 900})
    assert capped.metrics["validation_set"] == ("400 images held out of the training set (val_size 900, at most a "
                                                "tenth of the training set)")
    assert "validation: 400 images held out" in (capped.path / "report.md").read_text()


def test_the_run_model_and_test_data_reproduce_the_recorded_metrics(run):
    model = run.model(seed=1)
    x, y = run.test_data()
    assert set(x.unique().tolist()) <= {0.0, 1.0}   # the fixed binarization, as evaluated
    again = vaelab.load_run(run.path).model(seed=1)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    torch.manual_seed(0)
    nelbo = evaluate_terms(model, x, repeats=20)["nelbo"]
    assert nelbo == pytest.approx(run.per_seed()[1]["nelbo"], rel=0.02)


def test_model_verbs_have_the_documented_shapes(run):
    model = run.model()
    x, y = run.test_data()
    z = model.encode(x[:5])
    assert z.shape == (5, 4) and model.decode(z).shape == (5, 784)
    assert model.reconstruct(x[:3]).shape == (3, 784)
    s, b = model.sample(7), model.sample(6, binary=True)
    assert s.shape == (7, 784) and ((s >= 0) & (s <= 1)).all() and set(b.unique().tolist()) <= {0.0, 1.0}
    assert model.encode(x[:2].view(2, 28, 28)).shape == (2, 4)   # images are flattened


def test_iwae_and_elbo_match_their_definitions(run):
    model = run.model()
    x = run.test_data()[0][:6]
    with torch.no_grad():
        torch.manual_seed(3)
        got = model.iwae(x, k=2500)   # split over three passes of ~1,000 decoder rows
        torch.manual_seed(3)
        want = torch.cat([log_mean_exp(model.log_importance_weights(x[i:i + 1], 2500), 0) for i in range(6)])
        elbo = torch.stack([model.elbo(x) for _ in range(200)]).mean(0)
    assert got.shape == (6,) and torch.allclose(got, want, atol=1e-3)
    assert (got >= elbo - 0.5).all()   # the bound tightens with k (elbo averaged over 200 draws)
    with pytest.raises(vaelab.VaelabError, match="k must be a positive integer"):
        model.iwae(x, k=0)


def test_figures_are_returned_and_optionally_saved(run, tmp_path):
    model = run.model()
    x, y = run.test_data()
    for fig in (vaelab.plots.samples(model, rows=2, cols=3), vaelab.plots.reconstructions(model, x, n=4),
                vaelab.plots.manifold(model, x[:200], y[:200], n=5), vaelab.plots.scatter(model, x[:200], y[:200]),
                vaelab.plots.interpolation(model, x, y, steps=4), vaelab.plots.curves(run)):
        assert isinstance(fig, Figure)
    vaelab.plots.samples(model, rows=1, cols=2, save=tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert isinstance(vaelab.plots.curves(str(run.path)), Figure)   # a run folder as well as a Run
    assert isinstance(vaelab.plots.grid(x[:4].numpy(), 2, 2), Figure)   # an array as well as a tensor


@pytest.mark.parametrize("draw, message", [
    (lambda run, x, y: vaelab.plots.samples(run), r"got Run: pass a model such as run.model\(\)"),
    (lambda run, x, y: vaelab.plots.samples(run.model(), shape=(20, 20)), r"^shape=\(20, 20\): give \(height, width\)"),
    (lambda run, x, y: vaelab.plots.interpolation(run.model(), x, y, pairs=[(3, 12)]), r"no image of class 12 in y"),
    (lambda run, x, y: vaelab.plots.curves(5), r"^run must be a Run, a run folder or a dict"),
    (lambda run, x, y: vaelab.plots.interpolation(vaelab.CVAE(net="mlp", z_dim=2), x, y),
     r"^interpolate: CVAE is conditional"),
    (lambda run, x, y: vaelab.plots.manifold(vaelab.VAE(z_dim=1), x, y), r"^the manifold figure draws a plane"),
    (lambda run, x, y: vaelab.plots.samples(run.model(), rows="3"), r"^rows must be a positive integer \(grid rows\)"),
    (lambda run, x, y: vaelab.plots.reconstructions(run.model(), x, n=0), r"^n must be a positive integer"),
    (lambda run, x, y: vaelab.plots.manifold(run.model(), x, y, span=-1), r"^span must be positive"),
    (lambda run, x, y: vaelab.plots.interpolation(run.model(), x, y, steps=1), r"^steps must be at least 2"),
    (lambda run, x, y: vaelab.plots.interpolation(run.model(), x, y, pairs=[3]), r"^pairs must be pairs of classes"),
    (lambda run, x, y: vaelab.evaluate_niwae(run, x, 10), r"got Run: pass a model such as run.model\(\)"),
    (lambda run, x, y: vaelab.plots.scatter(run.model(), x, None), r"^y must hold one class label per image of x"),
])
def test_figure_mistakes_get_one_line_errors(run, draw, message):
    x, y = run.test_data()
    with pytest.raises(vaelab.VaelabError, match=message) as e:
        draw(run, x, y)
    assert "\n" not in str(e.value)


def test_options_list_models_and_their_options():
    assert "gmvae" in str(vaelab.options())
    assert all(text.endswith(".") for _, _, text in vaelab.options())   # each model's whole summary sentence
    rows = {name: default for name, default, _ in vaelab.options("gmvae")}
    assert rows["k"] == "500" and rows["beta"] == "1.0"
    assert "<table>" in vaelab.options("vae")._repr_html_()
    with pytest.raises(vaelab.VaelabError, match="model='nope': unknown"):
        vaelab.options("nope")


@pytest.mark.parametrize("kwargs, message", [
    (dict(iters=0), r"^iters must be a positive integer, got 0$"),
    (dict(progress="no"), r"^progress must be True or False, got 'no'$"),
    (dict(resize=2000), r"^resize=2000: give a side from 4 to 256 pixels"),
    (dict(betta=3.0), r"unknown option\(s\) 'betta' \(did you mean 'beta'\?\)"),
    (dict(batch_size=100_000), r"^batch_size=100000 is larger than the training set"),
    (dict(binarize="sometimes"), r"^binarize must be one of"),
    (dict(seeds=[1, 1]), r"^seeds has repeated values"),
    (dict(z_dim=0), r"^z_dim must be a positive integer, got 0$"),
    (dict(z_dim="2"), r"^z_dim must be a positive integer, got '2'$"),
    (dict(beta="4"), r"^beta must be a positive finite number, got '4'$"),
    (dict(iters="200"), r"^iters must be a positive integer, got '200'$"),
    (dict(epochs=1), r"^give iters or epochs, not both"),
    (dict(data_dir="/no/such/folder", dataset="mnist"), r"^data_dir='/no/such/folder': no such folder"),
    (dict(data_dir="/tmp"), r"^data_dir='/tmp' is given but mnist-5k reads no files .* pass dataset='mnist'"),
    (dict(hidden=[300, 0]), r"hidden sizes '300,0': every size must be positive"),
    (dict(device="gpu"), r"^device must be 'auto', 'cpu' or 'cuda', got 'gpu'$"),
])
def test_errors_name_the_python_argument(kwargs, message, tmp_path):
    with pytest.raises(vaelab.VaelabError, match=message) as e:
        vaelab.train("vae", out=tmp_path / "r", **{**QUICK, **kwargs})
    assert "--" not in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "r").exists()   # refused before the folder is made


def test_one_message_reads_as_python_and_as_the_command_line():
    """An option named with errors.arg reads as the Python argument from Python and as its flag on the
    command line, through the CLI's one map (cli_args.flag)."""
    from vaelab.cli_args import flag
    from vaelab.errors import arg

    e = vaelab.VaelabError(f"{arg('cuda_graph')} needs {arg('device', 'cuda')}; {arg('clip', 0)}, "
                           f"{arg('train_classes')}, {arg('progress', False)}")
    assert str(e) == "cuda_graph needs device='cuda'; clip=0, train_classes, progress=False"
    assert e.for_cli(flag) == "--cuda-graph needs --device cuda; --clip 0, --classes, --no-progress"


def test_python_conveniences_and_refusals(run, tmp_path):
    """One value for a list of one (iwae_k, train_classes, as seeds; hidden sizes as ints); threads= holds
    for the call only; a label given to a model that takes none, and a path that is not one, are refused."""
    threads = torch.get_num_threads()
    one = vaelab.train("vae", out=tmp_path / "one", z_dim=np.int64(2), hidden=[16], threads=1, train_classes=3,
                       **{**QUICK, "iwae_k": 10})
    assert one.config.iwae_k == [10] and one.config.train_classes == [3] and "niwae_10" in one.summary()
    assert one.config.model_options == {"z_dim": 2, "hidden": "16"}   # as the command line would save them
    assert type(one.config.model_options["z_dim"]) is int and torch.get_num_threads() == threads
    same = vaelab.train("vae", out=tmp_path / "one", z_dim=2, hidden=16, train_classes=3, resume=True,
                        **{**QUICK, "iwae_k": 10})   # the cell again, sizes given another way
    assert same.path == one.path
    with pytest.raises(vaelab.VaelabError, match="^z_dim must be a positive integer"):
        vaelab.train("vae", out=tmp_path / "one", z_dim="2", overwrite=True, **QUICK)
    assert (tmp_path / "one" / "metrics.json").exists()   # a refused overwrite leaves the old run in place
    with pytest.raises(vaelab.VaelabError, match="^VAE is not conditional .*: leave y out$"):
        run.model().sample(3, y=2)
    x, _ = run.test_data()
    with pytest.raises(vaelab.VaelabError, match=r"values from 0 to 255; scale images first \(e.g. x / 255\)"):
        run.model().encode((x[:2] * 255).to(torch.uint8))
    with pytest.raises(vaelab.VaelabError, match="^out must be a folder path .*, got int$"):
        vaelab.train("vae", out=5, **QUICK)
    with pytest.raises(vaelab.VaelabError, match="^path must be a run folder .*, got NoneType$"):
        vaelab.load_run(None)
    with pytest.raises(vaelab.VaelabError, match="nowhere: no such folder"):
        vaelab.load_run(tmp_path / "nowhere")
    with pytest.raises(vaelab.VaelabError, match=r"config.json: a file; pass the run folder itself \("):
        vaelab.load_run(run.path / "config.json")
    with pytest.raises(vaelab.VaelabError, match=r"^seed='0': give one of the run's seeds as an int"):
        run.model(seed="0")
    with pytest.raises(ValueError, match="^z_dim = 0: "):
        vaelab.VAE(z_dim=0)
    with pytest.raises(vaelab.VaelabError, match=r"do not fit the model given \(model=...\): .*z_dim: run 4, given 5"):
        vaelab.load_run(run.path, model=vaelab.VAE(z_dim=5, hidden="32")).model()


def test_rerunning_a_cell_needs_overwrite_or_resume(run, tmp_path):
    out = tmp_path / "again"
    first = vaelab.train("vae", out=out, z_dim=2, hidden="16", **QUICK)
    with pytest.raises(vaelab.VaelabError, match="overwrite=True to replace it, resume=True to continue it"):
        vaelab.train("vae", out=out, z_dim=2, hidden="16", **QUICK)
    same = vaelab.train("vae", out=out, z_dim=2, hidden="16", resume=True, **QUICK)   # the same cell, again
    assert same.path == first.path and same.summary()["nelbo"]["mean"] == first.summary()["nelbo"]["mean"]
    with pytest.raises(vaelab.VaelabError, match=r"lr differs from it \(saved: lr=0.001\)"):
        vaelab.train(out=out, resume=True, lr=0.1)
    with pytest.raises(vaelab.VaelabError, match=r"z_dim differs from it \(saved: z_dim=2\)"):
        vaelab.train(out=out, resume=True, z_dim=3)
    with pytest.raises(vaelab.VaelabError, match="model differs"):
        vaelab.train("gmvae", out=out, resume=True)
    second = vaelab.train("vae", out=out, z_dim=2, hidden="16", overwrite=True, **QUICK)
    assert second.summary()["nelbo"]["mean"] == pytest.approx(first.summary()["nelbo"]["mean"])   # same seed
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(vaelab.VaelabError):   # overwrite never deletes a folder that is not a vaelab run
        vaelab.train("vae", out=mine, overwrite=True, **{**QUICK, "iters": 0})
    assert (mine / "notes.txt").read_text() == "mine"


class Encoder(nn.Module):
    def __init__(self, z_dim=3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 2 * z_dim))

    def forward(self, x):
        return self.net(x)


class PairEncoder(Encoder):   # returns (mean, variance) itself
    def forward(self, x):
        h = self.net(x)
        return h[:, :3], nn.functional.softplus(h[:, 3:]) + 1e-6


class RawVarianceEncoder(Encoder):   # a mistake: the variance as a linear layer's output, of either sign
    def forward(self, x):
        h = self.net(x)
        return h[:, :3], h[:, 3:] - 10


class InfiniteVarianceEncoder(Encoder):   # a mistake: exp of a large pre-activation
    def forward(self, x):
        h = self.net(x)
        return h[:, :3], torch.full_like(h[:, 3:], float("inf"))


class Decoder(nn.Module):
    def __init__(self, z_dim=3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, 32), nn.ReLU(), nn.Linear(32, 784))

    def forward(self, z):
        return self.net(z).view(-1, 1, 28, 28)   # image-shaped output: x_dim values per row is enough


def test_user_networks_train_evaluate_and_load_again(tmp_path):
    for enc in (Encoder(), PairEncoder()):
        vae = vaelab.VAE(encoder=enc, decoder=Decoder(), z_dim=3)
        run = vaelab.train(vae, out=tmp_path / type(enc).__name__, **QUICK)
        assert run.config.model == "vae" and run.config.model_options["encoder"].endswith(f":{type(enc).__name__}")
        assert run.summary()["niwae_10"]["mean"] > 0
        loaded = vaelab.load_run(run.path).model()   # rebuilt from the classes' import paths
        assert isinstance(loaded.enc.net, type(enc)) and loaded.sample(2).shape == (2, 784)


def test_mixture_prior_models_take_user_networks(tmp_path):
    """GMVAE and VampVAE take networks of your own as VAE does (the VampPrior maps its pseudo-inputs with
    the user's encoder); the run records the networks, not the built-in ones' unused sizes."""
    for cls in (vaelab.GMVAE, vaelab.VampVAE):
        model = cls(encoder=Encoder(), decoder=Decoder(), z_dim=3, k=5)
        run = vaelab.train(model, out=tmp_path / cls.__name__, **QUICK)
        saved = run.config.model_options
        assert saved["encoder"].endswith(":Encoder") and saved["k"] == 5 and "hidden" not in saved
        loaded = vaelab.load_run(run.path).model()
        assert isinstance(loaded.enc.net, Encoder) and loaded.sample(2).shape == (2, 784)
    with pytest.raises(TypeError, match=r"^HVAE\(\): got an unexpected keyword argument 'encoder'"):
        vaelab.HVAE(encoder=Encoder(), decoder=Decoder())
    with pytest.raises(vaelab.VaelabError, match=r"networks of your own go to the model class: vaelab.train\("):
        vaelab.train("vae", encoder=Encoder(), decoder=Decoder(), **QUICK)


def test_user_networks_with_wrong_shapes_are_refused_at_construction():
    with pytest.raises(ValueError, match=r"encoder returned \(2, 6\); expected \(batch, 2 \* z_dim\) = \(2, 8\)"):
        vaelab.VAE(encoder=Encoder(), decoder=Decoder(4), z_dim=4)
    with pytest.raises(ValueError, match=r"decoder failed on codes of shape \(2, 3\)"):
        vaelab.VAE(encoder=Encoder(), decoder=Decoder(5), z_dim=3)
    with pytest.raises(ValueError, match="give both encoder and decoder"):
        vaelab.VAE(encoder=Encoder(), z_dim=3)
    with pytest.raises(ValueError, match=r"^encoder returned a variance <= 0 or not finite .*: return \(mean, "
                                         r"variance\) with 0 < variance < inf"):
        vaelab.VAE(encoder=RawVarianceEncoder(), decoder=Decoder(), z_dim=3)
    with pytest.raises(ValueError, match=r"^encoder returned a variance <= 0 or not finite \(from .* to inf\)"):
        vaelab.VAE(encoder=InfiniteVarianceEncoder(), decoder=Decoder(), z_dim=3)
    with pytest.raises(ValueError, match=r"and the one-hot label \(2, 10\) \(a conditional model calls net\(x, y\)\)"):
        vaelab.CVAE(encoder=Encoder(), decoder=Decoder(), z_dim=3)   # networks that take x alone
    with pytest.raises(vaelab.VaelabError, match="x_dim = 784 values per example, but swiss-roll has 2"):
        vaelab.train(vaelab.VAE(encoder=Encoder(), decoder=Decoder(), z_dim=3), dataset="swiss-roll",
                     **{**QUICK, "out": None})


NETS = textwrap.dedent('''
    from torch import nn

    class Enc(nn.Module):
        def __init__(self, hidden=24):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(784, hidden), nn.Tanh(), nn.Linear(hidden, 4))

        def forward(self, x):
            return self.net(x)

    class Dec(nn.Module):
        def __init__(self, hidden=24):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 784))

        def forward(self, z):
            return self.net(z)
''')


def _python(code: str, cwd: Path, path: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (path, os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_run_on_user_networks_loads_in_a_fresh_process(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mynets.py").write_text(NETS)
    train = _python('''
        import vaelab
        from mynets import Dec, Enc
        vaelab.train(vaelab.VAE(encoder=Enc(), decoder=Dec(), z_dim=2), out="r", iters=30, iwae_k=[1],
                     eval_repeats=1, progress=False, val_size=100)
    ''', tmp_path, str(tmp_path / "pkg"))
    assert train.returncode == 0, train.stderr
    load = _python('''
        import vaelab
        print(vaelab.load_run("r").model().sample(3).shape)
    ''', tmp_path, str(tmp_path / "pkg"))
    assert load.returncode == 0 and "torch.Size([3, 784])" in load.stdout, load.stderr
    lost = _python('''
        import vaelab
        try:
            vaelab.load_run("r").model()
        except vaelab.VaelabError as e:
            print("ERROR", e)
    ''', tmp_path)   # the module is not importable here
    assert "ERROR encoder 'mynets:Enc' cannot be imported here" in lost.stdout and "load_run(path, model=...)" in lost.stdout
    given = _python('''
        import sys, vaelab
        sys.path.insert(0, "pkg")
        from mynets import Dec, Enc
        print(vaelab.load_run("r", model=vaelab.VAE(encoder=Enc(), decoder=Dec(), z_dim=2)).model().z_dim)
    ''', tmp_path)
    assert given.stdout.strip() == "2", given.stderr


def test_importing_vaelab_leaves_the_matplotlib_backend_alone(tmp_path):
    out = subprocess.run([sys.executable, "-c", "import matplotlib, vaelab; print(matplotlib.get_backend())"],
                         env={**os.environ, "MPLBACKEND": "svg"}, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "svg" and "Warning" not in out.stderr, out.stderr


def test_progress_bars_in_a_notebook_without_ipywidgets(monkeypatch):
    import types

    import importlib.util
    from tqdm.std import tqdm as text_bar

    from vaelab import progress

    class ZMQInteractiveShell:
        pass

    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=ZMQInteractiveShell))
    assert progress.in_notebook()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ipywidgets" else real(name, *a))
    bar = progress.progress_bar(total=3, file=io.StringIO())
    assert type(bar) is text_bar and bar.mininterval >= 5.0
    bar.close()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not progress.in_notebook()


def test_model_contract_is_declared_not_probed():
    from vaelab.models import MODELS

    for name, (cls, _) in MODELS.items():
        assert getattr(vaelab, cls.__name__) is cls   # every registered model class is public
        model = vaelab.build_model(name, 784)
        assert isinstance(model, vaelab.Model)
        assert model.registry_name() == name
        assert model.conditional == (name in ("cvae", "ssvae", "m1m2")) and model.classifies == (name in ("ssvae", "m1m2"))
        assert model.has_iwae == (name in ("vae", "gmvae", "vamp", "hvae", "cvae")) and model.deterministic == (not model.has_likelihood)
        assert (model.n_classes == 10) == model.conditional


@pytest.mark.parametrize("name", ["vae", "gmvae", "vamp", "hvae", "ssvae", "m1m2", "cvae", "ae", "sae", "cae", "dae"])
def test_every_model_gives_the_terms_it_names_and_only_the_vae_family_an_elbo(name):
    """terms() returns what TERMS names, per example; the VAE family's terms are its negative_elbo_bound and
    its elbo is -NELBO; autoencoders write terms alone (no negative_elbo_bound) and refuse elbo."""
    torch.manual_seed(0)
    model = vaelab.build_model(name, 784).eval()
    x, y = torch.rand(4, 784).bernoulli(), torch.arange(4)
    y = y if model.conditional else None
    terms = model.terms(x, y, reduce=False)
    assert len(terms) == len(model.TERMS) and all(t.shape == (4,) for t in terms)
    variational = isinstance(model, vaelab.VariationalModel)
    autoencoder = name in ("ae", "sae", "cae", "dae")
    assert variational == model.has_likelihood == hasattr(model, "negative_elbo_bound") == (not autoencoder)
    if not variational:
        with pytest.raises(vaelab.VaelabError, match=r"has no likelihood, so no ELBO; terms\(x\) gives its test terms "
                                                     r"loss, rec, penalty, mse$"):
            model.elbo(x)
        return
    torch.manual_seed(1)
    bound = model.negative_elbo_bound(x, y, reduce=False)
    for again in (lambda: model.terms(x, y, reduce=False), lambda: (-model.elbo(x, y),)):
        torch.manual_seed(1)
        assert all(torch.equal(a, b) for a, b in zip(again(), bound))


def test_training_defaults_and_report_policy_are_declared_apart_from_the_maths():
    """Each model declares its training defaults (TRAINING) and report policy (REPORT) as one frozen value each;
    the old class attributes are gone."""
    import dataclasses

    assert vaelab.AE.TRAINING == vaelab.TrainingDefaults(iters=10_000, optimizer="adamw", binarize="none")
    assert vaelab.VAE.TRAINING.iters == 20_000 and vaelab.SSVAE.TRAINING.iters == 30_000
    assert vaelab.M1M2.TRAINING == vaelab.TrainingDefaults(iters=40_000)
    assert [vaelab.CVAE.TRAINING.binarize_for({"likelihood": lik}) for lik in ("bernoulli", "logistic")] == ["dynamic", "none"]
    assert vaelab.HVAE.REPORT == vaelab.ReportPolicy() == vaelab.ReportPolicy(("nelbo", "kl", "rec"), (), "NELBO")
    assert vaelab.SparseAE.REPORT.figures == ("reconstruction", "codes") and vaelab.ContractiveAE.REPORT == vaelab.AE.REPORT
    assert vaelab.DenoisingAE.REPORT.curves == ("loss", "rec", "penalty") and vaelab.DenoisingAE.REPORT.figures == ("denoising",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        vaelab.AE.TRAINING.iters = 1
    old = ("ELBO_TERMS", "CURVE_TERMS", "DEFAULT_ITERS", "DEFAULT_OPTIMIZER", "DEFAULT_BINARIZE", "FIGURES",
           "ANOMALY_SCORE", "default_binarize")
    assert not [n for n in old for cls in (vaelab.Model, vaelab.VAE, vaelab.DenoisingAE) if hasattr(cls, n)]


def test_model_options_as_one_dict_or_one_by_one():
    """train(model_options={...}) is the same as the options given one by one; an option given both ways,
    or model_options that is not a dict, is refused."""
    as_dict, _ = build_config("vae", "mnist-5k", [0], None, {"model_options": {"z_dim": 3}, "iters": 5})
    one_by_one, _ = build_config("vae", "mnist-5k", [0], None, {"z_dim": 3, "iters": 5})
    assert as_dict == one_by_one and as_dict.model_options == {"z_dim": 3}
    with pytest.raises(vaelab.VaelabError, match="^z_dim given both in model_options and as an argument"):
        build_config("vae", "mnist-5k", [0], None, {"model_options": {"z_dim": 3}, "z_dim": 4})
    with pytest.raises(vaelab.VaelabError, match="^model_options holds training option.s. iters: give them as arg"):
        build_config("vae", "mnist-5k", [0], None, {"model_options": {"iters": 3}})
    with pytest.raises(vaelab.VaelabError, match=r"^unknown option\(s\) 'iw_k' \(an option of vae, gmvae, vamp, hvae, cvae\)"):
        build_config("ssvae", "mnist-5k", [0], None, {"iw_k": 5})
    with pytest.raises(vaelab.VaelabError, match="^model_options must be a dict"):
        build_config("vae", "mnist-5k", [0], None, {"model_options": "z_dim=3"})


@pytest.mark.parametrize("name", list(vaelab.MODELS))
def test_every_option_default_is_the_constructors_default(name):
    """A model's defaults are written twice, in its options dataclass (vaelab.options, the CLI flags, the
    validation) and in its constructor; the class that first names an option in its __init__ (a subclass
    may pass the rest on as **options) must give it the declared default."""
    import inspect

    from vaelab.models import declared_options

    cls = vaelab.MODELS[name][0]
    for option, default in ((o.name, o.default) for o in declared_options(name).values()):
        owner = next((c for c in cls.__mro__ if "__init__" in c.__dict__
                      and option in inspect.signature(inspect.unwrap(c.__init__)).parameters), None)
        assert owner is not None, f"{name}: option {option} is taken by no constructor"
        given = inspect.signature(inspect.unwrap(owner.__init__)).parameters[option].default
        assert given == default, f"{name}.{option}: declared {default!r}, {owner.__name__}.__init__ {given!r}"


class NaNInEvalDecoder(Decoder):   # a bug users meet: an eval-mode branch that divides by zero
    def forward(self, z):
        out = super().forward(z)
        return out if self.training else out * float("nan")


def test_nan_is_refused_as_input_and_never_reported_as_a_result(run, tmp_path):
    """NaN inputs are refused by every verb and evaluator; a model that gives NaN only in evaluation mode
    stops the run with the metric named, instead of finishing "complete" with NaN in metrics.json."""
    x, _ = run.test_data()
    x = x[:4].clone()
    x[2, 5] = float("nan")
    model = run.model()
    for call in (lambda: model.encode(x), lambda: model.elbo(x), lambda: model.iwae(x, k=2),
                 lambda: vaelab.evaluate_terms(model, x), lambda: vaelab.evaluate_niwae(model, x, 2, progress=False)):
        with pytest.raises(vaelab.VaelabError, match=r"^x holds NaN or infinite values \(1 example\(s\), the first "
                                                     r"at row 2\); drop or repair them first$"):
            call()
    broken = vaelab.VAE(encoder=Encoder(), decoder=NaNInEvalDecoder(), z_dim=3)
    with pytest.raises(vaelab.VaelabError, match=r"^seed 0: the test metrics nelbo = nan.* are not numbers: the model "
                                                 r"gives non-finite values in evaluation mode"):
        vaelab.train(broken, out=tmp_path / "nan", **{**QUICK, "val_size": 0})
    assert not (tmp_path / "nan" / "metrics.json").exists()


def test_anomaly_scores_and_auc_from_python_and_in_a_one_class_summary(tmp_path):
    """The score and its AUC are Python functions (they were CLI-only), the scores carry no gradients, and a
    one-class run's summary holds the AUC that the scores give."""
    assert vaelab.roc_auc(torch.tensor([1.0, 2, 3, 4]), [0, 0, 1, 1]) == 1.0
    assert vaelab.roc_auc(torch.tensor([4.0, 3, 2, 1]), [0, 0, 1, 1]) == 0.0
    assert vaelab.roc_auc(torch.ones(4), [0, 1, 0, 1]) == 0.5   # ties count one half
    with pytest.raises(vaelab.VaelabError, match="some examples anomalous and some normal"):
        vaelab.roc_auc(torch.ones(3), [0, 0, 0])
    run = vaelab.train("ae", out=tmp_path / "one", train_classes=[1], z_dim=4, hidden="32", **{**QUICK, "iwae_k": []})
    x, y = run.test_data()
    scores = vaelab.anomaly_scores(run.model(), x)
    assert scores.shape == (len(x),) and not scores.requires_grad
    assert run.summary()["auc"]["mean"] == pytest.approx(vaelab.roc_auc(scores, y != 1))
    assert run.summary()["auc"]["mean"] > 0.6   # digit 1 is easy to tell from the others, even after 60 steps
