"""dSprites rendered in code (vaelab.data.sprites): the grid's order, the rendering against the original's
definition, the data sets and training on them.

The geometry numbers below were measured on the original's own images (the 320 frames of the published
dsprites.gif, github.com/deepmind/dsprites-dataset), which cannot be fetched here."""
import json
import math

import pytest
import torch

import vaelab
from vaelab.config import TrainConfig
from vaelab.data import load_dataset, reads_no_files
from vaelab.data.sprites import (
    COLOURS, FACTOR_NAMES, FACTORS, SHAPES, SPRITE_DATASETS, SpriteSampler, draw, factor_grid_size, factor_sizes,
    factors_to_index, index_to_factors, render, sample_indices,
)
from vaelab.errors import VaelabError

SQUARE, ELLIPSE, HEART = 0, 1, 2


def image(shape, scale=1.0, theta=0.0, x=0.5, y=0.5) -> torch.Tensor:
    return draw(shape, scale, theta, x, y)[0].reshape(64, 64)


def centre_of_mass(img: torch.Tensor) -> tuple[float, float]:
    """(x, y) in pixels, pixel (r, c) covering [c, c+1] x [r, r+1]: the coordinates of the factors' centres."""
    rows, cols = torch.meshgrid(torch.arange(64.0) + 0.5, torch.arange(64.0) + 0.5, indexing="ij")
    return float((img * cols).sum() / img.sum()), float((img * rows).sum() / img.sum())


@pytest.fixture(scope="module")
def dsprites():
    return load_dataset("dsprites")


# --------------------------------------------------------------------------- the grid


def test_the_grid_has_the_originals_factors_and_size():
    assert FACTOR_NAMES == ("colour", "shape", "scale", "orientation", "posX", "posY")
    assert factor_sizes() == (1, 3, 6, 40, 32, 32) and factor_grid_size() == 737_280
    assert factor_sizes(colour=True) == (6, 3, 6, 40, 32, 32) and factor_grid_size(colour=True) == 6 * 737_280
    assert FACTORS["scale"] == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert FACTORS["orientation"][0] == 0 and FACTORS["orientation"][-1] == pytest.approx(2 * math.pi)
    assert FACTORS["posX"][1] == pytest.approx(1 / 31) and FACTORS["posY"][-1] == 1.0


def test_index_and_factors_round_trip_in_the_originals_order():
    assert index_to_factors(1).tolist() == [0, 0, 0, 0, 0, 1]            # posY fastest
    assert index_to_factors(32).tolist() == [0, 0, 0, 0, 1, 0]           # then posX
    assert index_to_factors(1024).tolist() == [0, 0, 0, 1, 0, 0]         # orientation
    assert index_to_factors(40 * 1024).tolist() == [0, 0, 1, 0, 0, 0]    # scale
    assert index_to_factors(737_279).tolist() == [0, 2, 5, 39, 31, 31]
    assert index_to_factors(737_280, colour=True).tolist() == [1, 0, 0, 0, 0, 0]   # colour slowest
    for colour in (False, True):
        i = torch.randint(factor_grid_size(colour), (5000,), generator=torch.Generator().manual_seed(1))
        f = index_to_factors(i, colour)
        assert f.shape == (5000, 6) and torch.equal(factors_to_index(f, colour), i)
    all_factors = index_to_factors(torch.arange(737_280))
    assert torch.equal(factors_to_index(all_factors), torch.arange(737_280))
    for bad in ([[0, 3, 0, 0, 0, 0]], [[1, 0, 0, 0, 0, 0]], [[0.0] * 6], [[0] * 5]):
        with pytest.raises(VaelabError):
            factors_to_index(torch.tensor(bad))
    with pytest.raises(VaelabError):
        index_to_factors(737_280)


# --------------------------------------------------------------------------- the rendering


def test_images_are_binary_with_channels_first():
    f = index_to_factors(torch.randint(737_280, (300,), generator=torch.Generator().manual_seed(2)))
    x = render(f)
    assert x.shape == (300, 64 * 64) and x.dtype == torch.float32
    assert set(x.unique().tolist()) == {0.0, 1.0} and (x.sum(1) >= 50).all()
    f[:, 0] = torch.arange(300) % 6
    xc = render(f, colour=True)
    assert xc.shape == (300, 3 * 64 * 64) and set(xc.unique().tolist()) == {0.0, 1.0}
    with pytest.raises(VaelabError):
        render(f)   # colour indices 1..5 are not in the grey grid


