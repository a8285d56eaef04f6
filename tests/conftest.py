"""Shared test helpers: where the real data sets are."""
import os
from pathlib import Path

import pytest

# A fixed thread count for every run the tests start (scripts/test.sh sets 2 as well): the tests that compare
# runs bit for bit need it, and training would otherwise choose its own count by timing (vaelab/pace.py;
# tests/test_pace.py lifts this where it tests that choice)
os.environ.setdefault("OMP_NUM_THREADS", "2")

REAL_DATA = Path(os.environ.get("VAELAB_TEST_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data").absolute()


def has_real(name: str) -> bool:
    return (REAL_DATA / name / "t10k-images-idx3-ubyte.gz").exists()


def requires_real(name: str):
    """Skip when the real data set is absent, except on CI, where its absence is a failure."""
    if not has_real(name) and os.environ.get("CI"):
        raise RuntimeError(f"CI run without real {name} data in {REAL_DATA}; set VAELAB_TEST_DATA")
    return pytest.mark.skipif(not has_real(name), reason=f"real {name} not found in {REAL_DATA} (set VAELAB_TEST_DATA)")


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """Tests never touch the network."""
    monkeypatch.setenv("VAELAB_NO_DOWNLOAD", "1")


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """One fresh user cache for the session (judges trained there), never the user's own."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


class Interrupt(BaseException):
    """Stands for a kill: raised inside the trainer, past every `except Exception`."""


def killed_then_resumed(monkeypatch, cfg: dict, out, iteration: int, **runtime):
    """Train TrainConfig(out=out, **cfg), killed just before the checkpoint.pt of `iteration` is written
    (best.pt writes go through), then resume it (with `runtime` options); returns the resumed Run."""
    import vaelab
    import vaelab.trainer as trainer_mod
    from vaelab.config import TrainConfig
    from vaelab.runs.train import resume_run, train_run

    real_save = trainer_mod.save_checkpoint

    def die_there(path, state):
        if state["iteration"] == iteration and Path(path).name == "checkpoint.pt":
            raise Interrupt
        real_save(path, state)

    monkeypatch.setattr(trainer_mod, "save_checkpoint", die_there)
    with pytest.raises(Interrupt):
        train_run(TrainConfig(out=str(out), **cfg))
    monkeypatch.setattr(trainer_mod, "save_checkpoint", real_save)
    return vaelab.Run(resume_run(out, **runtime))


# A short CLI training run's options (40 iterations, a 2-D code): fast enough for many tests to share one run
CLI_QUICK = ["--iters", "40", "--eval-every", "20", "--log-every", "10", "--checkpoint-every", "20", "--iwae-k", "1",
             "--eval-repeats", "1", "--no-progress", "--z-dim", "2", "--hidden", "16"]


@pytest.fixture(scope="session")
def done(tmp_path_factory):
    """A finished one-seed VAE run folder (CLI_QUICK on mnist-5k); tests that change it work on a copy."""
    from vaelab.cli import main

    out = tmp_path_factory.mktemp("done") / "run"
    assert main(["train", "vae", "--out", str(out), *CLI_QUICK]) == 0
    return out
