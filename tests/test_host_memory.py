"""``import polydl`` tunes glibc's allocator (unless POLYDL_MALLOC_TUNING=0)."""
import subprocess
import sys

import pytest

CODE = "import polydl; print(polydl.backend._MALLOC_TUNED)"


def _run(env_value=None):
    import os

    env = dict(os.environ)
    env.pop("POLYDL_MALLOC_TUNING", None)
    if env_value is not None:
        env["POLYDL_MALLOC_TUNING"] = env_value
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env,
                          check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_import_tunes_malloc_on_linux():
    assert _run() == "True"


def test_switch_turns_it_off():
    assert _run("0") == "None"


def test_tune_malloc_is_idempotent():
    from polydl import backend

    first = backend.tune_malloc()
    assert backend.tune_malloc() is first
