"""``polydl evaluate``, ``predict``, ``schedules`` and ``info``."""
import csv
import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from cli_helpers import TINY, assert_one_line_error, cli, invoke

import polydl


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmd") / "r"
    r = invoke("train", *TINY, "--out", out, "-q")
    assert r.exit_code == 0, r.output
    return out


# ---------------------------------------------------------------------------- evaluate
def test_evaluate_prints_loss_accuracy_and_confusion_matrix(run_dir):
    r = invoke("evaluate", run_dir)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith("moons test split (40 of 200 samples): loss ") and "accuracy " in lines[0]
    assert lines[1].startswith("confusion matrix")
    assert lines[2].split() == ["true\\pred", "0", "1"]
    rows = [list(map(int, ln.split()[1:])) for ln in lines[3:5]]
    assert sum(map(sum, rows)) == 40
    summary = json.loads((run_dir / "summary.json").read_text())
    assert f"{100 * summary['test_accuracy']:.2f}%" in lines[0]


def test_evaluate_json_split_dataset_device(run_dir, tmp_path):
    r = invoke("evaluate", run_dir, "--json", "--split", "val", "--device", "cpu")
    res = json.loads(r.stdout)
    assert res["split"] == "val" and res["samples"] == 20 and len(res["confusion"]) == 2
    X = np.random.default_rng(0).normal(size=(12, 2))
    y = (X[:, 1] > 0).astype(int)
    (tmp_path / "d.csv").write_text("\n".join(f"{a},{b},{c}" for (a, b), c in zip(X, y)) + "\n")
    r = invoke("evaluate", run_dir, "--dataset", tmp_path / "d.csv", "--split", "train", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["dataset"] == "d.csv" and res["samples"] == 9  # 12 less the run's 20% test and 10% val
    (tmp_path / "t.csv").write_text("f1,lab,f2\n" + "\n".join(f"{a},{c},{b}" for (a, b), c in zip(X, y)) + "\n")
    r = invoke("evaluate", run_dir, "--dataset", tmp_path / "t.csv", "--target", "lab", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["samples"] == 12  # another file: all of it


def test_evaluate_bad_input(run_dir, tmp_path):
    assert_one_line_error(invoke("evaluate", tmp_path), 2, "not a polydl run directory")
    assert_one_line_error(invoke("evaluate", run_dir, "--dataset", "digits"), 2, "64 features per sample, but the model takes 2")
    assert_one_line_error(invoke("evaluate", run_dir, "--dataset", tmp_path / "none.npz"), 2, "not found")
    assert_one_line_error(invoke("evaluate", run_dir, "--split", "everything"), 2, "'everything' is not one of")


def test_evaluate_split_all_uses_every_sample_and_says_which(run_dir, tmp_path):
    """Another file is scored whole by default (--split all); --split test takes the test split
    of it, split like the run's data (a fifth of it), and the first line says which samples were
    used either way."""
    X = np.random.default_rng(3).normal(size=(200, 2))
    y = (X[:, 0] > 0).astype(int)
    np.savez(tmp_path / "other.npz", X=X, y=y)
    r = invoke("evaluate", run_dir, "--dataset", tmp_path / "other.npz", "--split", "test")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("other.npz test split (40 of 200 samples)")
    assert invoke("evaluate", run_dir, "--dataset", tmp_path / "other.npz").stdout.startswith("other.npz, all 200 samples")
    r = invoke("evaluate", run_dir, "--dataset", tmp_path / "other.npz", "--split", "all")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("other.npz, all 200 samples")
    rows = [list(map(int, ln.split()[1:])) for ln in r.stdout.splitlines()[3:5]]
    assert sum(map(sum, rows)) == 200
    res = json.loads(invoke("evaluate", run_dir, "--split", "all", "--json").stdout)
    assert res["split"] == "all" and res["samples"] == res["total_samples"] == 200
    assert invoke("evaluate", run_dir).stdout.startswith("moons test split (40 of 200 samples)")


# ---------------------------------------------------------------------------- predict
def test_predict_to_csv_file(run_dir, tmp_path):
    X = np.random.default_rng(2).normal(size=(6, 2))
    np.savez(tmp_path / "x.npz", X=X)
    out = tmp_path / "predictions.csv"
    r = invoke("predict", run_dir, tmp_path / "x.npz", "--out", out)
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == f"6 predictions written to {out}"
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["class", "p_0", "p_1"] and len(rows) == 7
    for row in rows[1:]:
        p = np.array(row[1:], dtype=float)
        assert abs(p.sum() - 1) < 1e-4 and int(row[0]) == p.argmax()
    assert_one_line_error(invoke("predict", run_dir, tmp_path / "x.npz", "--out", out), 2, "--overwrite")
    assert invoke("predict", run_dir, tmp_path / "x.npz", "--out", out, "--overwrite", "--device", "cpu").exit_code == 0


def test_predict_csv_to_stdout(run_dir, tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n0.1,0.2\n-1,3\n")
    r = invoke("predict", run_dir, tmp_path / "x.csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["class", "p_0", "p_1"] and len(rows) == 3


def test_predict_bad_input(run_dir, tmp_path):
    (tmp_path / "wide.csv").write_text("1,2,3,4\n")
    assert_one_line_error(invoke("predict", run_dir, tmp_path / "wide.csv"), 2, "4 features per sample, but the model takes 2")
    assert_one_line_error(invoke("predict", run_dir, tmp_path / "none.csv"), 2, "input file not found")
    (tmp_path / "nan.csv").write_text("1,nan\n")
    assert_one_line_error(invoke("predict", run_dir, tmp_path / "nan.csv"), 2, "NaN")
    np.savez(tmp_path / "x.npz", X=np.zeros((2, 2)))
    assert_one_line_error(invoke("predict", run_dir, tmp_path / "x.npz", "--out", tmp_path / "no" / "p.csv"), 2,
                          "does not exist")
    assert_one_line_error(invoke("predict", tmp_path, tmp_path / "x.npz"), 2, "not a polydl run directory")


# ---------------------------------------------------------------------------- class names
_CENTRES = {"cat": (0.0, 0.0), "dog": (4.0, 0.0), "bird": (0.0, 4.0)}


def _animals(path, kinds, n, seed=0):
    """A .csv of two features and a label column ``kind`` of class names, cycling through ``kinds``."""
    rng = np.random.default_rng(seed)
    lines = ["a,b,kind"]
    for i in range(n):
        k = kinds[i % len(kinds)]
        x = rng.normal(size=2) * 0.5 + _CENTRES[k]
        lines.append(f"{x[0]:.4f},{x[1]:.4f},{k}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def animals_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("animals")
    data = _animals(root / "animals.csv", ["cat", "dog", "bird"], 150)
    r = invoke("train", "--dataset", data, "--hidden", "8", "--epochs", "15", "--batch-size", "16", "--lr", "0.05",
               "--no-plot", "--out", root / "r", "-q")
    assert r.exit_code == 0, r.output
    return root / "r"


def test_class_names_are_kept_in_the_run(animals_run):
    from polydl.training import load_model
    summary = json.loads((animals_run / "summary.json").read_text())
    assert summary["class_names"] == ["bird", "cat", "dog"]  # sorted: index i is the i-th name
    assert load_model(animals_run).class_names == ["bird", "cat", "dog"]
    assert invoke("evaluate", animals_run, "--json").stdout.count('"class_names": ["bird", "cat", "dog"]') == 1


def test_evaluate_heads_the_confusion_matrix_with_the_class_names(animals_run):
    r = invoke("evaluate", animals_run)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[2].split() == ["true\\pred", "bird", "cat", "dog"]
    assert [ln.split()[0] for ln in lines[3:6]] == ["bird", "cat", "dog"]
    assert sum(int(v) for ln in lines[3:6] for v in ln.split()[1:]) == 30


def test_evaluate_numbers_another_files_names_as_the_run_did(animals_run, tmp_path):
    """dog and cat alone would be 0 and 1 of that file; the run's numbering makes them 2 and 1."""
    other = _animals(tmp_path / "pets.csv", ["dog", "cat"], 40, seed=5)
    res = json.loads(invoke("evaluate", animals_run, "--dataset", other, "--split", "all", "--json").stdout)
    confusion = np.array(res["confusion"])
    assert confusion.shape == (3, 3) and confusion[0].sum() == 0
    assert confusion[1].sum() == confusion[2].sum() == 20
    assert res["accuracy"] > 0.9  # the classes are far apart: a mix-up of the numbering would show
    _animals(tmp_path / "fish.csv", ["cat", "dog"], 6)
    (tmp_path / "fish.csv").write_text((tmp_path / "fish.csv").read_text() + "0.5,0.5,fish\n")
    assert_one_line_error(invoke("evaluate", animals_run, "--dataset", tmp_path / "fish.csv", "--split", "all"), 2,
                          "class name 'fish' (sample 7) is not a class of the run, which was trained on bird, cat, "
                          "dog; remove those samples or train a run that has that class")


def test_evaluate_refuses_names_for_a_run_trained_on_numbers(run_dir, tmp_path):
    data = tmp_path / "named.csv"
    data.write_text("a,b,kind\n0.1,0.2,cat\n0.3,0.1,dog\n-1,2,cat\n")
    assert_one_line_error(invoke("evaluate", run_dir, "--dataset", data, "--split", "all"), 2,
                          "labels its samples with class names (cat, dog), but the run in",
                          "was trained on class numbers 0..1; label them with those numbers")
    assert "class_names" not in json.loads((run_dir / "summary.json").read_text())


def test_predict_writes_the_class_names(animals_run, tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n0.1,-0.2\n4.1,0.3\n0.2,3.9\n")
    r = invoke("predict", animals_run, tmp_path / "x.csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["class", "p_bird", "p_cat", "p_dog"]
    assert [row[0] for row in rows[1:]] == ["cat", "dog", "bird"]
    for row in rows[1:]:
        p = np.array(row[1:], dtype=float)
        assert abs(p.sum() - 1) < 1e-4 and rows[0][1 + p.argmax()] == f"p_{row[0]}"
    from polydl.training import predict
    result = predict(animals_run, [[0.1, -0.2]])
    classes, probs = result
    assert result.labels == ["cat"] and result.class_names == ["bird", "cat", "dog"] and classes.tolist() == [1]


# ---------------------------------------------------------------------------- schedules
def test_schedules_lists_every_registered_schedule_with_parameters():
    r = invoke("schedules")
    assert r.exit_code == 0
    listed = {ln.split()[0]: ln for ln in r.stdout.splitlines()}
    assert set(listed) == set(polydl.schedules.names())
    assert "decay_rate=1.0" in listed["inverse_time"] and "lr0=0.01" in listed["inverse_time"]
    assert "factor=0.5" in listed["staircase"] and "every=10" in listed["staircase"]
    # each with its formula, the first line of the factory's docstring
    assert listed["inverse_time"].endswith("  α = α0 / (1 + decay_rate · e)")
    assert listed["constant"].endswith("  α = α0")
    assert "  α = α0 · factor^⌊(e − 1)/every⌋" in listed["staircase"]


def test_schedules_show_prints_alpha_per_epoch(tmp_path):
    r = invoke("schedules", "show", "inverse_time", "--lr0", "0.2", "--epochs", "20", "--param", "decay_rate=1")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "inverse_time(lr0=0.2, decay_rate=1)" and lines[1] == "epoch  lr"
    values = [float(ln.split()[1]) for ln in lines[2:]]
    assert len(values) == 20
    np.testing.assert_allclose(values, [0.2 / (1 + e) for e in range(1, 21)], rtol=1e-5)
    r = invoke("schedules", "show", "inverse_sqrt_step", "--lr0", "1", "--epochs", "3", "--steps-per-epoch", "4")
    values = [float(ln.split()[1]) for ln in r.stdout.splitlines()[2:]]
    np.testing.assert_allclose(values, [1 / np.sqrt(t) for t in (1, 5, 9)], rtol=1e-5)


def test_schedules_show_plot(tmp_path):
    pytest.importorskip("matplotlib")
    r = invoke("schedules", "show", "staircase", "--epochs", "5", "--plot", tmp_path / "lr.png")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"
    assert f"plot written to {tmp_path / 'lr.png'}" in r.stdout


def test_schedules_show_bad_input():
    assert_one_line_error(invoke("schedules", "show", "nope"), 2, "unknown schedule 'nope'", "inverse_time")
    assert_one_line_error(invoke("schedules", "show", "inverse_time", "--param", "k=1"), 2, "has no parameter 'k'")
    assert_one_line_error(invoke("schedules", "show", "constant", "--epochs", "0"), 2, "--epochs must be in [1, 100,000]")
    assert_one_line_error(invoke("schedules", "show", "constant", "--epochs", "100000000000"), 2,
                          "--epochs must be in [1, 100,000] (the most this shows), not 100,000,000,000")
    assert_one_line_error(invoke("schedules", "show", "constant", "--steps-per-epoch", "0"), 2, "--steps-per-epoch")
    assert_one_line_error(invoke("schedules", "show", "constant", "--lr0", "-1"), 2, "lr0")
    assert_one_line_error(invoke("schedules", "nope"), 2, "No such command 'nope'")


def test_schedules_show_without_matplotlib_prints_the_table_and_says_what_to_install(tmp_path):
    """In a process where matplotlib cannot be imported (as in an install without it)."""
    code = ("import sys; sys.modules['matplotlib'] = None; sys.argv[0] = 'polydl'; "
            "from polydl_cli.main import main; main()")
    r = subprocess.run([sys.executable, "-c", code, "schedules", "show", "constant", "--epochs", "3", "--plot",
                        tmp_path / "x.png"], capture_output=True, text=True)
    assert_one_line_error(r, 2, f"cannot draw {tmp_path / 'x.png'}", "pip install 'polydl[plot]'")
    assert r.stdout.splitlines() == ["constant(lr0=0.01)", "epoch  lr", "    1  0.01", "    2  0.01", "    3  0.01"]
    assert not (tmp_path / "x.png").exists()


def test_schedules_show_plot_replaces_a_file_only_with_overwrite(tmp_path):
    pytest.importorskip("matplotlib")
    mine = tmp_path / "mine.png"
    mine.write_text("the user's own file")
    r = invoke("schedules", "show", "constant", "--epochs", "3", "--plot", mine)
    assert_one_line_error(r, 2, f"{mine} already exists; pass --overwrite to replace it")
    assert r.stdout == "" and mine.read_text() == "the user's own file"
    r = invoke("schedules", "show", "constant", "--epochs", "3", "--plot", mine, "--overwrite")
    assert r.exit_code == 0, r.output
    assert mine.read_bytes()[:4] == b"\x89PNG"
    assert_one_line_error(invoke("schedules", "show", "constant", "--plot", tmp_path), 2, "is a directory")


# ---------------------------------------------------------------------------- info
def test_info():
    r = cli("info")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"polydl  {polydl.__version__}" in out
    assert f"NumPy   {np.__version__}" in out
    cupy = polydl.backend.cupy_version()
    assert f"CuPy    {cupy or 'not installed'}" in out
    assert "CUDA devices:" in out
    assert "plugins:" in out


def test_info_names_numba_and_the_cpu_kernel_mode(monkeypatch):
    """The line after NumPy's: Numba's version and the mode of the fused CPU kernels; "not used"
    when POLYDL_CPU_KERNELS=off (read as the process starts). --check-kernels compiles one."""
    numba = pytest.importorskip("numba")
    from polydl import cpu_kernels

    for mode in ("auto", "on"):
        with cpu_kernels.use(mode):
            r = invoke("info")
        assert r.exit_code == 0, r.output
        assert r.stdout.splitlines()[3] == (f"Numba   {numba.__version__} (fused CPU kernels: {mode}; "
                                            "polydl info --check-kernels compiles one)")
    r = invoke("info", "--check-kernels")
    assert r.exit_code == 0, r.output
    assert re.fullmatch(rf"Numba   {re.escape(numba.__version__)} \(fused CPU kernels: auto; one compiled and run "
                        r"in [0-9.]+s\)", r.stdout.splitlines()[3])
    monkeypatch.setenv("POLYDL_CPU_KERNELS", "off")
    r = cli("info")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[3] == "Numba   not used (POLYDL_CPU_KERNELS=off)"


def test_info_without_numba(monkeypatch):
    from polydl import cpu_kernels

    monkeypatch.setattr(cpu_kernels, "installed_version", lambda: None)  # as if it were not installed
    monkeypatch.setattr(cpu_kernels, "_numba", lambda: None)
    with cpu_kernels.use("auto"):
        r = invoke("info")
    assert r.exit_code == 0, r.output
    assert "Numba   not installed (fused CPU kernels off; pip install numba)\n" in r.stdout
    with cpu_kernels.use("on"):  # every fused op would fail: say so
        r = invoke("info")
    assert "Numba   not installed (every fused op will fail: pip install numba or set " \
           "POLYDL_CPU_KERNELS=auto)\n" in r.stdout


def test_info_tells_a_broken_numba(monkeypatch):
    """Installed but failing to import: known once this process has tried (a fused op ran), and
    always with --check-kernels, which then exits with status 1."""
    from polydl import cpu_kernels

    monkeypatch.setattr(cpu_kernels, "installed_version", lambda: "0.60.0")
    monkeypatch.setattr(cpu_kernels, "_numba", lambda: None)
    monkeypatch.setattr(cpu_kernels, "_NUMBA_ERROR", ImportError("numpy version mismatch"))
    with cpu_kernels.use("auto"):
        r = invoke("info")
        assert r.exit_code == 0, r.output
        assert "Numba   fails to import (numpy version mismatch) (fused CPU kernels off; pip install --upgrade " \
               "numba)\n" in r.stdout
        r = invoke("info", "--check-kernels")
    assert r.exit_code == 1
    assert "Numba   fails to import (numpy version mismatch) (fused CPU kernels off;" in r.stdout


@pytest.mark.parametrize("args", [["info"], ["schedules"], ["plugins"], ["--help"], ["train", "--help"],
                                  ["info", "--check-kernels"]], ids=" ".join)
def test_quick_commands_do_not_import_numba(args):
    """Importing Numba costs 0.3–0.6 s: only a command that runs a fused kernel pays it (and
    --check-kernels, which is there to import it). Checked in a fresh process at its exit."""
    imports = args == ["info", "--check-kernels"]
    if imports:
        pytest.importorskip("numba")
    code = ("import atexit, sys; atexit.register(lambda: sys.stderr.write('numba in sys.modules: %s\\n' % "
            "('numba' in sys.modules))); sys.argv[0] = 'polydl'; from polydl_cli.main import main; main()")
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1] == f"numba in sys.modules: {imports}"


def test_info_lists_loaded_plugins(monkeypatch):
    from polydl import schedules

    def fake(lr0=0.01):
        return schedules.constant(lr0)

    schedules.registry.register("fake_sched_for_info", fake, plugin="fakeplugin", distribution="polydl-fake",
                                version="9.9")
    try:
        r = invoke("info")
        assert r.exit_code == 0, r.output
        assert "  fakeplugin (polydl-fake 9.9): schedule fake_sched_for_info" in r.stdout
    finally:
        schedules.registry.unregister("fake_sched_for_info")
    r = invoke("info")
    assert "fake_sched_for_info" not in r.stdout


def test_schedules_show_takes_lr0_from_its_own_option():
    assert_one_line_error(invoke("schedules", "show", "constant", "--param", "lr0=1"), 2,
                          "--param cannot set lr0: give it with --lr0")


def test_schedules_marks_plugin_schedules():
    from polydl import schedules

    schedules.registry.register("fake_sched_for_list", lambda lr0=0.01: schedules.constant(lr0), plugin="fakeplugin")
    try:
        listed = {ln.split()[0]: ln for ln in invoke("schedules").stdout.splitlines()}
        assert listed["fake_sched_for_list"].endswith("  [plugin fakeplugin]")
        assert "[plugin" not in listed["constant"]
    finally:
        schedules.registry.unregister("fake_sched_for_list")


def test_info_lists_cuda_devices(monkeypatch):
    from polydl import backend
    monkeypatch.setattr(backend, "cuda_devices", lambda: [
        {"index": 0, "name": "NVIDIA H100", "memory_gib": 79.2, "compute_capability": "9.0"},
        {"index": 1, "name": "unknown (driver error)"}])
    r = invoke("info")
    assert r.exit_code == 0, r.output
    assert "CUDA devices:\n  cuda:0 NVIDIA H100 (79.2 GiB, compute capability 9.0)\n  cuda:1 unknown (driver error)\n" \
        in r.stdout


def test_outputs_that_cannot_be_written(run_dir, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    r = invoke("schedules", "show", "constant", "--plot", tmp_path / "no" / "lr.png")
    assert_one_line_error(r, 2, f"cannot write {tmp_path / 'no' / 'lr.png'}: the directory {tmp_path / 'no'} "
                                "does not exist")
    assert r.stdout == ""
    np.savez(tmp_path / "x.npz", X=np.zeros((2, 2)))
    (tmp_path / "p.csv").write_text("kept")
    from polydl.training import checkpoint

    def disk_full(path, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "atomic_write", disk_full)
    monkeypatch.setattr("polydl_cli.evaluate.atomic_write", disk_full)
    r = invoke("predict", run_dir, tmp_path / "x.npz", "--out", tmp_path / "p.csv", "--overwrite")
    assert_one_line_error(r, 2, f"cannot write {tmp_path / 'p.csv'}: No space left on device")
    assert (tmp_path / "p.csv").read_text() == "kept"


def test_a_closed_stdout_ends_a_command_quietly():
    """``polydl ... | head -1``: the reader closes the pipe after the first line (of more than a
    pipe holds); the command ends without a word on stderr, with the status of a Unix tool killed
    by SIGPIPE (128 + 13)."""
    p = subprocess.Popen([sys.executable, "-m", "polydl_cli.main", "schedules", "show", "inverse_time", "--epochs",
                          "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline().strip()
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141 and err == "", err


def test_an_os_error_no_command_handles_is_one_line_not_a_traceback():
    """Every ``OSError`` ends as one ``Error:`` line naming the file and the reason, exit 1: a
    command of the same group whose filesystem call fails where nothing turned it into a message."""
    import click
    from click.testing import CliRunner

    from polydl_cli.main import PolydlGroup

    @click.group(cls=PolydlGroup)
    def group():
        pass

    @group.command()
    @click.argument("path")
    def write(path):
        with open(path, "w") as fh:  # a directory: IsADirectoryError, an OSError of no command's
            fh.write("x")

    result = CliRunner().invoke(group, ["write", "/"])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot use /: Is a directory"), result.output
    assert "Traceback" not in result.output
