"""Shared fixtures. ``device`` runs a test once per available device: always ``cpu``, and
``cuda`` where CuPy sees a GPU (skipped cleanly elsewhere). ``POLYDL_TEST_DEVICES=cuda``
limits the run to the listed devices. ``--cuda-standin`` runs the ``cuda`` cases without a GPU,
on the strict CuPy stand-in of ``tests/cuda_standin`` (installed as ``cupy`` before polydl
imports CuPy); every ``cuda`` case, the plugins' too, carries the ``cuda`` marker."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import polydl
from polydl import backend

sys.path.insert(0, str(Path(__file__).parent))
from plugin_fakes import site  # noqa: E402,F401  (a fixture: fake distributions on sys.path)


def pytest_addoption(parser):
    parser.addoption("--cuda-standin", action="store_true", default=False,
                     help="run device='cuda' on the CuPy stand-in of tests/cuda_standin (no GPU needed)")


def pytest_configure(config):
    # no test reaches the network: data sets download into a scratch folder, from a closed local port
    # (a test of the download code serves files itself, through its own mirror)
    import os
    import tempfile

    os.environ.setdefault("POLYDL_DATA_DIR", tempfile.mkdtemp(prefix="polydl-test-data-"))
    os.environ.setdefault("POLYDL_DATA_MIRROR", "http://127.0.0.1:9/")
    if config.getoption("--cuda-standin", default=False):
        import cuda_standin

        try:
            cuda_standin.install()
        except RuntimeError as exc:
            raise pytest.UsageError(f"--cuda-standin: {exc}") from None


def pytest_collection_modifyitems(config, items):
    standin = config.getoption("--cuda-standin", default=False)
    for item in items:
        spec = getattr(item, "callspec", None)
        dev = spec.params.get("device") if spec is not None else None
        if isinstance(dev, str) and dev.startswith("cuda"):
            item.add_marker(pytest.mark.cuda)
        if standin and "local_ray" in getattr(item, "fixturenames", ()) and item.get_closest_marker("cuda"):
            item.add_marker(pytest.mark.skip(reason="the CuPy stand-in lives in the test process only: Ray's "
                                                    "worker processes see no GPU"))


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
