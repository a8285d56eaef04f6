"""--precision bf16 (autocast) and --compile: the same training, run differently."""
import pytest
import torch

from vaelab.cli import main
from vaelab.errors import VaelabError
from vaelab.models import build_model
from vaelab.config import TrainConfig
from vaelab.trainer import fit
from vaelab.batches import prepare_data


def _fit(model_name: str, iters: int = 40, **cfg_options):
    cfg = TrainConfig(model=model_name, iters=iters, log_every=10, eval_every=10_000, val_size=0, progress=False,
                      **cfg_options).validate()
    data = prepare_data(cfg, torch.device("cpu"))
    torch.manual_seed(0)
    model = build_model(model_name, data.x_dim, z_dim=4, hidden="64")
    dtypes = set()
    model.dec.net[0].register_forward_hook(lambda mod, inp, out: dtypes.add(out.dtype))   # a matrix product in the step
    return model, fit(model, data, cfg, seed=0), dtypes


@pytest.mark.parametrize("model_name", ["vae", "ssvae"])
def test_bf16_autocast_runs_the_networks_in_bfloat16_and_the_maths_in_float32(model_name):
    model, hist, dtypes = _fit(model_name, precision="bf16")
    assert dtypes == {torch.bfloat16}   # autocast was on for the training step
    _, ref, ref_dtypes = _fit(model_name)
    assert ref_dtypes == {torch.float32}
    # bfloat16 rounds the products to 8 bits of mantissa: the curves follow the float32 ones
    # closely, but not to the last digit (a broken loss would be off by far more than 2%).
    for a, b in zip(hist["nelbo"], ref["nelbo"]):
        assert a == pytest.approx(b, rel=0.02)
    with torch.autocast("cpu", dtype=torch.bfloat16):   # what the maths downstream of the nets receive
        x = torch.rand(5, 784)
        m, v = model.enc(x) if model_name == "vae" else model.enc(x, torch.eye(10)[:5])
        assert m.dtype == v.dtype == torch.float32
        _, terms = model.loss(x) if model_name == "vae" else model.loss(x, labelled=(x, torch.arange(5)))
        assert all(t.dtype == torch.float32 for t in terms.values())


@pytest.mark.slow
def test_compiled_step_follows_the_eager_one(monkeypatch):
    import torch._inductor.config

    # Compiled kernels draw their own random numbers unless told to call the eager generator;
    # with the same draws, the maths must match to rounding (kernels may sum in another order).
    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)
    _, eager, _ = _fit("vae", iters=30)
    _, compiled, _ = _fit("vae", iters=30, compile=True)
    for a, b in zip(compiled["nelbo"], eager["nelbo"]):
        assert a == pytest.approx(b, rel=1e-3)


def test_bad_precision_is_a_clear_error(capsys):
    with pytest.raises(VaelabError, match="--precision must be one of fp32, bf16"):
        TrainConfig(precision="fp16").validate()
    with pytest.raises(SystemExit):
        main(["train", "vae", "--precision", "half"])
    assert "invalid choice: 'half'" in capsys.readouterr().err
