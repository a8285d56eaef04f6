"""Convolutional networks and the conditional VAE."""
import json

import pytest

import torch
import torch.nn.functional as F
from torch import distributions as D

from vaelab.errors import VaelabError
from vaelab.models import Model, build_model
from vaelab.nets import ConvDecoder, ConvEncoder


@pytest.mark.parametrize("side", [28, 32])
def test_conv_nets_map_images_to_latents_and_back(side):
    enc, dec = ConvEncoder(side * side, 6, y_dim=10), ConvDecoder(6, side * side, y_dim=10)
    x, y = torch.rand(5, side * side), torch.eye(10)[:5]
    m, v = enc(x, y)
    assert m.shape == v.shape == (5, 6) and (v > 0).all()
    assert dec(m, y).shape == (5, side * side)
    # The label reaches the encoder: changing it changes q(z|x,y).
    assert not torch.allclose(enc(x, torch.eye(10)[5:10])[0], m)


def test_conv_channels_option_widens_both_nets():
    model = build_model("cvae", 1024, channels="32,64,128", z_dim=8)
    widths = [m.out_channels for m in model.enc.conv if isinstance(m, torch.nn.Conv2d)]
    assert widths == [32, 64, 128] and model.dec.inp[0].out_features == 128 * 16
    assert model.dec.deconv[0].in_channels == 128 and model.dec.deconv[4].in_channels == 32
    x, y = torch.rand(3, 1024), torch.tensor([0, 4, 9])
    assert model.negative_elbo_bound(x, y)[0].isfinite()
    with pytest.raises(VaelabError, match="three counts"):
        build_model("cvae", 1024, channels="32,64")
    with pytest.raises(VaelabError, match="positive"):
        build_model("cvae", 1024, channels="32,-1,64")


def test_conv_vae_needs_square_28_or_32_images():
    with pytest.raises(VaelabError, match="28x28 or 32x32"):
        build_model("vae", 100, net="conv")


def test_cvae_terms_use_the_label_and_match_torch_distributions():
    torch.manual_seed(0)
    model = build_model("cvae", 784, net="conv", z_dim=4)
    x, y = torch.bernoulli(torch.rand(6, 784)), torch.tensor([0, 1, 2, 3, 4, 9])
    torch.manual_seed(3)
    nelbo, kl, rec = model.negative_elbo_bound(x, y)
    torch.manual_seed(3)
    oh = F.one_hot(y, 10).float()
    m, v = model.enc(x, oh)
    z = m + v.sqrt() * torch.randn_like(m)
    kl_ref = D.kl_divergence(D.Independent(D.Normal(m, v.sqrt()), 1), D.Independent(D.Normal(torch.zeros(4), 1.0), 1))
    rec_ref = -D.Independent(D.Bernoulli(logits=model.dec(z, oh)), 1).log_prob(x)
    assert torch.allclose(kl, kl_ref.mean(), rtol=1e-5) and torch.allclose(rec, rec_ref.mean(), rtol=1e-5)
    with pytest.raises(VaelabError, match="pass the labels y"):
        model.negative_elbo_bound(x)


def test_cvae_samples_class_by_class():
    torch.manual_seed(0)
    model = build_model("cvae", 784, z_dim=3, hidden="32")
    with torch.no_grad():
        grid = model.sample_by_class(4)
        lw = model.log_importance_weights(torch.bernoulli(torch.rand(3, 784)), 7, torch.tensor([1, 2, 3]))
    assert grid.shape == (40, 784) and ((grid >= 0) & (grid <= 1)).all()
    assert lw.shape == (7, 3) and torch.isfinite(lw).all()


