"""Make the plugin importable from a source checkout (no install needed), and run device tests
on the CPU and, where CuPy sees a GPU, on CUDA (``POLYDL_TEST_DEVICES=cpu`` limits them)."""
import os
import pathlib
import sys

import pytest

import polydl

ROOT = str(pathlib.Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

_WANTED = [d.strip() for d in os.environ.get("POLYDL_TEST_DEVICES", "cpu,cuda").split(",") if d.strip()]


@pytest.fixture(params=[pytest.param(d, marks=[pytest.mark.cuda] if d == "cuda" else [], id=d)
                        for d in _WANTED])
def device(request):
    if request.param == "cuda" and not polydl.cuda_available():
        pytest.skip("no CUDA GPU (CuPy missing or no visible device)")
    return request.param
