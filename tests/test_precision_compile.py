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
def test_compiled_step_follows_the_eager_one():
    import torch._inductor.config

    # Compiled kernels draw their own random numbers unless told to call the eager generator;
    # with the same draws, the maths must match to rounding (kernels may sum in another order).
    # config.patch, not monkeypatch: undoing a monkeypatch deletes the attribute, and torch's config
    # module then hides the option from every later compile in this process
    with torch._inductor.config.patch(fallback_random=True):
        _, eager, _ = _fit("vae", iters=30)
        _, compiled, _ = _fit("vae", iters=30, compile=True)
        for a, b in zip(compiled["nelbo"], eager["nelbo"]):
            assert a == pytest.approx(b, rel=1e-3)


def test_bad_precision_is_a_clear_error(capsys):
    with pytest.raises(VaelabError, match="precision must be one of fp32, bf16"):
        TrainConfig(precision="fp16").validate()
    with pytest.raises(SystemExit):
        main(["train", "vae", "--precision", "half"])
    assert "invalid choice: 'half'" in capsys.readouterr().err


def test_cuda_graph_is_refused_where_it_cannot_run():
    with pytest.raises(VaelabError, match="cuda_graph: m1m2's training step depends on values read or drawn on the host"):
        TrainConfig(model="m1m2", cuda_graph=True).validate()
    with pytest.raises(VaelabError, match="cuda_graph and compile: give one"):
        TrainConfig(cuda_graph=True, compile=True).validate()
    with pytest.raises(VaelabError, match=r"cuda_graph needs a CUDA GPU \(device='cuda'\)"):
        TrainConfig(cuda_graph=True, device="cpu").validate()
    import vaelab

    with pytest.raises(VaelabError, match=r"^cuda_graph needs a CUDA GPU \(device='cuda'\)"):
        vaelab.train("vae", cuda_graph=True, device="cpu", iters=10)
    assert build_model("dae", 20, level="0.5").graphable and not build_model("dae", 20, level="0.3,0.7").graphable


@pytest.mark.parametrize("name, options", [("vae", {}), ("vae", {"iw_k": 3}), ("hvae", {})])
def test_a_kl_weight_held_on_the_device_weighs_as_the_number(name, options):
    """Under --cuda-graph a warm-up weight is a 0-dim tensor the graph reads; the loss must not change."""
    model = build_model(name, 20, **({"z_dim": 3, "hidden": "16"} if name == "vae" else {}), **options)
    x = torch.bernoulli(torch.rand(8, 20))
    for w in (0.3, 1.0):
        torch.manual_seed(0)
        model.kl_weight = w
        as_number = model.loss(x)[0]
        torch.manual_seed(0)
        model.kl_weight = torch.tensor(w)
        assert torch.allclose(model.loss(x)[0], as_number)


def test_set_lr_writes_a_tensor_learning_rate_in_place():
    from vaelab.graphs import lr_to_device, set_lr

    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.Adam([p], lr=torch.tensor(1e-3))
    held = opt.param_groups[0]["lr"]
    set_lr(opt, 5e-4)
    assert opt.param_groups[0]["lr"] is held and held.item() == pytest.approx(5e-4)   # where a graph reads it
    plain = torch.optim.Adam([p], lr=1e-3)
    set_lr(plain, 2e-4)
    assert plain.param_groups[0]["lr"] == 2e-4
    lr_to_device(plain, torch.device("cpu"))
    assert torch.is_tensor(plain.param_groups[0]["lr"]) and plain.param_groups[0]["lr"].item() == pytest.approx(2e-4)
