"""Files vaelab writes: the permissions open() would give, and one-line errors when a write cannot happen
(disk full, read-only, a folder in the way) with the previous file left intact."""
import errno
import os
import stat
from pathlib import Path

import pytest

from vaelab.cli import main
from vaelab.errors import VaelabError
from vaelab.storage import atomic_write_bytes, load_checkpoint, save_checkpoint, write_json

QUICK = ["--iters", "60", "--checkpoint-every", "30", "--eval-every", "30", "--iwae-k", "1", "--eval-repeats", "1",
         "--val-size", "100", "--no-progress", "--threads", "1"]


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("writes") / "vae"
    old = os.umask(0o022)
    try:
        assert main(["train", "vae", "--out", str(out), *QUICK]) == 0
    finally:
        os.umask(old)
    return out


# ------------------------------------------------------------------------------ permissions
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664), (0o027, 0o640)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"data")
        write_json(tmp_path / "b.json", {"a": 1})
        save_checkpoint(tmp_path / "c.pt", {"a": 1})
    finally:
        os.umask(old)
    assert {p.name: _mode(p) for p in tmp_path.iterdir()} == {"a.bin": mode, "b.json": mode, "c.pt": mode}


def test_replacing_a_file_keeps_its_mode(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("{}")
    path.chmod(0o640)
    write_json(path, {"new": True})
    assert _mode(path) == 0o640 and '"new"' in path.read_text()


def test_every_file_of_a_trained_run_follows_the_umask(run):
    modes = {str(p.relative_to(run)): oct(_mode(p)) for p in run.rglob("*") if p.is_file()}
    assert {"config.json", "metrics.json", "report.md", "seed-0/checkpoint.pt", "seed-0/model.safetensors"} <= set(modes)
    assert set(modes.values()) == {"0o644"}, modes


# ------------------------------------------------------------------------------ failed writes
@pytest.mark.parametrize("code, fix", [
    (errno.ENOSPC, "free disk space"),
    (errno.EDQUOT, "free disk space"),
    (errno.EROFS, "read-only"),
    (errno.EACCES, "check that you can write to"),
    (errno.EIO, "check the folder and the disk"),
])
def test_a_failed_write_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch, code, fix):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"old checkpoint")

    def fsync(fd):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(VaelabError) as excinfo:
        atomic_write_bytes(path, b"new checkpoint")
    message = str(excinfo.value)
    assert "\n" not in message and str(path) in message and os.strerror(code) in message and fix in message
    assert "the previous checkpoint.pt is intact" in message
    assert path.read_bytes() == b"old checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]   # no temporary file left behind


def test_a_failed_write_of_a_new_file_does_not_claim_a_previous_one(tmp_path, monkeypatch):
    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(VaelabError) as excinfo:
        atomic_write_bytes(tmp_path / "new.json", b"{}")
    assert "free disk space" in str(excinfo.value) and "intact" not in str(excinfo.value)
    assert list(tmp_path.iterdir()) == []


def test_disk_full_during_training_is_one_line_and_the_last_checkpoint_survives(tmp_path, monkeypatch, capsys):
    """The checkpoint at iteration 30 is written, the one at 60 hits a full disk: exit 2, one line, and
    the run resumes from iteration 30."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to tell which file is being written")
    out = tmp_path / "run"
    real_fsync, written = os.fsync, []

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if ".checkpoint.pt." in name:
            written.append(name)
            if len(written) > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    assert _exit_code(["train", "vae", "--out", str(out), *QUICK]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vaelab: error: cannot write ") and "\n" not in err, err
    assert "No space left on device" in err and "free disk space" in err and "previous checkpoint.pt is intact" in err
    assert load_checkpoint(out / "seed-0" / "checkpoint.pt")["iteration"] == 30
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert _exit_code(["train", "--resume", str(out), "--threads", "1", "--no-progress"]) == 0
    assert load_checkpoint(out / "seed-0" / "checkpoint.pt")["iteration"] == 60


# ------------------------------------------------------------------------------ a folder in the way
def test_a_folder_where_a_file_goes_is_refused(tmp_path):
    (tmp_path / "recon.png").mkdir()
    with pytest.raises(VaelabError) as excinfo:
        atomic_write_bytes(tmp_path / "recon.png", b"png")
    assert str(excinfo.value) == f"{tmp_path / 'recon.png'} is a folder; remove it or choose another path"
    assert (tmp_path / "recon.png").is_dir() and list(tmp_path.iterdir()) == [tmp_path / "recon.png"]


def test_plot_over_a_folder_is_a_one_line_error(run, capsys):
    figure = run / "recon.png"
    saved = figure.read_bytes() if figure.is_file() else None
    figure.unlink(missing_ok=True)
    figure.mkdir()
    try:
        assert _exit_code(["plot", str(run), "recon", "--device", "cpu"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"vaelab: error: {figure} is a folder; remove it or choose another path"
        assert figure.is_dir() and not list(figure.iterdir())
    finally:
        figure.rmdir()
        if saved is not None:
            figure.write_bytes(saved)


def test_sample_and_score_out_an_existing_folder_name_out(run, tmp_path, capsys):
    assert _exit_code(["sample", str(run), "--rows", "2", "--cols", "2", "--out", str(tmp_path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vaelab: error: --out {tmp_path}: is a folder") and "\n" not in err, err
    assert _exit_code(["score", str(run), "--eval-repeats", "1", "--out", str(tmp_path), "--device", "cpu",
                       "--threads", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vaelab: error: --out {tmp_path}: is a folder") and "\n" not in err, err
    assert list(tmp_path.iterdir()) == []