def test_judge_scores_conditional_and_unconditional_samples():
    from vaelab.judge import sample_quality, train_judge
    torch.manual_seed(0)
    # Two easy "classes": dark and bright images. The judge learns them; a model whose samples are
    # always bright gets coverage 0 and, asked for dark images, class accuracy 0.
    x = torch.cat([torch.rand(200, 16) * 0.2, 0.8 + torch.rand(200, 16) * 0.2])
    y = torch.cat([torch.zeros(200), torch.ones(200)]).long()
    judge, acc = train_judge(x, y, x, y, n_classes=2, iters=200)
    assert acc == 1.0

    class Bright(Model):   # the model contract: a decoder and a prior are enough to sample
        z_dim = 1

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def mean_x_given_z(self, z, y=None):
            return torch.full((len(z), 16), 0.95)

    q = sample_quality(Bright(), judge, n_classes=2, per_class=10)
    assert q["sample_class_coverage"] == 0.0 and q["sample_confidence"] > 0.9

    class Obedient(Bright):
        conditional, n_classes = True, 2

        def mean_x_given_z(self, z, y=None):
            return y.float().unsqueeze(1).expand(-1, 16) * 0.9 + 0.05

    assert sample_quality(Obedient(), judge, n_classes=2, per_class=10)["sample_class_accuracy"] == 1.0

    class Stubborn(Obedient):   # always draws class 1, whatever is asked
        def mean_x_given_z(self, z, y=None):
            return torch.full((len(y), 16), 0.9)

    q = sample_quality(Stubborn(), judge, n_classes=2, per_class=10)
    assert q["sample_class_accuracy"] == 0.5 and q["sample_class_accuracy_by_class"] == [0.0, 1.0]


def test_resize_images_keeps_range_and_mass():
    from vaelab.data import resize_images
    x = torch.rand(3, 784)
    y = resize_images(x, (28, 28), 32)
    assert y.shape == (3, 1024) and y.min() >= 0 and y.max() <= 1
    assert torch.allclose(y.mean(1), x.mean(1), atol=0.02)
    assert resize_images(x, (28, 28), 28) is x


def test_cvae_at_32x32_then_sample_one_class(tmp_path):
    import matplotlib.image as mpimg

    from vaelab.cli import main
    out = tmp_path / "cvae32"
    assert main(["train", "cvae", "--net", "conv", "--resize", "32", "--out", str(out), "--iters", "20",
                 "--iwae-k", "2", "--eval-repeats", "1", "--no-progress", "--threads", "1"]) == 0
    first = json.loads((out / "metrics.json").read_text())["per_seed"]["0"]
    assert list(first["judge_test_accuracy_by_class"]) == [str(d) for d in range(10)]   # the digits' names
    assert len(first["sample_class_accuracy_by_class"]) == len(first["judge_test_accuracy_by_class"]) == 10
    report = (out / "report.md").read_text()
    assert "## Samples judged class by class" in report and ", images resized to 32x32," in report
    assert "## Test-set metrics (nats per image)" in report
    png = tmp_path / "three.png"
    assert main(["sample", str(out), "--class", "3", "--rows", "2", "--cols", "3", "--out", str(png)]) == 0
    assert mpimg.imread(png).shape[:2] == (2 * (2 * 34 + 2), 2 * (3 * 34 + 2))
    assert main(["sample", str(out), "--class", "10"]) == 2


def test_a_judge_cache_with_nan_weights_is_retrained(tmp_path, monkeypatch):
    """A damaged cache entry (NaN weights) would judge every sample alike and report NaN scores as fine."""
    from safetensors.torch import save_file

    from vaelab import judge as judge_module
    monkeypatch.setattr(judge_module, "user_cache_dir", lambda: tmp_path)
    torch.manual_seed(0)
    x = torch.cat([torch.rand(100, 16) * 0.2, 0.8 + torch.rand(100, 16) * 0.2])
    y = torch.cat([torch.zeros(100), torch.ones(100)]).long()
    first, accuracy = judge_module.load_or_train_judge("toy", (x, y, x, y), n_classes=2)
    weights, _ = judge_module._paths("toy")
    save_file({k: torch.full_like(v, float("nan")) for k, v in first.state_dict().items()}, str(weights))
    again, accuracy_again = judge_module.load_or_train_judge("toy", (x, y, x, y), n_classes=2)
    assert all(torch.isfinite(v).all() for v in again.state_dict().values()) and accuracy_again == accuracy == 1.0
