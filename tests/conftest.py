"""Shared test helpers: where the real data sets are."""
import os
from pathlib import Path

import pytest

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
