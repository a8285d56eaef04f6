"""A user's own data as a Dataset: every form user_dataset accepts, and each mistake as one line."""
import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from vaelab.data import Dataset, fingerprint, resize_images, split_validation, user_dataset
from vaelab.errors import VaelabError

RNG = np.random.default_rng(0)


def refused(call, *words):
    """The call raises a one-line VaelabError holding every one of `words`."""
    with pytest.raises(VaelabError) as e:
        call()
    message = str(e.value)
    assert "\n" not in message, message
    for w in words:
        assert w in message, f"{w!r} not in: {message}"
    return message


def load(data, **kw):
    return user_dataset(data, progress=False, **kw)


def indexed(n=40, h=5, w=6):
    """uint8 grey images whose every pixel is the row's index: a loaded row says which one it was."""
    return np.repeat(np.arange(n, dtype=np.uint8), h * w).reshape(n, h, w)


def rows_of(x: torch.Tensor) -> list[int]:
    return torch.round(x[:, 0] * 255).long().tolist()


# -- arrays and tensors -----------------------------------------------------------------------------
def test_grey_uint8_images_split_by_seed_without_labels():
    ds = load(indexed(40))
    assert isinstance(ds, Dataset) and ds.name == "array" and ds.channels == 1 and ds.image_shape == (5, 6)
    assert ds.train_x.shape == (32, 30) and ds.test_x.shape == (8, 30) and ds.train_x.dtype == torch.float32
    assert ds.classes == [] and not ds.labelled and not ds.continuous
    assert ds.train_y.tolist() == [0] * 32 and ds.test_y.dtype == torch.int64
    train, test = rows_of(ds.train_x), rows_of(ds.test_x)
    assert sorted(train + test) == list(range(40)) and train == sorted(train) and test == sorted(test)
    rows = torch.arange(40)   # the same choice as split_validation's, seed for seed
    assert test == split_validation(rows, rows, 8, seed=0)[2].tolist()
    assert rows_of(load(indexed(40), split_seed=0).test_x) == test
    assert rows_of(load(indexed(40), split_seed=1).test_x) != test
    assert ds.origin == {"kind": "array", "path": None, "shape": [40, 5, 6], "dtype": "uint8",
                         "sha256": fingerprint(indexed(40)), "split_seed": 0, "test_size": 0.2, "test_shape": None,
                         "n_train": 32, "n_test": 8, "resize": None}


def test_test_size_as_fraction_or_count_and_at_least_one():
    assert len(load(indexed(40), test_size=5).test_x) == 5
    assert len(load(indexed(40), test_size=0.5).test_x) == 20
    assert len(load(indexed(3)).test_x) == 1 and len(load(indexed(40)[[0, 39]]).train_x) == 1


def test_channels_first_and_last_give_the_same_images():
    x = RNG.random((10, 3, 7, 5), dtype=np.float32)
    first = load(torch.from_numpy(x))
    last = load(x.transpose(0, 2, 3, 1))
    assert first.channels == last.channels == 3 and first.image_shape == last.image_shape == (7, 5)
    assert torch.equal(first.train_x, last.train_x) and torch.equal(first.test_x, last.test_x)
    rows = torch.arange(10)
    train_rows = split_validation(rows, rows, 2, seed=0)[0].numpy()
    assert torch.equal(first.train_x, torch.from_numpy(x[train_rows].reshape(8, -1)))
    one = load(x[:, :1])   # (N, 1, H, W): grey
    assert one.channels == 1 and one.train_x.shape == (8, 35)
    four = load(RNG.integers(0, 256, (6, 4, 4, 4), dtype=np.uint8))   # a tie: channels first
    assert four.channels == 4 and four.image_shape == (4, 4)


def test_uint8_other_integers_and_bool_scale_to_unit_interval():
    x = RNG.integers(0, 256, (12, 4, 4), dtype=np.uint8)
    as_uint8, as_int = load(x), load(x.astype(np.int64))
    assert torch.equal(as_uint8.train_x, as_int.train_x)
    rows = torch.arange(12)
    train_rows = split_validation(rows, rows, 2, seed=0)[0].numpy()
    assert torch.equal(as_uint8.train_x, torch.from_numpy(x[train_rows].reshape(10, -1) / np.float32(255)))
    b = load(torch.from_numpy(x > 128))
    assert set(b.train_x.unique().tolist()) <= {0.0, 1.0} and b.train_x.max() == 1.0


