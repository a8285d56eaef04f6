"""On a CUDA GPU (skipped where none is visible): a run trains there, resumes exactly, evaluates as the CPU
does, and the speed options (bf16 autocast, torch.compile, --cuda-graph) train the same model.

Run them on a GPU machine with the real MNIST files: `VAELAB_TEST_DATA=DIR pytest tests/test_gpu.py`.
"""
import dataclasses

import pytest
import torch
from conftest import REAL_DATA, killed_then_resumed, requires_real

import vaelab
from vaelab.batches import prepare_data
from vaelab.config import TrainConfig
from vaelab.evaluate import evaluate_terms, evaluate_niwae
from vaelab.models import MODELS, build_model
from vaelab.runs.train import train_run
from vaelab.trainer import fit

pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU is visible to PyTorch"),
              requires_real("mnist")]

ON_GPU = dict(dataset="mnist", data_dir=str(REAL_DATA), device="cuda", progress=False, threads=1)


def test_a_run_trains_on_the_gpu_and_its_model_evaluates_alike_on_the_cpu(tmp_path):
    run = vaelab.train("vae", out=tmp_path / "r", iters=600, iwae_k=[1, 100], eval_repeats=2, z_dim=8,
                       hidden="256", **ON_GPU)
    assert torch.cuda.get_device_name() in run.metrics["machine"]
    got = run.per_seed()[0]
    cpu_model, (x, _) = run.model(), run.test_data()
    torch.manual_seed(0)
    on_cpu = evaluate_terms(cpu_model, x, repeats=2)["nelbo"]
    assert abs(on_cpu - got["nelbo"]) < 0.5   # Monte Carlo error of 2 passes over 10,000 images: ~0.05 nats
    gpu_model, xg = run.model(device="cuda"), x[:1000].cuda()
    big_passes = evaluate_niwae(gpu_model, xg, 100, progress=False)          # the GPU's pass size
    small_passes = evaluate_niwae(gpu_model, xg, 100, progress=False, rows_per_pass=1000)
    cpu = evaluate_niwae(cpu_model, x[:1000], 100, progress=False)
    assert abs(big_passes - small_passes) < 0.2 and abs(big_passes - cpu) < 0.2
    assert got["niwae_100"] < got["nelbo"]


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_a_gpu_run_killed_at_a_checkpoint_resumes_exactly(tmp_path, monkeypatch, cuda_graph):
    cfg = dict(model="vae", iters=300, checkpoint_every=150, eval_every=100, log_every=50, val_size=1000,
               iwae_k=[2], eval_repeats=1, warmup=0.25, lr_schedule="exp:0.9", cuda_graph=cuda_graph,
               model_options={"z_dim": 8, "hidden": "256", "iw_k": 3}, **ON_GPU)
    reference = vaelab.Run(train_run(TrainConfig(out=str(tmp_path / "ref"), **cfg)))
    resumed = killed_then_resumed(monkeypatch, cfg, tmp_path / "run", 300)
    assert resumed.history()["loss"] == reference.history()["loss"]
    assert resumed.history()["val_nelbo"] == reference.history()["val_nelbo"]
    assert resumed.per_seed()[0]["nelbo"] == reference.per_seed()[0]["nelbo"]


def test_bf16_and_compile_on_the_gpu_follow_the_float32_eager_run(tmp_path):
    import torch._inductor.config

    # With the eager generator's draws, the compiled bf16 step sees the same batches and noise as the
    # float32 eager one; bfloat16 rounding then moves the curves by well under 2%.
    # config.patch, not monkeypatch: undoing a monkeypatch deletes the attribute, and torch's config
    # module then hides the option from every later compile in this process
    with torch._inductor.config.patch(fallback_random=True):
        cfg = dict(iters=400, log_every=50, val_size=0, iwae_k=[1], eval_repeats=1, z_dim=8, hidden="256", **ON_GPU)
        eager = vaelab.train("vae", out=tmp_path / "eager", **cfg)
        fast = vaelab.train("vae", out=tmp_path / "fast", precision="bf16", compile=True, **cfg)
        for a, b in zip(fast.history()["nelbo"], eager.history()["nelbo"], strict=True):
            assert a == pytest.approx(b, rel=0.02)
        assert fast.per_seed()[0]["nelbo"] == pytest.approx(eager.per_seed()[0]["nelbo"], rel=0.02)


