"""Shared fixtures. ``device`` runs a test once per available device: always ``cpu``, and
``cuda`` where CuPy sees a GPU (skipped cleanly elsewhere). ``POLYDL_TEST_DEVICES=cuda``
limits the run to the listed devices."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import polydl
from polydl import backend

sys.path.insert(0, str(Path(__file__).parent))
from plugin_fakes import site  # noqa: E402,F401  (a fixture: fake distributions on sys.path)


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        params = []
        for d in polydl.testing.devices():
            marks = [pytest.mark.cuda] if d == "cuda" else []
            params.append(pytest.param(d, marks=marks, id=d))
        metafunc.parametrize("device", params)


@pytest.fixture(autouse=True)
def _skip_unavailable_device(request):
    dev = request.node.callspec.params.get("device") if hasattr(request.node, "callspec") else None
    if dev is not None:
        polydl.testing.require_device(dev)


@pytest.fixture(autouse=True)
def _seed():
    polydl.manual_seed(0)
    yield


@pytest.fixture
def xp(device):
    """The array module of ``device``."""
    return backend.device(device).xp


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def module_gradcheck():
    """``module_gradcheck(module, *inputs)``: ``polydl.testing.gradcheck_module``, the gradient
    check of a module's inputs and every parameter."""
    return polydl.testing.gradcheck_module
