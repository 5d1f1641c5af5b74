"""Make the plugin importable from a source checkout (no install needed), and run device tests
on the CPU and, where CuPy sees a GPU, on CUDA (``POLYDL_TEST_DEVICES=cpu`` limits them)."""
import pathlib
import sys

import pytest

import polydl

ROOT = str(pathlib.Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(params=polydl.testing.devices())
def device(request):
    polydl.testing.require_device(request.param)
    return request.param
