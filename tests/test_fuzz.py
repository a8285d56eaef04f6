"""Fuzzed bad input: IDX bytes and checkpoints. Only the documented one-line VaelabError may come out."""
import gzip
import io
import pickle

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaelab.data.datasets import _check_split
from vaelab.data.idx import IDX_DTYPES, parse_idx, read_idx, write_idx
from vaelab.data.registry import get_spec
from vaelab.errors import VaelabError
from vaelab.models import build_model
from vaelab.storage import load_checkpoint, save_checkpoint
from vaelab.runs.commands import sample_run
from vaelab.config import TrainConfig
from vaelab.models import load_model

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SMALL = {"hidden": "16", "z_dim": 2}


def _one_line(e: VaelabError) -> str:
    msg = str(e)
    assert msg and "\n" not in msg and "Traceback" not in msg
    return msg


# --------------------------------------------------------------------------- IDX
def _header(code, dims):
    return bytes([0, 0, code, len(dims)]) + np.asarray(dims, dtype=">u4").tobytes()


headers = st.builds(
    lambda code, dims, body: _header(code, dims) + body,
    st.sampled_from(sorted(IDX_DTYPES) + [0x00, 0x07, 0x0A, 0xFF]),
    st.lists(st.one_of(st.integers(0, 8), st.integers(0, 2**32 - 1)), min_size=0, max_size=6),
    st.binary(max_size=96),
)


@FUZZ
@given(data=st.one_of(st.binary(max_size=128), headers))
def test_parse_idx_wrong_headers_and_shapes_give_only_vaelab_errors(data):
    try:
        array = parse_idx(data, "fuzz.idx")
    except VaelabError as e:
        assert "fuzz.idx" in _one_line(e)
    else:
        assert 1 <= array.ndim <= 4 and array.flags.writeable


@FUZZ
@given(shape=st.lists(st.integers(0, 30), min_size=1, max_size=4), labels=st.lists(st.integers(0, 255), max_size=12),
       dtype=st.sampled_from([np.uint8, np.int8, np.float32]), gz=st.booleans(), cut=st.integers(0, 400))
def test_idx_files_of_wrong_shape_dtype_or_length_give_only_vaelab_errors(tmp_path, shape, labels, dtype, gz, cut):
    """A readable IDX file of the wrong shape or dtype, or a truncated one, as a data set file."""
    suffix = ".gz" if gz else ""
    images, label_file = tmp_path / f"images{suffix}", tmp_path / f"labels{suffix}"
    write_idx(images, np.zeros(shape, dtype=dtype))
    write_idx(label_file, np.asarray(labels, dtype=np.uint8))
    raw = images.read_bytes()
    images.write_bytes(raw[:len(raw) - cut % (len(raw) + 1)] if cut % 3 == 0 else raw)
    try:
        _check_split(get_spec("mnist"), "test", read_idx(images), read_idx(label_file), images, label_file)
    except VaelabError as e:
        _one_line(e)


# --------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def real_checkpoint(tmp_path_factory):
    """A checkpoint as the trainer writes it (a few Adam steps on random data)."""
    from vaelab.trainer import checkpoint_state
    model = build_model("vae", 784, **SMALL)
    opt = torch.optim.Adam(model.parameters())
    loss, _ = model.loss(torch.rand(8, 784).round())
    loss.backward()
    opt.step()
    cfg = TrainConfig(model_options=dict(SMALL))
    data = type("D", (), {"x_dim": 784, "image_shape": (28, 28), "channels": 1})()
    state = checkpoint_state(model, opt, cfg, 1, 0, data, {"history": {}, "window": {}})
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    save_checkpoint(path, state)
    return path


def _load_fully(path):
    """What `vaelab eval` / `vaelab sample` do with a checkpoint: read it, rebuild the model."""
    return load_model(load_checkpoint(path), torch.device("cpu"))


def test_the_real_checkpoint_loads(real_checkpoint):
    assert _load_fully(real_checkpoint).z_dim == 2


