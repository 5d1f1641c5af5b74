"""``benchmarks/run.py`` runs end to end and reports what it measured (here without PyTorch:
the polydl sides against the GEMM floor)."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_runner_times_the_sides_and_writes_its_table(tmp_path):
    pytest.importorskip("numba")
    table, raw = tmp_path / "perf.md", tmp_path / "raw.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--workloads", "W1", "--reps", "2",
                        "--pause", "0", "--sides", "polydl,numpy,gemm", "--no-memory", "--no-overhead",
                        "--write", str(table), "--json", str(raw)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    data = json.loads(raw.read_text())
    (res,) = data["results"]
    assert res["workload"] == "W1" and res["batch"] == 32 and res["samples"] == 4000 // 32 * 32
    assert set(res["median_s"]) >= {"polydl", "polydl NumPy only", "GEMM floor"}
    assert all(len(v) == 2 and all(t > 0 for t in v) for v in res["all_s"].values())
    text = table.read_text()
    assert f"| W1 64-32-10 | 32 | {res['samples']} |" in text
    assert "polydl NumPy only" in text and f"Numba {data['versions']['numba']}" in text
    if "torch" not in data["versions"] or data["versions"]["torch"] == "not installed":
        assert "PyTorch is not installed" in r.stderr


def test_the_convolutional_workload_trains_lenet5_on_images():
    """C1's sides on a few batches: polydl trains the registered lenet5, the GEMM floor runs the
    products of the same step."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import conv

    shape, classes, batch, _ = conv.CONV_WORKLOADS["C1"]
    assert (shape, classes, batch) == ((1, 28, 28), 10, 128)
    X, y = conv.make_images(shape, classes, 2 * batch)
    side = conv.PolydlConvSide(shape, classes, batch, X, y, "cpu")
    assert side.model.num_parameters() == 61932 and side.epoch() > 0
    assert conv.ConvGemmFloor(shape, classes, batch, X, y, "cpu").epoch() == 0.0
    sides, sizes, _, _ = conv.conv_sides("C1", "cpu", {"gemm"})
    assert [s.name for s in sides] == ["GEMM floor"] and sizes == ("lenet5", "1×28×28", 10)


def _without_jax():
    if importlib.util.find_spec("jax") is not None:
        pytest.skip("JAX is installed here: its side would run")


def test_without_jax_the_jax_side_is_skipped_with_one_line(tmp_path):
    _without_jax()
    raw = tmp_path / "raw.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--workloads", "W1", "--reps", "1",
                        "--pause", "0", "--sides", "polydl,jax", "--no-memory", "--no-overhead", "--json", str(raw)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "JAX is not installed (pip install jax jaxlib): skipping the JAX side" in r.stderr
    (res,) = json.loads(raw.read_text())["results"]
    assert set(res["median_s"]) == {"polydl"} and res["compile_s"] == {}
    assert res["loss_after_first_epoch"]["polydl"] > 0
    assert "| polydl / JAX |" in r.stdout and "Traceback" not in r.stderr


def test_the_jax_reference_starts_from_polydl_s_weights():
    """``jax_mlp.initial_params``: the tree of a model's (or a population's) parameters, copied
    before training changes them."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import jax_mlp

    import polydl
    from polydl import nn

    polydl.manual_seed(0)
    model = nn.mlp((6, 5, 4, 3))
    tree = jax_mlp.initial_params(model)
    assert [sorted(layer) for layer in tree] == [["b", "g", "w"], ["b", "g", "w"], ["b", "w"]]
    assert [layer["w"].shape for layer in tree] == [(6, 5), (5, 4), (4, 3)]
    np.testing.assert_array_equal(tree[0]["w"], model.parameters()[0].data)
    model.parameters()[0].data[...] = 0  # a copy: training the polydl side leaves it as it was
    assert np.abs(tree[0]["w"]).min() > 0
    pop = jax_mlp.initial_params(nn.mlp((6, 5, 3), population=4))
    assert [layer["w"].shape for layer in pop] == [(4, 6, 5), (4, 5, 3)] and pop[0]["g"].shape == (4, 5)
