"""benchmarks/speed.py runs end to end in its --quick mode (the full table is run by hand on a quiet machine)."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_speed_script_quick_mode_writes_a_table_with_command_and_date(tmp_path):
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "speed.py"), "--quick", "--dataset", "mnist-5k",
                          "--models", "vae", "--results", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "speed-quick.json").read_text())
    (row,) = doc["rows"]
    assert row["model"] == "vae" and row["threads"] == row["torch_threads"] == 1
    assert row["iters_per_second"] > 0 and len(row["timed_seconds"]) == 2 and row["default_iters"] == 20_000
    assert "benchmarks/speed.py" in row["command"] and "--threads 1" in row["command"] and row["date"]
    table = (tmp_path / "speed-quick.md").read_text()
    assert "| vae | 1 |" in table and "`python benchmarks/speed.py" in table
    # timing another model keeps the recorded row; timing the same one again replaces it
    for model in ("ae", "ae"):
        res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "speed.py"), "--quick", "--dataset", "mnist-5k",
                              "--models", model, "--results", str(tmp_path)], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
    rows = json.loads((tmp_path / "speed-quick.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["vae", "ae"] and rows[0] == row


def test_compiled_and_eager_rows_of_a_model_are_kept_apart(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import speed
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    args = speed.parse_args(["--iters", "10", "--warmup", "2", "--compile"])
    row = lambda model, compiled, ips: {"model": model, "threads": 1, "compile": compiled, "iters_per_second": ips,  # noqa: E731
                                        "timed_iters": 10, "warmup_iters": 2}
    (tmp_path / "speed.json").write_text(json.dumps({"rows": [row("vae", False, 80.0), row("gmvae", False, 70.0)]}))
    merged = speed.merged_rows(tmp_path / "speed.json", [row("gmvae", True, 90.0)], args, ["vae", "gmvae"])
    assert [(r["model"], r["compile"], r["iters_per_second"]) for r in merged] == [
        ("vae", False, 80.0), ("gmvae", False, 70.0), ("gmvae", True, 90.0)]
    assert "--compile" in speed.row_command(args, "gmvae", 1)