def test_sizes_match_the_original_and_the_analytic_areas():
    for k, scale in enumerate(FACTORS["scale"]):   # the original's upright squares are 20 * scale pixels wide
        side = 20 * scale
        sq = image(SQUARE, scale, x=0.0, y=0.0)    # at position 0 the original's edges lie on pixel edges
        assert int(sq.sum()) == round(side) ** 2
        assert int(sq.any(0).sum()) == round(side) == int(sq.any(1).sum())
    for scale in (0.5, 0.8, 1.0):   # whole-pixel sides at the image centre: no edge through a pixel centre
        for theta in (0.0, 0.3, 1.0):
            assert float(image(SQUARE, scale, theta).sum()) == pytest.approx(400 * scale ** 2, rel=0.04)
            assert float(image(ELLIPSE, scale, theta).sum()) == pytest.approx(math.pi * 12.8 * 7.15 * scale ** 2,
                                                                               rel=0.04)
    # bounding boxes (rows, columns) of the original's ellipse and heart at position 0, orientation 0
    for shape, scale, height, width in ((ELLIPSE, 1.0, 14, 26), (ELLIPSE, 0.5, 8, 12), (HEART, 1.0, 17, 20),
                                        (HEART, 0.5, 9, 10)):
        img = image(shape, scale, x=0.0, y=0.0)
        assert (int(img.any(1).sum()), int(img.any(0).sum())) == (height, width), SHAPES[shape]
    # the original's heart at scale 1: these areas, its top row 7 and tip row 23 (index) at posY 0
    heart = image(HEART, 1.0, x=0.0, y=0.0)
    assert float(heart.sum()) == pytest.approx(222, rel=0.03)
    rows = heart.any(1).nonzero().flatten()
    assert (int(rows[0]), int(rows[-1])) == (7, 23)


@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE])
def test_the_centre_is_at_the_position_a_quarter_to_three_quarters_across(shape):
    g = torch.Generator().manual_seed(3)
    for _ in range(6):
        x, y, theta = torch.rand(3, generator=g).tolist()
        cx, cy = centre_of_mass(image(shape, 0.8, 2 * math.pi * theta, x, y))
        assert (cx, cy) == (pytest.approx(16 + 32 * x, abs=0.3), pytest.approx(16 + 32 * y, abs=0.3))
    img = render(torch.tensor([[0, shape, 5, 7, 0, 31]]))[0].reshape(64, 64)   # posX 0: left; posY 1: bottom
    assert centre_of_mass(img) == (pytest.approx(16, abs=0.3), pytest.approx(48, abs=0.3))
    corner = image(shape, 1.0, math.pi / 4, 1.0, 1.0)   # the largest shape at the far corner stays inside
    assert not corner[-1].any() and not corner[:, -1].any()


def test_rotation_is_about_the_centre():
    ellipse = image(ELLIPSE)
    assert (int(ellipse.any(1).sum()), int(ellipse.any(0).sum())) == (14, 26)   # long axis along x at 0
    turned = image(ELLIPSE, theta=math.pi / 2)
    assert int((turned != ellipse.T).sum()) <= 2   # at the image centre a quarter turn is the transpose
    for theta in (0.0, 0.4, 1.1):
        for x, y in ((0.5, 0.5), (0.1, 0.8)):
            a, b = image(SQUARE, 0.9, theta, x, y), image(SQUARE, 0.9, theta + math.pi / 2, x, y)
            assert int((a != b).sum()) <= 2
    first, last = render(torch.tensor([[0, s, 3, o, 9, 20] for s in range(3) for o in (0, 39)])).reshape(3, 2, -1).unbind(1)
    assert torch.equal(first, last)   # orientation 0 and 2 pi, both in the grid as in the original


def test_the_hearts_axis_turns_counter_clockwise_with_the_orientation():
    flat = image(HEART)
    assert torch.equal(flat, flat.flip(1))   # mirror symmetric about its vertical axis at orientation 0
    for k in range(0, 40, 3):
        theta = FACTORS["orientation"][k]
        cx, cy = centre_of_mass(render(torch.tensor([[0, 2, 5, k, 16, 16]]))[0].reshape(64, 64))
        centre = 16 + 32 * 16 / 31
        dx, up = cx - centre, centre - cy   # the lobes (centre of mass) point along (-sin, cos), y up
        assert math.hypot(dx, up) == pytest.approx(2.0, abs=0.3)
        angle = math.atan2(-dx, up) % (2 * math.pi)
        assert min(abs(angle - theta), 2 * math.pi - abs(angle - theta)) < math.radians(6), k
        assert torch.equal(image(HEART, 1.0, theta), draw(2, 1.0, theta, 0.5, 0.5)[0].reshape(64, 64))


def test_the_colour_variant_draws_the_grey_shape_in_its_colour():
    f = index_to_factors(torch.randint(737_280, (12,), generator=torch.Generator().manual_seed(4)))
    grey = render(f).reshape(12, 1, 64, 64)
    f[:, 0] = torch.arange(12) % 6
    rgb = render(f, colour=True).reshape(12, 3, 64, 64)
    colours = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]], dtype=torch.float32)
    assert torch.equal(rgb, grey * colours[f[:, 0]][:, :, None, None])
    assert len(COLOURS) == 6


# --------------------------------------------------------------------------- the data sets


