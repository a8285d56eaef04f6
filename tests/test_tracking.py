"""TensorBoard event files (vaelab/tracking.py): history.json's points, purged past the checkpoint on resume,
removed by overwrite, and nothing at all without the tensorboard package or with --no-tensorboard."""
import json
import sys

import pytest

from conftest import Interrupt, killed_then_resumed
from vaelab.cli import main
from vaelab.errors import VaelabError
from vaelab.runs.folder import foreign_files
from vaelab import tracking

pytest.importorskip("tensorboard", reason="the tensorboard package (the `test` extra installs it)")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator   # noqa: E402
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader   # noqa: E402

QUICK = dict(iters=40, eval_every=20, log_every=10, checkpoint_every=20, iwae_k=[1], eval_repeats=1, val_size=200,
             progress=False, threads=1, model_options={"z_dim": 2, "hidden": "16"})
CLI = ["--iters", "20", "--log-every", "10", "--eval-every", "10", "--iwae-k", "1", "--eval-repeats", "1",
       "--val-size", "200", "--threads", "1", "--no-progress", "--z-dim", "2", "--hidden", "16"]


def _events(seed_dir):
    return sorted(seed_dir.glob(tracking.EVENT_FILES))


def _scalars(seed_dir) -> dict:
    """tag -> [(step, value)] as TensorBoard shows them (after its purges)."""
    acc = EventAccumulator(str(seed_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _assert_scalars_are_the_history(seed_dir, warmup: bool = False):
    hist = json.loads((seed_dir / "history.json").read_text())
    shown = _scalars(seed_dir)
    train = [k for k in hist if isinstance(hist[k], list) and len(hist[k]) == len(hist["iteration"])
             and k not in ("iteration", "seconds") and not k.startswith("val_")]
    val = [k for k in hist if k.startswith("val_") and k != "val_iteration"]
    assert train and val
    expected = {**{f"train/{k}": (hist["iteration"], hist[k]) for k in train},
                **{f"val/{k[4:]}": (hist["val_iteration"], hist[k]) for k in val}}
    extra = {"train/lr", "train/steps_per_second"} | ({"train/kl_weight"} if warmup else set())
    assert set(shown) == set(expected) | extra
    for tag, (steps, values) in expected.items():
        assert [s for s, _ in shown[tag]] == steps, tag   # every point once, in order
        assert [v for _, v in shown[tag]] == pytest.approx(values, rel=1e-6), tag   # float32 in the files
    for tag in extra:
        assert [s for s, _ in shown[tag]] == hist["iteration"], tag
    assert all(v > 0 for _, v in shown["train/steps_per_second"])
    return shown


def test_a_resumed_seed_shows_each_point_once_equal_to_its_history(tmp_path, monkeypatch):
    """Killed before the checkpoint of iteration 40 (its points at 30 and 40 already in the first file),
    resumed from 20: the second file purges from 21 on, and TensorBoard shows history.json exactly."""
    run = killed_then_resumed(monkeypatch, {**QUICK, "warmup": 0.5}, tmp_path / "run", 40)
    seed_dir = run.path / "seed-0"
    files = _events(seed_dir)
    assert len(files) == 2   # the killed process's (closed by the finally: flushed) and the resumed one's
    first = [e for e in EventFileLoader(str(files[0])).Load() if e.summary.value]
    assert max(e.step for e in first) == 40   # written live, up to the kill
    starts = [e.step for e in EventFileLoader(str(files[1])).Load() if e.HasField("session_log")]
    assert starts == [21]   # purge_step: the checkpoint's iteration + 1
    shown = _assert_scalars_are_the_history(seed_dir, warmup=True)
    assert [v for _, v in shown["train/kl_weight"]][0] < 1 and shown["train/lr"][0][1] == pytest.approx(1e-3)


def test_a_seed_started_again_hides_the_points_of_the_attempt_before(tmp_path, monkeypatch):
    """Killed before its first checkpoint: the seed trains again from iteration 1, purging everything."""
    run = killed_then_resumed(monkeypatch, QUICK, tmp_path / "run", 20)
    files = _events(run.path / "seed-0")
    assert len(files) == 2
    assert [e.step for e in EventFileLoader(str(files[1])).Load() if e.HasField("session_log")] == [1]
    _assert_scalars_are_the_history(run.path / "seed-0")


def test_the_writer_is_closed_when_training_fails(tmp_path, monkeypatch):
    import vaelab.trainer as trainer_mod

    closed = []
    real_close = tracking.Curves.close
    monkeypatch.setattr(tracking.Curves, "close", lambda self: (closed.append(self.writer is not None),
                                                                 real_close(self)))

    def interrupted(self, it):
        raise Interrupt   # stands for Ctrl-C at the first checkpoint

    monkeypatch.setattr(trainer_mod.Trainer, "_checkpoint", interrupted)
    with pytest.raises(Interrupt):
        main(["train", "vae", "--out", str(tmp_path / "run"), *CLI])
    assert closed == [True] and len(_events(tmp_path / "run" / "seed-0")) == 1


def test_overwrite_removes_the_event_files_and_still_refuses_a_users_file(tmp_path):
    import vaelab

    out = tmp_path / "run"
    opts = dict(iters=20, log_every=10, eval_every=10, iwae_k=[1], eval_repeats=1, val_size=200, threads=1,
                progress=False, z_dim=2, hidden="16")
    vaelab.train("vae", out=out, **opts)
    old = _events(out / "seed-0")
    assert len(old) == 1 and foreign_files(out) == []
    (out / "seed-0" / "events.txt").write_text("mine")   # not TensorBoard's name: the user's
    with pytest.raises(VaelabError, match="seed-0/events.txt"):
        vaelab.train("vae", out=out, overwrite=True, **opts)
    assert _events(out / "seed-0") == old
    (out / "seed-0" / "events.txt").unlink()
    vaelab.train("vae", out=out, overwrite=True, **opts)
    new = _events(out / "seed-0")
    assert len(new) == 1 and not set(new) & set(old)
    _assert_scalars_are_the_history(out / "seed-0")


@pytest.fixture
def without_tensorboard(monkeypatch):
    """As if the tensorboard package were not installed: its import fails."""
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    for name in [n for n in sys.modules if n.startswith("torch.utils.tensorboard")]:
        monkeypatch.delitem(sys.modules, name)
    tracking._summary_writer.cache_clear()
    yield
    tracking._summary_writer.cache_clear()


def test_without_tensorboard_training_is_the_same_and_silent(tmp_path, capsys, without_tensorboard):
    assert not tracking.available()
    assert main(["train", "vae", "--out", str(tmp_path / "off"), *CLI]) == 0
    assert capsys.readouterr().err == "" and _events(tmp_path / "off" / "seed-0") == []


def test_no_tensorboard_writes_no_event_files_and_the_same_history(tmp_path):
    assert main(["train", "vae", "--out", str(tmp_path / "on"), *CLI]) == 0
    assert main(["train", "vae", "--out", str(tmp_path / "off"), "--no-tensorboard", *CLI]) == 0
    assert _events(tmp_path / "off" / "seed-0") == [] and len(_events(tmp_path / "on" / "seed-0")) == 1
    assert json.loads((tmp_path / "off" / "config.json").read_text())["tensorboard"] is False
    on, off = (json.loads((tmp_path / d / "seed-0" / "history.json").read_text()) for d in ("on", "off"))
    timing = ("seconds", "train_seconds", "iters_per_second")
    assert {k: v for k, v in on.items() if k not in timing} == {k: v for k, v in off.items() if k not in timing}
