"""``benchmarks/run.py`` runs end to end and reports what it measured (here without PyTorch:
the polydl sides against the GEMM floor)."""
import json
import os
import subprocess
import sys
from pathlib import Path

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