def test_vectors_are_continuous_and_any_finite_floats():
    v = RNG.normal(size=(30, 5)) * 100
    ds = load(v)
    assert ds.image_shape is None and ds.continuous and ds.train_x.shape == (24, 5)
    assert ds.train_x.min() < 0 and ds.origin["dtype"] == "float64"


def test_labels_kept_when_0_to_k_minus_1_else_mapped_and_split_with_their_rows():
    x, y = indexed(40), np.arange(40) % 4
    for ds in (load((x, y)), load(x, labels=torch.from_numpy(y)), load(x, labels=list(y))):
        assert ds.classes == ["0", "1", "2", "3"] and ds.labelled
        assert ds.train_y.tolist() == [y[i] for i in rows_of(ds.train_x)]
        assert ds.test_y.tolist() == [y[i] for i in rows_of(ds.test_x)]
    words = np.array(["dog", "cat", "emu", "cat"])[y]
    ds = load((x, words))
    assert ds.classes == ["cat", "dog", "emu"]
    assert [ds.classes[k] for k in ds.train_y] == [words[i] for i in rows_of(ds.train_x)]
    gaps = load((x, y * 3 + 1))   # 1, 4, 7, 10: mapped to 0..3, names kept
    assert gaps.classes == ["1", "4", "7", "10"] and gaps.train_y.max() == 3
    assert load((x, y.astype(float))).classes == ["0", "1", "2", "3"]


def test_a_dict_with_its_own_test_set_is_not_split():
    x, xt = indexed(20), indexed(6)
    ds = load({"train": x, "test": xt, "train_labels": np.arange(20) % 2, "test_labels": [5, 5, 1, 1, 5, 1]})
    assert len(ds.train_x) == 20 and len(ds.test_x) == 6 and rows_of(ds.test_x) == list(range(6))
    assert ds.classes == ["0", "1", "5"] and ds.test_y.tolist() == [2, 2, 1, 1, 2, 1]
    assert ds.origin["split_seed"] is None and ds.origin["test_size"] is None and ds.origin["test_shape"] == [6, 5, 6]
    assert len(load({"train": x}).test_x) == 4


def test_resize_non_square_and_channels():
    x = RNG.random((10, 3, 12, 9), dtype=np.float32)
    ds = load(x, resize=(6, 4))
    assert ds.image_shape == (6, 4) and ds.channels == 3 and ds.train_x.shape == (8, 72)
    assert 0 <= ds.train_x.min() and ds.train_x.max() <= 1
    up = load(x, resize=(16, 16))
    assert up.train_x.shape == (8, 3 * 256)
    assert ds.origin["resize"] == [6, 4] and ds.origin["shape"] == [10, 3, 12, 9]


def test_resize_images_keeps_its_grey_square_output():
    x = torch.rand(4, 28 * 28)
    old = torch.nn.functional.interpolate(x.reshape(-1, 1, 28, 28), size=(32, 32), mode="bilinear",
                                          align_corners=False).clamp(0, 1).reshape(4, -1)
    assert torch.equal(resize_images(x, (28, 28), 32), old)
    down = torch.nn.functional.interpolate(x.reshape(-1, 1, 28, 28), size=(14, 14), mode="bilinear",
                                           align_corners=False).clamp(0, 1).reshape(4, -1)
    assert torch.equal(resize_images(x, (28, 28), 14), down)
    assert resize_images(torch.rand(2, 3 * 12 * 9), (12, 9), (5, 7), channels=3, antialias=True).shape == (2, 105)


def test_fingerprint_same_array_same_hex_changed_array_different():
    x = RNG.integers(0, 256, (10, 4, 4), dtype=np.uint8)
    assert fingerprint(x) == fingerprint(x.copy()) == fingerprint(torch.from_numpy(x)) == load(x).origin["sha256"]
    changed = x.copy()
    changed[3, 2, 1] ^= 1
    assert fingerprint(changed) != fingerprint(x)
    assert fingerprint(x.astype(np.int16)) != fingerprint(x) and fingerprint(x.reshape(10, 16)) != fingerprint(x)
    y = np.arange(10) % 2
    assert fingerprint((x, y)) == fingerprint(x, labels=y) == load((x, y)).origin["sha256"] != fingerprint(x)
    assert fingerprint(x[:, ::-1]) == fingerprint(np.ascontiguousarray(x[:, ::-1]))   # views: their numbers


