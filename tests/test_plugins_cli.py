"""``polydl plugins [--json]``: the listing, the JSON form, warnings, and the environment variables."""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from click.testing import CliRunner

import polydl
from polydl import plugins
from polydl_cli.plugins_cmd import plugins as plugins_command

sys.path.insert(0, str(Path(__file__).parent))
from plugin_fakes import make_dist, run_cli  # noqa: E402

GOOD = """
import polydl

def layer(num_features):
    return polydl.nn.Identity()

@polydl.hookimpl
def polydl_register_normalizers(register):
    register("batchnorm", layer, override=True)
    register("ident", layer)

@polydl.hookimpl
def polydl_register_losses(register):
    register("mse2", polydl.losses.MSE)
"""


def _fakes(root):
    make_dist(root, "polydl-good", "2.5", {"good": "fake_good"}, {"fake_good.py": GOOD})
    make_dist(root, "polydl-bad", "0.1", {"bad": "fake_bad"}, {"fake_bad.py": "import no_such_module_here\n"})
    return root


def _invoke(*args):
    result = CliRunner().invoke(plugins_command, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_lists_builtins_with_distribution_hooks_and_names(site):
    out = _invoke()
    assert f"polydl {polydl.__version__}: " in out.splitlines()[0] and "autoload on; strict off" in out
    for mod in plugins.BUILTIN_MODULES:
        assert f"{mod}  " in out
    assert f"built-in (polydl {polydl.__version__})" in out
    assert "  hooks: polydl_register_schedules\n  schedules: constant, inverse_time" in out
    assert "  normalizers: batchnorm (momentum, eps), none" in out and "  datasets: digits" in out and "  optimizers: sgd" in out


def test_lists_entry_point_plugins_overrides_and_warnings(site):
    _fakes(site)
    out = _invoke()
    assert "good" in out and "polydl-good 2.5  [fake_good]" in out
    assert "  hooks: polydl_register_losses, polydl_register_normalizers" in out
    assert "  normalizers: ident, batchnorm (override)" in out and "  losses: mse2" in out
    tail = out.split("\nwarnings (1 plugin(s) skipped; POLYDL_STRICT_PLUGINS=1 makes them errors):\n")[1]
    assert "plugin 'bad' (distribution polydl-bad 0.1) failed to load (fake_bad): ModuleNotFoundError" in tail


def test_json_output(site):
    _fakes(site)
    data = json.loads(_invoke("--json"))
    assert data == json.loads(json.dumps(plugins.report()))
    good = {p["name"]: p for p in data["plugins"]}["good"]
    assert good["distribution"] == "polydl-good" and good["version"] == "2.5" and good["source"] == "entry point"
    assert good["registered"] == {"normalizers": ["ident", "batchnorm"], "losses": ["mse2"]}
    assert good["overrides"] == {"normalizers": ["batchnorm"]}
    (bad,) = data["failed"]
    assert bad["name"] == "bad" and bad["distribution"] == "polydl-bad" and "no_such_module_here" in bad["error"]
    assert data["warnings"] == [bad["error"]]
    assert data["settings"] == {"strict": False, "autoload": True, "only": None, "prefer": None}


def test_settings_appear_in_the_header(site, monkeypatch):
    _fakes(site)
    monkeypatch.setenv("POLYDL_LOAD_PLUGINS", "good")
    out = _invoke()
    assert "only good (POLYDL_LOAD_PLUGINS)" in out and "warnings" not in out
    plugins.reset()
    monkeypatch.setenv("POLYDL_DISABLE_PLUGIN_AUTOLOAD", "1")
    out = _invoke()
    assert "autoload off (POLYDL_DISABLE_PLUGIN_AUTOLOAD)" in out and "fake_good" not in out
    assert out.splitlines()[0].startswith(f"polydl {polydl.__version__}: {len(plugins.BUILTIN_MODULES)} plugins")


def test_help_names_the_environment_variables():
    out = CliRunner().invoke(plugins_command, ["--help"]).output
    for var in ("POLYDL_STRICT_PLUGINS", "POLYDL_LOAD_PLUGINS", "POLYDL_DISABLE_PLUGIN_AUTOLOAD", "--json"):
        assert var in out


def test_plugin_warnings_print_as_one_line_on_the_command_line():
    text = warnings.formatwarning("plugin 'x' failed", plugins.PluginWarning, "file.py", 3)
    assert text == "Warning: plugin 'x' failed\n"
    assert "UserWarning" in warnings.formatwarning("other", UserWarning, "file.py", 3)


def test_fresh_process_lists_the_warning_once_and_exits_0(tmp_path):
    out = run_cli("plugins", paths=[_fakes(tmp_path)])
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # the warning is in the listing, not printed a second time
    assert out.stdout.count("failed to load (fake_bad)") == 1 and "polydl-good 2.5" in out.stdout


def test_strict_mode_is_one_error_line_and_exit_2(tmp_path):
    out = run_cli("plugins", paths=[_fakes(tmp_path)], env={"POLYDL_STRICT_PLUGINS": "1"})
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.startswith("Error: plugin 'bad' (distribution polydl-bad 0.1) failed to load")
    assert out.stderr.count("\n") == 1


def test_bad_environment_value_is_one_error_line(tmp_path):
    out = run_cli("plugins", "--json", env={"POLYDL_DISABLE_PLUGIN_AUTOLOAD": "perhaps"})
    assert out.returncode == 2
    assert out.stderr == ("Error: POLYDL_DISABLE_PLUGIN_AUTOLOAD must be 1 or 0 (or true/false, yes/no, on/off), "
                          "not 'perhaps'\n")
