"""Compiling the fused CPU kernels on a fresh install (``polydl.cpu_kernel_compile``): the note
while they compile (never when they load from the cache, never with the kernels off), only the
kernels a run calls, each for the argument types it passes, and the helper process that compiles
an op's later kernels ahead. Each case runs real processes on an empty Numba cache of its own
(``NUMBA_CACHE_DIR``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from polydl import cpu_kernels

pytest.importorskip("numba")
NOTE = "Compiling polydl's CPU kernels (once per install)..."
#: the kernels of the default model (BatchNorm MLP, ReLU fused into the batch norm, Adam) and loss
DEFAULT_RUN = {"bn_forward_train", "bn_running", "bn_backward_train", "bn_forward_eval", "softmax_shift",
               "softmax_finish", "softmax_xent_backward", "sum_rows", "adam"}


def run(args, cache, **env):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NUMBA_CACHE_DIR": str(cache), "POLYDL_CPU_KERNELS": "auto", **env})


def train(tmp_path, name, cache, *extra, **env):
    r = run(["-m", "polydl_cli.main", "train", "--epochs", "2", "--no-plot", "--out", tmp_path / name, *extra], cache,
            **env)
    assert r.returncode == 0, r.stderr
    return r


def cached(cache: Path) -> dict:
    """{kernel: number of compiled signatures} in a Numba cache directory."""
    import pickle

    found = {}
    for index in cache.rglob("cpu_kernel_sources*.nbi"):
        with open(index, "rb") as f:
            pickle.load(f)  # Numba's version
            _, overloads = pickle.loads(f.read())
        found[index.name.split(".")[1].rsplit("-", 1)[0].lstrip("_")] = len(overloads)
    return found


def losses(run_dir: Path) -> list:
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_fresh_install_notes_the_compile_once_then_loads_the_kernels(tmp_path):
    """The first default run compiles exactly the kernels it calls, one signature each (no
    convolution's, no other dtype's), saying so once on stderr as a note; the second loads them
    from the cache without a word; both train the same bits."""
    cache = tmp_path / "numba"
    first = train(tmp_path, "a", cache)
    assert first.stderr.splitlines().count(f"note: {NOTE}") == 1, first.stderr
    assert NOTE not in first.stdout
    assert cached(cache) == dict.fromkeys(DEFAULT_RUN, 1)
    second = train(tmp_path, "b", cache)
    assert NOTE not in second.stderr + second.stdout, second.stderr
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    quiet = train(tmp_path, "c", tmp_path / "numba2", "--quiet")  # a cold cache, and --quiet: the summary alone
    assert quiet.stderr == "" and len(quiet.stdout.splitlines()) == 1, quiet.stderr
    assert losses(tmp_path / "a") == losses(tmp_path / "c")
    # every kernel compiled in the run itself, no helper: the same bits
    alone = run(["-c", "import sys; from polydl import cpu_kernel_compile as c; c.can_fork = lambda: False; "
                 "from polydl_cli.main import main; main(sys.argv[1:])", "train", "--epochs", "2", "--no-plot", "-q",
                 "--out", tmp_path / "d"], tmp_path / "numba3")
    assert alone.returncode == 0, alone.stderr
    assert losses(tmp_path / "a") == losses(tmp_path / "d")


def test_evaluate_json_keeps_stdout_machine_readable(tmp_path):
    """A cold cache under ``polydl evaluate --json``: the note on stderr, the JSON alone on stdout."""
    train(tmp_path, "a", tmp_path / "numba", "--quiet")
    r = run(["-m", "polydl_cli.main", "evaluate", tmp_path / "a", "--json"], tmp_path / "numba2")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines().count(NOTE) == 1, r.stderr
    assert json.loads(r.stdout)["accuracy"] > 0.5


def test_kernels_off_compile_nothing(tmp_path):
    cache = tmp_path / "numba"
    r = train(tmp_path, "a", cache, POLYDL_CPU_KERNELS="off")
    assert NOTE not in r.stderr and not cached(cache)


SCRIPT = """
import json
import numpy as np
from numba.core import event
import polydl
from polydl import cpu_kernels, nn, optim

here = []  # the polydl kernels compiled in this process


class Record(event.Listener):
    def on_start(self, ev):
        fn = ev.data["dispatcher"].py_func
        if fn.__module__.startswith("polydl"):
            here.append(fn.__name__.lstrip("_"))

    def on_end(self, ev):
        pass


event.register("numba:compile", Record())
notes = []
rng = np.random.default_rng(0)
model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm(8), nn.ReLU(), nn.Linear(8, 3))
x = polydl.Tensor(rng.normal(size=(16, 5)).astype(np.float32))
weights = polydl.Tensor(rng.normal(size=(16, 3)).astype(np.float32))
opt = optim.Adam(model.parameters(), lr=0.01)
with cpu_kernels.notes(notes.append):
    for _ in range(3):
        opt.zero_grad()
        (model(x) * weights).sum().backward()
        opt.step()
    model.eval()
    y = model(x).numpy()
print(json.dumps({"notes": notes, "here": sorted(set(here)), "out": y.tobytes().hex()}))
"""


def test_an_ops_later_kernels_compile_ahead_in_a_helper_process(tmp_path):
    """On a cold cache batch normalization's first forward pass starts a helper that compiles its
    backward pass and its evaluation form into the cache: this process compiles the forward pass
    (and the bias gradient's row sum, and Adam's step) and loads the other two, with the same
    results as a process that loads every kernel."""
    cache = tmp_path / "numba"
    r = run(["-c", SCRIPT], cache)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    first = json.loads(r.stdout)
    assert first["notes"] == [NOTE]  # through notes(), once
    assert "bn_forward_train" in first["here"]
    if sys.platform.startswith("linux"):
        assert first["here"] == ["adam", "bn_forward_train", "sum_rows"]
    assert cached(cache) == dict.fromkeys(["adam", "bn_forward_train", "bn_running", "bn_backward_train",
                                           "bn_forward_eval", "sum_rows"], 1)
    again = run(["-c", SCRIPT], cache)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"notes": [], "here": [], "out": first["out"]}


def test_notes_goes_to_the_given_function_then_back():
    from polydl import cpu_kernel_compile

    default, seen = cpu_kernel_compile.NOTE_TO[0], []
    with cpu_kernels.notes(seen.append):
        assert cpu_kernel_compile.NOTE_TO[0] == seen.append
        with cpu_kernels.notes(None):
            assert cpu_kernel_compile.NOTE_TO[0] is None
        assert cpu_kernel_compile.NOTE_TO[0] == seen.append
    assert cpu_kernel_compile.NOTE_TO[0] is default
    try:
        cpu_kernels.notes(None)  # for the rest of the process, as a tune worker does
        assert cpu_kernel_compile.NOTE_TO[0] is None
    finally:
        cpu_kernel_compile.NOTE_TO[0] = default