# -- --cuda-graph: the step captured once and replayed -----------------------------------------------

GRAPHABLE = [name for name, (cls, _) in MODELS.items() if cls.graphable]


def _fit_both(name: str, iters: int, **cfg_options):
    """The eager and the graphed fit of one model from the same first weights: their histories."""
    cfg = TrainConfig(model=name, iters=iters, val_size=0, **ON_GPU, **cfg_options).validate()
    data = prepare_data(cfg, torch.device("cuda"))
    hists = []
    for graph in (False, True):
        torch.manual_seed(0)
        model = build_model(name, data.x_dim, **cfg.model_options).cuda()
        hists.append(fit(model, data, dataclasses.replace(cfg, cuda_graph=graph), seed=0))
    return hists


@pytest.mark.parametrize("name", GRAPHABLE)
def test_every_graphable_model_trains_under_a_cuda_graph_as_eagerly(name):
    eager, graphed = _fit_both(name, 60, log_every=20)
    for key in eager:
        if isinstance(eager[key], list) and eager[key] and isinstance(eager[key][0], float) and key != "seconds":
            for a, b in zip(graphed[key], eager[key], strict=True):
                assert a == pytest.approx(b, rel=0.05, abs=1e-3), key


def test_a_graphed_step_replays_the_eager_steps_draw_for_draw():
    """The same kernels on the same random stream: a graphed run (KL warm-up, lr schedule, IWAE k = 3 included)
    follows the eager one to rounding, not merely in distribution."""
    eager, graphed = _fit_both("vae", 200, log_every=20, warmup=0.2, lr_schedule="step:0.1:0.5",
                               model_options={"iw_k": 3})
    for key in ("loss", "nelbo", "kl"):
        for a, b in zip(graphed[key], eager[key], strict=True):
            assert a == pytest.approx(b, rel=1e-4), key


def test_the_graph_reads_the_warm_up_weight_of_every_step():
    # once the warm-up is over the loss is the NELBO itself; a weight frozen at capture would leave a KL-sized gap
    _, graphed = _fit_both("vae", 200, log_every=20, warmup=0.2)   # 120 iterations
    for loss, nelbo in list(zip(graphed["loss"], graphed["nelbo"]))[-4:]:
        assert loss == pytest.approx(nelbo, abs=1e-3)
    assert graphed["loss"][0] < graphed["nelbo"][0] - 0.1   # and during it, less than the NELBO


def test_bf16_under_a_cuda_graph_follows_float32(tmp_path):
    cfg = dict(iters=400, log_every=50, val_size=0, iwae_k=[1], eval_repeats=1, z_dim=8, hidden="256", **ON_GPU)
    fp32 = vaelab.train("vae", out=tmp_path / "fp32", cuda_graph=True, **cfg)
    bf16 = vaelab.train("vae", out=tmp_path / "bf16", cuda_graph=True, precision="bf16", **cfg)
    for a, b in zip(bf16.history()["nelbo"], fp32.history()["nelbo"], strict=True):
        assert a == pytest.approx(b, rel=0.03)


def test_a_model_drawing_on_the_host_per_batch_is_refused_before_any_file(tmp_path):
    # a denoising AE's level range is drawn on the host each batch: a graph would freeze the first draw
    with pytest.raises(vaelab.VaelabError, match="dae's training step depends on values read or drawn on the host"):
        vaelab.train("dae", out=tmp_path / "r", level="0.3,0.7", cuda_graph=True, iters=10, **ON_GPU)
    assert not (tmp_path / "r").exists()