def test_load_dataset_dsprites(dsprites):
    ds = dsprites
    spec = SPRITE_DATASETS["dsprites"]
    assert ds.name == "dsprites" and ds.channels == 1 and ds.image_shape == (64, 64) and not ds.continuous
    assert ds.train_x.shape == (spec.n_train, 4096) and ds.test_x.shape == (spec.n_test, 4096)
    assert ds.classes == ["square", "ellipse", "heart"] and ds.labelled
    f = ds.factors
    assert f["names"] == list(FACTOR_NAMES) and f["values"]["scale"] == list(FACTORS["scale"])
    assert f["train"].shape == (spec.n_train, 6) and f["test"].shape == (spec.n_test, 6)
    assert torch.equal(ds.train_y, f["train"][:, 1]) and torch.equal(ds.test_y, f["test"][:, 1])
    assert torch.equal(ds.test_x[:50], render(f["test"][:50]))   # rows and factors belong together
    train_i, test_i = factors_to_index(f["train"]), factors_to_index(f["test"])
    assert not torch.isin(test_i, train_i).any() and len(train_i.unique()) == spec.n_train
    assert torch.equal(test_i, sample_indices(spec)[1])   # the same fixed sample on every load
    assert torch.bincount(ds.train_y).min() > spec.n_train / 3 * 0.9
    assert reads_no_files("dsprites") and reads_no_files("dsprites-colour")
    assert {row[0] for row in vaelab.datasets()} >= {"dsprites", "dsprites-colour"}


def test_load_dataset_dsprites_colour():
    ds = load_dataset("dsprites_colour")
    spec = SPRITE_DATASETS["dsprites-colour"]
    assert ds.name == "dsprites-colour" and ds.channels == 3 and ds.image_shape == (64, 64)
    assert ds.train_x.shape == (spec.n_train, 3 * 4096) and ds.factors["train"][:, 0].max() == 5
    pixels = ds.test_x[:20].reshape(20, 3, -1).amax(2)   # each image's channels carry its colour
    colours = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]], dtype=torch.float32)
    assert torch.equal(pixels, colours[ds.factors["test"][:20, 0]])


def test_fresh_batches_differ_are_repeatable_and_avoid_the_test_sample(dsprites):
    spec = SPRITE_DATASETS["dsprites"]
    test_index = sample_indices(spec)[1]
    a, b = SpriteSampler(spec, test_index), SpriteSampler(spec, test_index)
    x1, y1 = a(64)
    x2, _ = a(64)
    assert x1.shape == (64, 4096) and y1.shape == (64,) and not torch.equal(x1, x2)
    assert torch.equal(b(64)[0], x1)   # the same seed draws the same batch
    sampler = SpriteSampler(spec, torch.arange(factor_grid_size() // 2))   # the first half held out
    sampler(500)
    assert factors_to_index(sampler.factors).min() >= factor_grid_size() // 2
    assert dsprites.sampler is not None and dsprites.sampler(8)[0].shape == (8, 4096)


def test_fresh_batches_are_allowed_for_generated_sets_only():
    TrainConfig(model="vae", dataset="dsprites", fresh_batches=True).validate()
    with pytest.raises(VaelabError, match="only the generated toy and dSprites"):
        TrainConfig(model="vae", dataset="mnist-5k", fresh_batches=True).validate()
    for extra in ({"train_classes": [0]}, {"resize": 32}):
        with pytest.raises(VaelabError, match="would not apply"):
            TrainConfig(model="vae", dataset="dsprites", fresh_batches=True, **extra).validate()


@pytest.fixture
def quick_figures(monkeypatch):
    """A judge (the sample-quality classifier, trained once per data set and cached) of 50 steps rather than
    3,000, which keeps the training tests short."""
    import vaelab.judge as judge

    train_judge = judge.train_judge
    monkeypatch.setattr(judge, "train_judge", lambda *a, **k: train_judge(*a, **{**k, "iters": 50}))


CLI_QUICK = ["--iters", "20", "--eval-every", "20", "--checkpoint-every", "20", "--iwae-k", "1", "--eval-repeats", "1",
             "--no-progress", "--z-dim", "2", "--hidden", "16", "--batch-size", "64"]


def test_a_vae_trains_on_dsprites_end_to_end(tmp_path, quick_figures):
    from vaelab.cli import main

    run = vaelab.train("vae", dataset="dsprites", iters=20, net="mlp", hidden=16, z_dim=2, progress=False,
                       out=tmp_path / "run", batch_size=64, eval_every=20, checkpoint_every=20, iwae_k=[1],
                       eval_repeats=1)
    assert math.isfinite(run.summary()["nelbo"]["mean"])
    assert (tmp_path / "run" / "recon.png").is_file() and (tmp_path / "run" / "interpolate.png").is_file()
    out = tmp_path / "fresh"
    assert main(["train", "vae", "--dataset", "dsprites", "--fresh-batches", "--out", str(out), *CLI_QUICK]) == 0
    assert json.loads((out / "config.json").read_text())["fresh_batches"] is True


def test_a_vae_trains_on_dsprites_colour(tmp_path, quick_figures):
    from vaelab.cli import main

    assert main(["train", "vae", "--dataset", "dsprites-colour", "--out", str(tmp_path / "c"), *CLI_QUICK]) == 0
    from PIL import Image

    assert Image.open(tmp_path / "c" / "samples.png").mode in ("RGB", "RGBA")   # drawn in colour
