"""Shared fixtures. ``device`` runs a test once per available device: always ``cpu``, and
``cuda`` where CuPy sees a GPU (skipped cleanly elsewhere). ``POLYDL_TEST_DEVICES=cuda``
limits the run to the listed devices."""
from __future__ import annotations

import os

import numpy as np
import pytest

import polydl
from polydl import backend

_ALL = ("cpu", "cuda")


def _wanted():
    env = os.environ.get("POLYDL_TEST_DEVICES")
    return tuple(d.strip() for d in env.split(",")) if env else _ALL


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        params = []
        for d in _wanted():
            marks = [pytest.mark.cuda] if d == "cuda" else []
            params.append(pytest.param(d, marks=marks, id=d))
        metafunc.parametrize("device", params)


@pytest.fixture(autouse=True)
def _skip_unavailable_device(request):
    dev = request.node.callspec.params.get("device") if hasattr(request.node, "callspec") else None
    if dev == "cuda" and not backend.cuda_available():
        pytest.skip("no CUDA GPU (CuPy missing or no visible device)")


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