# -- files ------------------------------------------------------------------------------------------
def test_npz_and_npy_files(tmp_path):
    x, y = indexed(20), np.arange(20) % 2
    np.savez(tmp_path / "digits.npz", x=x, y=y, test=indexed(5), test_labels=np.array([0, 1, 1, 0, 1]))
    ds = load(tmp_path / "digits.npz")
    assert ds.name == "digits" and len(ds.train_x) == 20 and ds.test_y.tolist() == [0, 1, 1, 0, 1]
    raw = hashlib.sha256((tmp_path / "digits.npz").read_bytes()).hexdigest()
    assert ds.origin["kind"] == "npz" and ds.origin["path"] == str(tmp_path / "digits.npz")
    assert ds.origin["sha256"] == raw == fingerprint(str(tmp_path / "digits.npz"))
    np.savez(tmp_path / "named.npz", train=x, train_labels=y)
    assert load(str(tmp_path / "named.npz"), name="mine").name == "mine"
    np.save(tmp_path / "plain.npy", x)
    ds = load(tmp_path / "plain.npy", labels=y)
    assert ds.origin["kind"] == "npy" and ds.classes == ["0", "1"] and len(ds.test_x) == 4
    np.savez(tmp_path / "odd.npz", images=x, targets=y)
    refused(lambda: load(tmp_path / "odd.npz"), "holds keys images, targets", "x (or train)")


# -- folders of images ------------------------------------------------------------------------------
def colour_folder(root, n_per_class=4):
    """Two class folders of 12-wide x 9-high images; pixel (0, 0) red = 10 * index (its own mark)."""
    k = 0
    for cls in ("zebra", "ant"):
        (root / cls).mkdir(parents=True)
        for i in range(n_per_class):
            a = RNG.integers(0, 256, (9, 12, 3), dtype=np.uint8)
            a[0, 0, 0] = 10 * k
            if k == 1:   # one grey and one RGBA image: the set is RGB all the same
                Image.fromarray(a[..., 0]).save(root / cls / f"{i}.png")
            elif k == 2:
                Image.fromarray(np.dstack([a, np.full((9, 12), 7, np.uint8)])).save(root / cls / f"{i}.png")
            else:
                Image.fromarray(a).save(root / cls / f"{i}.png")
            k += 1
    Image.fromarray(RNG.integers(0, 256, (9, 12, 3), dtype=np.uint8)).save(root / "ant" / "z.jpg", quality=95)
    (root / "ant" / ".DS_Store").write_bytes(b"junk")
    (root / "ant" / "notes.txt").write_text("not an image")


def test_a_colour_folder_with_class_subfolders(tmp_path):
    colour_folder(tmp_path / "pets")
    ds = load(tmp_path / "pets", test_size=3)
    assert ds.name == "pets" and ds.classes == ["ant", "zebra"] and ds.channels == 3 and ds.image_shape == (9, 12)
    assert ds.train_x.shape == (6, 3 * 9 * 12) and ds.test_x.shape == (3, 324)
    assert 0 <= ds.train_x.min() and ds.train_x.max() <= 1
    assert sorted(ds.train_y.tolist() + ds.test_y.tolist()) == [0] * 5 + [1] * 4
    # cross-check a pixel against PIL: find zebra/3.png (its mark is 10 * 3) among the rows
    x, y = torch.cat([ds.train_x, ds.test_x]), torch.cat([ds.train_y, ds.test_y])
    row = [i for i in range(len(x)) if y[i] == 1 and round(float(x[i, 0]) * 255) == 30]
    assert len(row) == 1
    r, g, b = Image.open(tmp_path / "pets" / "zebra" / "3.png").getpixel((7, 4))   # (column, row)
    image = x[row[0]].reshape(3, 9, 12)
    assert [round(float(v) * 255) for v in image[:, 4, 7]] == [r, g, b]
    grey = [i for i in range(len(x)) if y[i] == 1 and round(float(x[i, 0]) * 255) == 10][0]
    assert torch.equal(x[grey].reshape(3, 9, 12)[0], x[grey].reshape(3, 9, 12)[2])   # grey repeated as RGB
    assert ds.origin["kind"] == "folder" and ds.origin["shape"] == [9, 3, 9, 12]
    assert ds.origin["sha256"] == fingerprint(tmp_path / "pets")
    (tmp_path / "pets" / "ant" / "0.png").write_bytes((tmp_path / "pets" / "zebra" / "0.png").read_bytes())
    assert fingerprint(tmp_path / "pets") != ds.origin["sha256"]


