"""Conv nets for images of any shape (C, H, W), and the models that take image_shape."""
import json
import math

import pytest
import torch

from vaelab.errors import VaelabError
from vaelab.models import MODELS, build_model, declared_options, load_model, takes_data_option
from vaelab.models.vae import VAE
from vaelab.nets import MAX_CONV_LINEAR_WEIGHTS, ConvDecoder, ConvEncoder

SHAPES = [(1, 28, 28), (1, 32, 32), (3, 12, 9), (3, 64, 64), (4, 7, 5), (1, 4, 4)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("y_dim", [0, 3])
def test_conv_nets_map_any_image_shape_to_latents_and_back(shape, y_dim):
    x_dim = math.prod(shape)
    enc = ConvEncoder(x_dim, 5, y_dim=y_dim, image_shape=shape)
    dec = ConvDecoder(5, x_dim, y_dim=y_dim, image_shape=shape)
    y = torch.eye(3)[[0, 1, 2, 0]] if y_dim else None
    m, v = enc(torch.rand(4, x_dim), y)
    assert m.shape == v.shape == (4, 5) and (v > 0).all()
    assert enc.conv[0].in_channels == shape[0] + y_dim and dec.deconv[-1].out_channels == shape[0]
    # The transposed convolutions restore the image exactly: C x H x W values, before the final reshape too.
    h = dec.inp(m if y is None else torch.cat([m, y], -1)).reshape(-1, dec.c3, *dec.start)
    assert dec.deconv(h).shape == (4, *shape)
    assert dec(m, y).shape == (4, x_dim)
    assert dec(torch.randn(2, 4, 5), None if y is None else y.expand(2, 4, 3)).shape == (2, 4, x_dim)   # samples first


@pytest.mark.parametrize("side", [28, 32])
@pytest.mark.parametrize("model", ["vae", "cvae"])
def test_image_shape_of_todays_images_builds_the_same_model_weight_for_weight(side, model):
    """(1, 28, 28) and (1, 32, 32) are what None meant: same modules, names, shapes, initialisation order."""
    options = {"net": "conv", "z_dim": 4}
    torch.manual_seed(7)
    before = build_model(model, side * side, **options)
    torch.manual_seed(7)
    now = build_model(model, side * side, image_shape=(1, side, side), **options)
    a, b = before.state_dict(), now.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert repr(before) == repr(now)
    x, y = torch.rand(3, side * side), (torch.tensor([0, 5, 9]) if model == "cvae" else None)
    assert all(torch.equal(p, q) for p, q in zip(before.enc(x, before.onehot(y)), now.enc(x, now.onehot(y))))
    z = torch.randn(3, 4)
    assert torch.equal(before.dec(z, before.onehot(y)), now.dec(z, now.onehot(y)))
    torch.manual_seed(1)
    first = before.negative_elbo_bound(x, y)
    torch.manual_seed(1)
    assert all(torch.equal(p, q) for p, q in zip(first, now.negative_elbo_bound(x, y)))


def test_image_shape_errors_name_what_is_wrong():
    with pytest.raises(ValueError, match=r"3 x 12 x 9 = 324 values, but x_dim is 100"):
        ConvEncoder(100, 4, image_shape=(3, 12, 9))
    with pytest.raises(VaelabError, match=r"324 values, but x_dim is 325"):
        build_model("vae", 325, net="conv", image_shape=(3, 12, 9))
    with pytest.raises(VaelabError, match=r"324 values, but x_dim is 325"):   # the MLP nets check it too
        build_model("vae", 325, image_shape=(3, 12, 9))
    with pytest.raises(ValueError, match=r"at least 4x4 pixels .* got 3x8"):
        ConvDecoder(4, 24, image_shape=(1, 3, 8))
    with pytest.raises(ValueError, match=r"at least 4x4 pixels .* got 28x3; .*channels first"):   # (H, W, C) given
        ConvEncoder(28 * 28 * 3, 4, image_shape=(28, 28, 3))
    for bad in [(28, 28), (1, 28, 28, 1), (1, 0, 784), "1,28,28", (1.0, 28, 28), (True, 28, 28)]:
        with pytest.raises(ValueError, match="three positive whole numbers"):
            ConvEncoder(784, 4, image_shape=bad)
    with pytest.raises(VaelabError, match="28x28 or 32x32.*pass image_shape"):   # None: today's two sizes only
        build_model("vae", 3 * 12 * 9, net="conv")


def test_conv_nets_refuse_a_linear_layer_too_large_before_allocating_it():
    shape = (3, 2048, 2048)   # 256 x 256 x 64 after the convolutions: a billion weights at z_dim 128
    with pytest.raises(ValueError, match=r"1,073,741,824 weights .*50,000,000 allowed: resize the images"):
        ConvEncoder(math.prod(shape), 128, image_shape=shape)
    with pytest.raises(VaelabError, match=r"resize the images \(to about 440x440 pixels or fewer\)"):
        build_model("cvae", math.prod(shape), z_dim=128, image_shape=shape)
    # The suggested size fits; 96x128 is far inside the limit.
    assert 64 * 55 * 55 * 256 <= MAX_CONV_LINEAR_WEIGHTS
    ConvDecoder(128, 440 * 440, image_shape=(1, 440, 440))
    assert ConvEncoder(3 * 96 * 128, 128, image_shape=(3, 96, 128)).out.in_features == 64 * 12 * 16


def test_conv_vae_on_colour_images_of_odd_shape_trains():
    torch.manual_seed(0)
    shape = (3, 12, 9)
    model = build_model("vae", math.prod(shape), net="conv", z_dim=4, image_shape=shape)
    assert model.image_shape == shape and model.enc.image_shape == model.dec.image_shape == shape
    x = torch.rand(16, math.prod(shape))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        loss, _ = model.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert model.sample(3).shape == model.reconstruct(x[:3]).shape == (3, math.prod(shape))


def test_mlp_vae_needs_only_x_dim_whatever_the_image_shape():
    torch.manual_seed(0)
    model = build_model("vae", 3 * 12 * 9, z_dim=3, hidden="32")
    x = torch.rand(16, 3 * 12 * 9)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(5):
        loss, _ = model.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert math.isfinite(loss.item())
    torch.manual_seed(0)
    shaped = build_model("vae", 3 * 12 * 9, z_dim=3, hidden="32", image_shape=[3, 12, 9])   # a list: as JSON reads
    assert shaped.image_shape == (3, 12, 9)
    torch.manual_seed(0)
    plain = build_model("vae", 3 * 12 * 9, z_dim=3, hidden="32")
    assert all(torch.equal(p, q) for p, q in zip(shaped.parameters(), plain.parameters()))


def test_image_shape_is_saved_and_the_model_rebuilt_from_options_or_checkpoint():
    shape = (3, 12, 9)
    model = build_model("cvae", math.prod(shape), z_dim=4, image_shape=shape)
    saved = json.loads(json.dumps(model.saved_options()))
    assert saved["image_shape"] == [3, 12, 9] and "image_shape" not in VAE(784).saved_options()
    again = build_model("cvae", math.prod(shape), **saved)
    assert again.image_shape == shape
    ckpt = {"x_dim": math.prod(shape), "model": model.state_dict(), "config": {"model": "cvae", "model_options": saved}}
    assert load_model(ckpt).image_shape == shape
    # A checkpoint whose options leave it out (the data's shape, like x_dim): its image_shape [H, W] and
    # channels build it.
    options = {k: v for k, v in saved.items() if k != "image_shape"}
    ckpt = {**ckpt, "image_shape": [12, 9], "channels": 3, "config": {"model": "cvae", "model_options": options}}
    loaded = load_model(ckpt)
    assert loaded.image_shape == shape
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    # Checkpoints of earlier versions record [H, W] and no channels: not passed, the model built as before.
    old = build_model("vae", 784, net="conv", z_dim=2)
    ckpt = {"x_dim": 784, "image_shape": [28, 28], "model": old.state_dict(),
            "config": {"model": "vae", "model_options": {"net": "conv", "z_dim": 2}}}
    assert load_model(ckpt).image_shape is None


def test_only_models_with_conv_nets_take_image_shape():
    takers = {name for name, (cls, _) in MODELS.items() if takes_data_option(cls, "image_shape")}
    assert takers == {"vae", "cvae"}
    assert all("image_shape" not in declared_options(name) for name in MODELS)   # not a CLI option
    with pytest.raises(VaelabError, match="has no option.*image_shape"):
        build_model("gmvae", 784, image_shape=(1, 28, 28))

    class Mine(VAE):   # a subclass of your own whose constructor does not take it
        def __init__(self, x_dim: int = 784, z_dim: int = 2):
            super().__init__(x_dim=x_dim, z_dim=z_dim, hidden="8")

    assert not takes_data_option(Mine, "image_shape")
