"""docs/plugins.md works as written: its files are written out and pip-installed, its shell
commands and its Python examples are run, and `polydl plugins` shows what the page says."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from plugin_fakes import DOC, child_env  # noqa: E402
from plugin_fakes import doc_blocks as _blocks  # noqa: E402
from plugin_fakes import doc_files as _files  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_readme_links_the_plugin_guide():
    readme = (REPO / "README.md").read_text()
    assert "(docs/plugins.md)" in readme and "## Plugins" in readme


def test_doc_names_every_hook_env_var_and_command():
    text = DOC.read_text()
    from polydl import plugins
    for word in [*plugins.HOOKS, plugins.STRICT_ENV, plugins.LOAD_ENV, plugins.DISABLE_ENV, plugins.PREFER_ENV,
                 "polydl plugins --json", "override=True", "registered_plugin", "register(name, obj, *, override=False)",
                 "polydl.testing.devices()", "polydl.testing.require_device(name)", "--normalizer tricks:rmsnorm",
                 "position.epochs", "no `dtype` or `device`", "pip install -e /path/to/polydl"]:
        assert word in text, word


def test_doc_population_contract_example_runs():
    """The population contract (section 3): its example declares ``population`` for a loss and a
    normalizer, and shows a loss without it applied member by member, with the same values."""
    text = DOC.read_text()
    for word in ["### Populations", "`population=P`", "`(P, m, C)`", "`(P,)`", "member by member",
                 "members=P", "takes no population argument"]:
        assert word in text, word
    code = next(text for lang, text in _blocks() if lang == "python" and "population=None" in text)
    exec(compile(code, str(DOC), "exec"), {"__name__": "plugins_md_populations"})
    import polydl
    assert "smooth_pop" not in polydl.losses.names()  # registered_plugin put the registries back


def test_doc_population_note_is_the_one_training_gives():
    import polydl
    from polydl.testing import registered_plugin
    from polydl.training import TrainConfig
    from polydl.training.build import build_loss
    from polydl.training.stacked import member_by_member_note

    class Tricks:
        @polydl.hookimpl
        def polydl_register_losses(self, register):
            register("smooth_ce", lambda smoothing=0.1: polydl.losses.get("softmax_cross_entropy"))

    line = next(ln.strip() for ln in DOC.read_text().splitlines() if ln.strip().startswith("note: the loss 'smooth_ce'"))
    with registered_plugin(Tricks(), "tricks", distribution="polydl-tricks", version="0.1.0"):
        config = TrainConfig(loss="smooth_ce")
        loss = build_loss(config, population=3)
        assert isinstance(loss, polydl.losses.MemberByMember)
        assert line == "note: " + member_by_member_note(config, loss, polydl.nn.mlp([2, 3, 2], population=3))


def test_doc_example_files_are_complete():
    files = _files(_blocks())
    assert set(files) == {"polydl-tricks/pyproject.toml", "polydl-tricks/polydl_tricks.py",
                          "polydl-tricks/tests/test_tricks.py", "polydl-tricks/tests/conftest.py"}
    assert '[project.entry-points.polydl]\ntricks = "polydl_tricks"' in files["polydl-tricks/pyproject.toml"]


@pytest.mark.slow
def test_doc_walkthrough_runs(tmp_path):
    blocks = _blocks()
    for rel, text in _files(blocks).items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    site = tmp_path / "site"
    env = child_env(site)
    shell = [line for lang, text in blocks if lang == "bash" for line in text.splitlines() if line.strip()]
    ran = []
    for line in shell:
        command = line.split("#")[0].strip()
        words = shlex.split(command)
        if words[:2] == ["pip", "install"]:
            # the page installs into the active environment; here: a real install into a folder of its own
            src = [w for w in words[2:] if not w.startswith("-")]
            cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), *src]
            try:
                import setuptools  # noqa: F401
                cmd.append("--no-build-isolation")
            except ImportError:
                pass
        elif words[0] == "polydl":
            cmd = [sys.executable, "-m", "polydl_cli.main", *words[1:]]
        elif words[0] == "pytest":
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *words[1:]]
        else:  # pragma: no cover - a new kind of command in the page needs handling here
            raise AssertionError(f"unexpected command in docs/plugins.md: {line}")
        res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, f"{command}\n{res.stdout}\n{res.stderr}"
        assert "Warning" not in res.stderr, res.stderr
        ran.append((words[:2], res.stdout))
    assert [w for w, _ in ran][:3] == [["pip", "install"], ["polydl", "plugins"], ["polydl", "train"]]
    assert ran[-1][0] == ["pytest", "polydl-tricks/tests"] and " passed" in ran[-1][1]

    listing = ran[1][1]  # the sample listing in the page matches the real one
    sample = next(text for lang, text in blocks if lang == "text" and "polydl-tricks 0.1.0" in text)
    for line in sample.splitlines():
        assert line.rstrip() in listing, line
    metrics = [json.loads(s) for s in (tmp_path / "runs" / "tricks" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 5 and metrics[-1]["lr"] == 0.0
    import polydl  # the components the page shows are those the run recorded
    config = (tmp_path / "runs" / "tricks" / "config.toml").read_text()
    sample = next(text for lang, text in blocks if lang == "text" and text.startswith("# components"))
    assert sample.replace("polydl 0.1.0", f"polydl {polydl.__version__}") in config
    tally = ran[-1][1].splitlines()[-1]  # the device test ran on the CPU, and on CUDA or skipped it
    assert tally.startswith("6 passed") or tally.startswith("5 passed, 1 skipped"), tally

    python_blocks = [text for lang, text in blocks if lang == "python" and not text.startswith("# file: ")]
    assert len(python_blocks) >= 4
    for code in python_blocks:
        res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 0, f"{code}\n{res.stderr}"
    first = subprocess.run([sys.executable, "-c", python_blocks[0]], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
    assert first.stdout.splitlines()[0] == "[0.1, 0.06, 0.01]"
    assert "plugin='tricks', distribution='polydl-tricks', version='0.1.0'" in first.stdout