def test_a_grey_folder_of_a_few_hundred_tiny_images(tmp_path, capsys):
    folder = tmp_path / "tiny"
    folder.mkdir()
    images = RNG.integers(0, 256, (300, 4, 5), dtype=np.uint8)
    for i, a in enumerate(images):
        Image.fromarray(a).save(folder / f"{i:03d}.png")
    ds = user_dataset(folder, split_seed=3)
    assert "reading tiny" in capsys.readouterr().err   # the progress bar
    assert ds.channels == 1 and ds.image_shape == (4, 5) and ds.classes == [] and not ds.labelled
    assert ds.train_x.shape == (240, 20) and ds.test_x.shape == (60, 20)
    rows = torch.arange(300)
    test_rows = split_validation(rows, rows, 60, seed=3)[2]
    assert torch.equal(ds.test_x, torch.from_numpy(images[test_rows.numpy()].reshape(60, 20) / 255).float())


def test_mixed_sizes_are_refused_unless_resized(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(np.zeros((9, 12), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.full((10, 10, 3), 200, np.uint8)).save(folder / "b.bmp")
    refused(lambda: load(folder), "a.png is 12x9", "b.bmp is 10x10", "resize=(H, W)", "--resize")
    ds = load(folder, resize=(6, 8), test_size=1)
    assert ds.image_shape == (6, 8) and ds.channels == 3 and ds.train_x.shape[1] == 3 * 48
    assert abs(float(torch.cat([ds.train_x, ds.test_x]).max()) - 200 / 255) < 1e-6


def test_unreadable_and_empty_folders_are_refused(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(bad / "ok.png")
    (bad / "broken.png").write_bytes(b"not a png at all")
    refused(lambda: load(bad), "cannot read", "broken.png", "remove or replace the file")
    whole = (bad / "ok.png").read_bytes()
    (bad / "broken.png").write_bytes(whole[: len(whole) // 2 + 10])   # a good header, cut-off pixels
    refused(lambda: load(bad), "broken.png", "remove or replace")
    (tmp_path / "empty").mkdir()
    refused(lambda: load(tmp_path / "empty"), "holds no image files", "PNG, JPEG")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("x")
    refused(lambda: load(tmp_path / "text"), "holds no image files (found a.txt)")
    (tmp_path / "one").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "one" / "a.png")
    refused(lambda: load(tmp_path / "one"), "1 example", "at least 2")
    refused(lambda: load(bad, labels=[0, 1]), "labels=", "subfolder")


# -- torch Datasets ---------------------------------------------------------------------------------
class PilItems(torch.utils.data.Dataset):
    def __init__(self, bad_at=None):
        self.images = RNG.integers(0, 256, (10, 6, 7, 3), dtype=np.uint8)
        self.bad_at = bad_at

    def __len__(self):
        return 10

    def __getitem__(self, i):
        if i == self.bad_at:
            return {"image": i}
        return Image.fromarray(self.images[i]), i % 3


def test_a_torch_dataset_of_tensors_or_pil_images():
    x = torch.rand(12, 1, 5, 5)
    ds = load(torch.utils.data.TensorDataset(x, torch.arange(12) % 2))
    assert ds.origin["kind"] == "torch-dataset" and ds.classes == ["0", "1"] and ds.train_x.shape == (10, 25)
    rows = torch.arange(12)
    assert torch.equal(ds.train_x, x[split_validation(rows, rows, 2, seed=0)[0]].reshape(10, 25))
    pil = PilItems()
    ds = load(pil, test_size=2)
    assert ds.channels == 3 and ds.image_shape == (6, 7) and ds.classes == ["0", "1", "2"]
    assert ds.origin["sha256"] == fingerprint(pil)
    refused(lambda: load(PilItems(bad_at=4)), "item 4 is a dict", "not an image")
    refused(lambda: load(torch.utils.data.TensorDataset(torch.rand(0, 3))), "empty")


# -- mistakes, each one line ------------------------------------------------------------------------
@pytest.mark.parametrize("data, kw, words", [
    (np.full((5, 4, 4), np.nan, np.float32), {}, ("dataset holds NaN or infinite", "nan_to_num")),
    (np.array([[0.0, np.inf]] * 4), {}, ("NaN or infinite",)),
    (np.full((5, 4, 4), 200.0), {}, ("[0, 1]", "from 200 to 200", "divide by 255")),
    (np.full((5, 4, 4), -3.0), {}, ("[0, 1]", "rescale")),
    (np.full((5, 4, 4), 300, np.int32), {}, ("integers from 300 to 300", "0..255")),
    (np.ones((5, 4, 4), np.int64), {}, ("integers 0..1 only", "bool")),
    (np.zeros((5, 5, 7, 9), np.uint8), {}, ("shape [5, 5, 7, 9]", "channels", "(N, H, W)")),
    (np.zeros(5, np.uint8), {}, ("shape [5]", "(N, D) vectors")),
    (np.array([["a", "b"]] * 5), {}, ("dtype <U1", "give numbers")),
    (np.zeros((5, 3), np.float32), {"resize": (2, 2)}, ("resize applies to images",)),
    (np.zeros((5, 4, 4), np.float32), {"labels": [0, 1]}, ("labels has 2 entries", "5 examples")),
    (np.zeros((5, 4, 4), np.float32), {"labels": [0.5] * 5}, ("labels holds fractions",)),
    (np.zeros((5, 4, 4), np.float32), {"test_size": 5}, ("test_size 5", "from 1 to 4")),
    (np.zeros((5, 4, 4), np.float32), {"test_size": 1.5}, ("test_size must be a fraction", "0.2")),
    (np.zeros((5, 4, 4), np.float32), {"test_size": True}, ("test_size",)),
    (np.zeros((5, 4, 4), np.float32), {"resize": 8}, ("resize must be (H, W)", "--resize")),
    (np.zeros((5, 4, 4), np.float32), {"split_seed": "a"}, ("split_seed must be an integer",)),
    (np.zeros((1, 4, 4), np.float32), {}, ("1 example", "at least 2")),
    ([np.zeros((4, 4))] * 3, {}, ("dataset is a list", "np.stack")),
    ({"train": np.zeros((4, 2)), "valid": np.zeros((2, 2))}, {}, ("unknown key 'valid'", "train, train_labels, test")),
    ({"train": np.zeros((4, 2)), "test_labels": [0]}, {}, ("'test_labels' without 'test'",)),
    ({"train": np.zeros((4, 2)), "test": np.zeros((2, 3))}, {}, ("test has shape [2, 3]", "same shape")),
    ({"test": np.zeros((4, 2))}, {}, ("no 'train' key",)),
    ((np.zeros((4, 2)), [0] * 4), {"labels": [0] * 4}, ("labels given twice",)),
    ((np.zeros((4, 2)),), {}, ("(x, y)",)),
    ("/no/such/place.npz", {}, ("no such file or folder", "/no/such/place.npz")),
])
def test_bad_input_is_refused_in_one_line(data, kw, words):
    refused(lambda: load(data, **kw), *words)


def test_the_argument_name_is_the_callers(tmp_path):
    (tmp_path / "data.csv").write_text("1,2\n")
    refused(lambda: load(tmp_path / "data.csv", argument="--data"), "--data:", "not a .npz or .npy")
    refused(lambda: load(np.full((3, 2, 2), 9.0), argument="--data"), "--data: float images", "divide by 255")


def test_existing_datasets_keep_their_defaults():
    ds = Dataset("t", torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), torch.zeros(1, 4),
                 torch.zeros(1, dtype=torch.long), (2, 2), ["a", "b"], "here")
    assert ds.channels == 1 and ds.origin is None and ds.labelled


def test_every_format_and_16_bit_grey(tmp_path, monkeypatch):
    folder = tmp_path / "formats"
    folder.mkdir()
    grey = RNG.integers(0, 256, (5, 6), dtype=np.uint8)
    Image.fromarray((grey.astype(np.uint16) * 257)).save(folder / "a16.png")   # mode I;16
    for name in ("b.bmp", "c.gif", "d.webp", "e.jpeg"):
        Image.fromarray(grey).save(folder / name, **({"lossless": True} if name.endswith("webp") else {}))
    monkeypatch.chdir(folder)
    ds = load(".", test_size=1)
    assert ds.name == "formats" and ds.image_shape == (5, 6) and len(ds.train_x) + len(ds.test_x) == 5
    x = torch.cat([ds.train_x, ds.test_x])[:, : 30]   # first channel of each, whatever order
    exact = [i for i in range(5) if torch.allclose(x[i], torch.from_numpy(grey.reshape(-1) / 255).float())]
    assert len(exact) >= 3   # the 16-bit PNG (by 65535), BMP, lossless WebP; JPEG is lossy