@FUZZ
@given(data=st.binary(max_size=512))
def test_checkpoint_of_random_bytes(tmp_path, data):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(data)
    with pytest.raises(VaelabError) as e:
        _load_fully(path)
    assert str(path) in _one_line(e.value)


@FUZZ
@given(cut=st.floats(0, 1, exclude_max=True), flip=st.one_of(st.none(), st.tuples(st.floats(0, 1, exclude_max=True),
                                                                                     st.integers(0, 255))))
def test_truncated_or_bit_flipped_real_checkpoint(tmp_path, real_checkpoint, cut, flip):
    raw = bytearray(real_checkpoint.read_bytes())
    if flip is not None:   # a flipped byte may land in a tensor's payload and load fine: that's allowed
        raw[int(flip[0] * len(raw))] = flip[1]
    else:
        raw = raw[:int(cut * len(raw))]
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(bytes(raw))
    try:
        _load_fully(path)
    except VaelabError as e:
        _one_line(e)
    else:
        assert flip is not None


scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True), st.text(max_size=8))
values = st.recursive(scalars | st.builds(torch.zeros, st.integers(0, 4)),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                      max_leaves=8)


@FUZZ
@given(state=st.dictionaries(st.sampled_from(["model", "config", "x_dim", "image_shape", "optimizer", "iteration"]),
                             values, max_size=6),
       config=st.one_of(st.none(), st.fixed_dictionaries(
           {"model": st.sampled_from(["vae", "gmvae", "ssvae", "nope", ""]),
            "model_options": st.one_of(values, st.fixed_dictionaries({}, optional={
                "hidden": st.sampled_from(["16", "", "x", "0", "16,16"]), "z_dim": st.integers(-2, 4),
                "k": st.integers(-1, 3), "beta": st.floats(), "likelihood": st.sampled_from(["bernoulli", "gaussian", "?"]),
                "sigma": st.sampled_from(["0.1", "learned", "-1", "zz"]), "labels_per_class": st.integers(-1, 2)}))})),
       x_dim=st.one_of(st.none(), st.integers(-3, 800)))
def test_checkpoint_dicts_with_missing_or_malformed_entries(tmp_path, state, config, x_dim):
    if config is not None:
        state["config"] = config
    if x_dim is not None:
        state["x_dim"] = x_dim
    path = tmp_path / "checkpoint.pt"
    torch.save(state, path)
    with pytest.raises(VaelabError) as e:   # weights never fit: every such dict is refused
        _load_fully(path)
    _one_line(e.value)


def test_a_pickle_that_is_not_a_checkpoint_runs_no_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(pickle.dumps({"model": Evil(), "config": {}, "x_dim": 1}))
    with pytest.raises(VaelabError, match="cannot read checkpoint"):
        load_checkpoint(path)
    buf = io.BytesIO()
    torch.save({"model": Evil(), "config": {}, "x_dim": 1}, buf)
    path.write_bytes(buf.getvalue())
    with pytest.raises(VaelabError, match="cannot read checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("model, options", [
    ("vae", {"hidden": "16", "z_dim": 3}),                 # other latent size
    ("vae", {"hidden": "16,16", "z_dim": 2}),              # other depth
    ("vae", {**SMALL, "likelihood": "gaussian", "sigma": "learned"}),   # an extra parameter
    ("gmvae", {**SMALL, "k": 5}),                          # another model family
    ("ssvae", {**SMALL}),
])
def test_checkpoint_from_a_different_model_or_option_set(tmp_path, real_checkpoint, model, options):
    state = torch.load(real_checkpoint, weights_only=True)
    state["config"] = {**state["config"], "model": model, "model_options": options}
    path = tmp_path / "checkpoint.pt"
    torch.save(state, path)
    with pytest.raises(VaelabError, match="different model"):
        _load_fully(path)


def test_sample_of_a_run_with_a_damaged_checkpoint_is_one_line(tmp_path, real_checkpoint):
    run = tmp_path / "run"
    (run / "seed-0").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "seed-0" / "checkpoint.pt").write_bytes(gzip.compress(real_checkpoint.read_bytes()))
    with pytest.raises(VaelabError) as e:
        sample_run(run, device="cpu")
    _one_line(e.value)
