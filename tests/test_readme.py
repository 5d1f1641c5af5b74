"""The README is accurate: its flags exist, every ``polydl train`` flag is in it, the run files it
names are the ones a run writes, its set-up commands are the ones CI runs, and its error examples
are what ``polydl`` prints."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import click
import pytest

from polydl.training import checkpoint

sys.path.insert(0, str(Path(__file__).parent / "cli"))
from cli_helpers import invoke  # noqa: E402

from polydl_cli.main import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SETUP = "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && polydl train"
TESTS = "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' && bash scripts/test"


def _options(command: click.Command) -> set[str]:
    # command.params, not get_params(click.Context(command)): click caches the help option a
    # context makes, and a bare context would leave every command with --help but not -h
    out = {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")} | {"--help"}
    for sub in getattr(command, "commands", {}).values():
        out |= _options(sub)
    return out


FLAG = r"(?<![\w-])(--[a-z][a-z0-9-]*)"
#: lines of Ray's own command (its cluster recipe), whose flags are Ray's
RAY_START = re.compile(r"ray start[^`\n]*")
#: pytest's command lines, whose flags are pytest's or this test suite's own (tests/conftest.py)
PYTEST = re.compile(r"pytest [^`\n]*")


def test_every_flag_the_readme_names_exists():
    known = _options(main)
    named = set(re.findall(FLAG, PYTEST.sub("", RAY_START.sub("", README))))
    assert named - known == set()


def test_the_pytest_flags_the_readme_names_are_the_suites(pytestconfig):
    named = {f for line in PYTEST.findall(README) for f in re.findall(FLAG, line)}
    assert "--cuda-standin" in named
    for flag in named:
        pytestconfig.getoption(flag)  # ValueError for a flag no plugin or conftest registers


def test_the_ray_start_flags_the_readme_names_are_rays():
    scripts = pytest.importorskip("ray.scripts.scripts")
    named = {f for line in RAY_START.findall(README) for f in re.findall(FLAG, line.split("#")[0])}
    assert {"--head", "--address", "--port"} <= named
    assert named - _options(scripts.start) == set()


def test_the_readme_names_every_train_flag():
    missing = {o for o in _options(main.commands["train"]) if not re.search(rf"{o}(?![\w-])", README)}
    assert missing == set()


def test_the_run_files_are_the_ones_a_run_writes():
    section = README[README.index("The run directory"):README.index("**Crashes and babysitting.**")]
    assert set(re.findall(r"`([a-z_]+\.(?:toml|jsonl|npz|json|png))`", section)) == set(checkpoint.RUN_FILES)


def test_the_setup_commands_are_the_ones_ci_runs():
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    assert blocks[0].strip() == SETUP and blocks[1].strip() == TESTS
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m venv .venv" in ci and "pip install -q -e '.[test]'" in ci and "bash scripts/test" in ci
    assert "python -m pytest" in (ROOT / "scripts" / "test").read_text()


def _console_examples():
    for block in re.findall(r"```console\n(.*?)```", README, re.S):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("$ polydl ") and i + 1 < len(lines) and lines[i + 1].startswith("Error: "):
                yield line[len("$ polydl "):], lines[i + 1]


@pytest.mark.parametrize("command, expected", list(_console_examples()))
def test_the_error_examples_are_what_polydl_prints(command, expected, tmp_path, monkeypatch):
    if command.startswith("tune "):
        pytest.importorskip("optuna")  # without it, polydl tune says it needs Optuna before anything else
    monkeypatch.chdir(tmp_path)
    result = invoke(*command.split())
    assert result.exit_code == 2
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    assert re.fullmatch(pattern, result.stderr.strip()), (expected, result.stderr)
    assert list(tmp_path.iterdir()) == []


def test_there_are_error_examples():
    assert len(list(_console_examples())) >= 2


def test_the_toml_example_is_a_valid_configuration(tmp_path):
    (block,) = [b for b in re.findall(r"```toml\n(.*?)```", README, re.S) if b.startswith("# run.toml")]
    (tmp_path / "run.toml").write_text(block)
    result = invoke("train", "--config", tmp_path / "run.toml", "--epochs", "30", "--print-config")
    assert result.exit_code == 0, result.output
    assert 'dataset = "moons"' in result.stdout and "epochs = 30" in result.stdout and "every = 10" in result.stdout



def test_the_population_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    (block,) = [b for b in blocks if "population=32" in b]
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert scope["loss"].shape == (32,) and scope["scores"].shape == (32, 64, 10)
    assert scope["opt"].last_lr.shape == (32,)
