"""Fixtures of the tune tests."""
import pytest
from tune_helpers import LONGER, cli


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The study of the local executor for ``tune LONGER --trials 3 --workers 1`` (per module)."""
    out = tmp_path_factory.mktemp("ref") / "s"
    r = cli("tune", *LONGER, "--trials", 3, "--workers", 1, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    return out
