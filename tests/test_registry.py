"""``Registry``: registration, lookup and ``build``'s parameter check, used by every registry."""
from __future__ import annotations

import pytest

import polydl
from polydl.registry import Entry, Registry, UnknownNameError


def _registry():
    return Registry("widgets", singular="widget")  # built by hand: its queries load the plugins first


def test_build_checks_parameter_names_and_lists_the_valid_ones():
    reg = _registry()

    def widget(size, colour="red", weight=1.0):
        return (size, colour, weight)

    reg.register("w", widget)
    assert reg.parameters("w") == ["size", "colour", "weight"] and reg.parameters("w", skip=1) == ["colour", "weight"]
    assert reg.build("w", 3, colour="blue") == (3, "blue", 1.0)
    with pytest.raises(ValueError, match=r"^widget 'w' has no parameter 'color'; did you mean 'colour'\? "
                                         r"\(its parameters: colour, weight\)$"):
        reg.build("w", 3, color="blue")
    with pytest.raises(ValueError, match=r"widget 'w' has no parameter 'a', 'b' \(its parameters"):
        reg.build("w", 3, a=1, b=2)
    with pytest.raises(ValueError, match=r"^widget 'w': missing a required argument: 'size' "
                                         r"\(its parameters: size, colour, weight\)$"):
        reg.build("w")


def test_build_turns_a_type_error_of_the_factory_into_a_value_error():
    reg = _registry()
    reg.register("half", lambda n=2: n // 2)
    assert reg.build("half", n=8) == 4
    with pytest.raises(ValueError, match=r"widget 'half' cannot be built with n='x': unsupported operand"):
        reg.build("half", n="x")


def test_build_passes_keyword_arguments_through_var_keyword():
    reg = _registry()
    reg.register("kw", lambda **kw: kw)
    assert reg.build("kw", anything=1) == {"anything": 1}


def test_entry_builtin():
    assert polydl.schedules.registry.entry("constant").builtin
    assert Entry("x", None, plugin="polydl").builtin
    assert not Entry("x", None, plugin="cosine", distribution="polydl-cosine").builtin


def test_the_registry_module_imports_nothing_of_polydl_above_it():
    import ast
    import pathlib

    import polydl.registry as registry

    tree = ast.parse(pathlib.Path(registry.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level}
    assert imported == {"checks"}


def test_plugins_load_on_the_first_query_and_add_goes_through_the_public_method():
    reg = polydl.schedules.registry
    assert reg.holds("constant") or not polydl.plugins.is_loaded()
    assert "constant" in reg  # a query loads the plugins
    assert reg.holds("constant") and not reg.holds("no-such-schedule")


def _clashing():
    """One name registered by three plugins, as the loader adds them: plain ones, then an override."""
    reg = Registry("widgets", singular="widget")
    reg.add("w", 1, plugin="first", distribution="polydl-first", version="1", override=False)
    reg.add("w", 2, plugin="second", distribution="polydl-second", version="2", override=False)
    return reg


def test_a_clash_keeps_every_entry_and_the_first_answers():
    reg = _clashing()
    assert reg.lookup("w") == 1 and reg.entry("w").shadows == ["second"]
    assert [e.plugin for e in reg.candidates("w")] == ["first", "second"]
    assert [e.obj for e in reg.all_entries()] == [1, 2] and len(reg.entries()) == 1
    # PLUGIN:NAME selects one plugin's entry, by its name or its distribution's
    assert reg.lookup("second:w") == 2 and reg.lookup("polydl-second:w") == 2 and reg.lookup("POLYDL_SECOND:w") == 2
    assert reg.entry("second:w").qualified == "second:w"
    assert "second:w" in reg and "third:w" not in reg and "second:v" not in reg
    with pytest.raises(UnknownNameError, match=r"^plugin 'third' registers no widget 'w' \(installed: first:w "
                                               r"\(distribution polydl-first 1\), second:w"):
        reg.lookup("third:w")
    with pytest.raises(UnknownNameError, match=r"^unknown widget 'x' in 'second:x' \(valid: w\)$"):
        reg.lookup("second:x")


def test_the_preference_list_decides_and_overrides_win_without_one():
    reg = _clashing()
    reg.set_preference(["polydl-second"])
    assert reg.lookup("w") == 2 and reg.entry("w").shadows == ["first"]
    reg.set_preference([])
    reg.add("w", 3, plugin="fast", override=True)
    assert reg.lookup("w") == 3 and reg.entry("w").overridden == ["first", "second"]
    reg.set_preference(["nobody", "first", "second"])  # the first listed plugin that registers it
    assert reg.lookup("w") == 1 and reg.entry("w").shadows == ["second", "fast"]
    assert reg.lookup("fast:w") == 3


def test_removing_the_winner_gives_the_name_to_the_entry_it_shadowed():
    reg = _clashing()
    snap = reg.snapshot()
    assert reg.remove_plugin("first") == ["w"]
    assert reg.lookup("w") == 2 and reg.entry("w").shadows == []
    reg.restore(snap)
    assert reg.lookup("w") == 1 and reg.entry("w").shadows == ["second"]
    reg.unregister("w")
    assert "w" not in reg and reg.candidates("w") == [] and "second:w" not in reg


def test_a_builtin_is_selected_as_polydl():
    entry = polydl.normalizers.registry.entry("polydl:batchnorm")
    assert entry.plugin == "polydl.normalizers" and entry.qualified == "polydl:batchnorm"
    assert polydl.normalizers.get("polydl:batchnorm", 3).num_features == 3


def test_internal_parameters_are_left_out_of_every_list():
    reg = Registry("norms", singular="norm", internal=("dtype", "device"))

    def norm(num_features, eps=1e-5, dtype=None, device=None):
        return num_features

    reg.register("n", norm)
    assert reg.parameters("n", skip=1) == ["eps"]
    with pytest.raises(ValueError, match=r"^norm 'n' has no parameter 'esp'; did you mean 'eps'\? "
                                         r"\(its parameters: eps\)$"):
        reg.build("n", 4, esp=1)
    assert reg.build("n", 4, dtype="float64") == 4  # Python callers may still pass them
