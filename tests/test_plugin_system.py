"""The plugin system: hooks, discovery through entry points, isolation of broken plugins,
environment variables, validation at registration, name clashes, the testing helper."""
from __future__ import annotations

import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest

import polydl
from polydl import hookimpl, plugins
from polydl.plugins import PluginError, PluginWarning
from polydl.registry import RegistrationError, Registry, UnknownNameError
from polydl.testing import registered_plugin

sys.path.insert(0, str(Path(__file__).parent))
from plugin_fakes import make_dist, run_python  # noqa: E402

SCHEDULE_PLUGIN = """
import polydl
from polydl.schedules import Schedule

def halving(lr0=0.1, every=2):
    if isinstance(lr0, bool) or not isinstance(lr0, (int, float)) or not lr0 >= 0:
        raise ValueError(f"halving: lr0 must be a number >= 0, not {lr0!r}")
    return Schedule("halving", {"lr0": lr0, "every": every}, lambda pos: lr0 * 0.5 ** ((pos.epoch - 1) // every))

@polydl.hookimpl
def polydl_register_schedules(register):
    register("halving", halving)
"""


def _schedule_dist(root, dist="polydl-halving", ep="halving", module="fake_halving", version="1.2"):
    return make_dist(root, dist, version, {ep: module}, {f"{module}.py": SCHEDULE_PLUGIN})


def _names(kind):
    return set(plugins.registries()[kind].names())


# ---------------------------------------------------------------------- hookspecs and built-ins
def test_hookspecs_declare_every_kind():
    specs = {n for n in dir(polydl.hookspecs.PolydlSpecs) if n.startswith("polydl_")}
    assert specs == set(plugins.HOOKS) == {f"polydl_register_{k}" for k in
                                          ("schedules", "normalizers", "losses", "optimizers", "datasets", "models")}
    assert polydl.hookimpl is polydl.hookspecs.hookimpl and polydl.hookimpl.project_name == "polydl"
    pm = plugins.plugin_manager()
    assert pm.project_name == "polydl"
    for hook in plugins.HOOKS:
        assert getattr(pm.hook, hook).spec.argnames == ("register",)


def test_builtins_are_default_plugins_registered_through_the_hooks():
    infos = {p.name: p for p in plugins.plugins()}
    assert list(infos)[:len(plugins.BUILTIN_MODULES)] == list(plugins.BUILTIN_MODULES)
    sched = infos["polydl.schedules"]
    assert (sched.source, sched.distribution, sched.version) == ("builtin", "polydl", polydl.__version__)
    assert sched.hooks == ["polydl_register_schedules"]
    assert "inverse_time" in sched.registered["schedules"]
    assert {"batchnorm", "none"} <= set(infos["polydl.normalizers"].registered["normalizers"])
    assert "softmax_cross_entropy" in infos["polydl.losses"].registered["losses"]
    assert "adam" in infos["polydl.optim"].registered["optimizers"]
    assert "digits" in infos["polydl.datasets"].registered["datasets"]
    entry = polydl.normalizers.registry.entry("batchnorm")
    assert (entry.plugin, entry.distribution, entry.version) == ("polydl.normalizers", "polydl", polydl.__version__)
    assert plugins.plugin_manager().get_plugin("polydl.losses") is polydl.losses


# ---------------------------------------------------------------------- lazy, once, thread-safe
def test_import_polydl_loads_no_entry_point(tmp_path):
    marker = tmp_path / "imported.txt"
    make_dist(tmp_path, "polydl-marker", "1.0", {"marker": "fake_marker"}, {"fake_marker.py": f"""
        import pathlib, polydl
        pathlib.Path({str(marker)!r}).write_text("x")

        @polydl.hookimpl
        def polydl_register_losses(register):
            pass
    """})
    out = run_python(f"""
        import pathlib, sys
        import polydl
        assert not polydl.plugins.is_loaded()
        assert "importlib.metadata" not in sys.modules, "entry points were looked up at import"
        assert not pathlib.Path({str(marker)!r}).exists()
        polydl.losses.names()                      # first use loads
        assert polydl.plugins.is_loaded()
        assert pathlib.Path({str(marker)!r}).exists()
        print("ok")
    """, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_loading_happens_once(site):
    make_dist(site, "polydl-count", "1.0", {"count": "fake_count"}, {"fake_count.py": """
        import polydl
        CALLS = []

        @polydl.hookimpl
        def polydl_register_schedules(register):
            CALLS.append(1)
    """})
    assert not plugins.is_loaded()
    polydl.schedules.names()
    polydl.losses.names()
    plugins.load()
    assert plugins.is_loaded()
    assert sys.modules["fake_count"].CALLS == [1]


def test_loading_is_thread_safe(site):
    make_dist(site, "polydl-slow", "1.0", {"slow": "fake_slow"}, {"fake_slow.py": """
        import time, polydl
        from polydl.schedules import Schedule
        CALLS = []

        def slow(lr0=0.1):
            if not isinstance(lr0, (int, float)) or not lr0 >= 0:
                raise ValueError("lr0 must be a number >= 0")
            return Schedule("slow", {"lr0": lr0}, lambda pos: lr0)

        @polydl.hookimpl
        def polydl_register_schedules(register):
            CALLS.append(1)
            time.sleep(0.2)
            register("slow", slow)
    """})
    seen, errors = [], []
    start = threading.Barrier(6)

    def use():
        try:
            start.wait()
            seen.append("slow" in polydl.schedules.names())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=use) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert seen == [True] * 6  # nobody saw a half-filled registry
    assert sys.modules["fake_slow"].CALLS == [1]


# ---------------------------------------------------------------------- discovery
def test_entry_point_plugin_is_found_with_provenance(site):
    _schedule_dist(site)
    assert "halving" in polydl.schedules.names()
    entry = polydl.schedules.registry.entry("halving")
    assert (entry.plugin, entry.distribution, entry.version) == ("halving", "polydl-halving", "1.2")
    info = {p.name: p for p in plugins.plugins()}["halving"]
    assert (info.source, info.target, info.hooks) == ("entry point", "fake_halving", ["polydl_register_schedules"])
    assert info.registered == {"schedules": ["halving"]}
    lr = polydl.schedules.get("halving", lr0=0.8, every=1)
    assert [lr(e, 1) for e in (1, 2, 3)] == [0.8, 0.4, 0.2]
    assert plugins.plugin_manager().get_plugin("halving") is sys.modules["fake_halving"]


def test_entry_point_may_name_an_object(site):
    make_dist(site, "polydl-obj", "1.0", {"objplugin": "fake_obj:PLUGIN"}, {"fake_obj.py": """
        import polydl

        class Plugin:
            @polydl.hookimpl
            def polydl_register_losses(self, register):
                register("obj_mse", lambda: polydl.losses.MSE())

        PLUGIN = Plugin()
    """})
    assert "obj_mse" in polydl.losses.names()


def test_entry_point_naming_a_class_is_rejected(site):
    make_dist(site, "polydl-cls", "1.0", {"clsplugin": "fake_cls:Plugin"}, {"fake_cls.py": """
        import polydl

        class Plugin:
            @polydl.hookimpl
            def polydl_register_losses(self, register):
                pass
    """})
    with pytest.warns(PluginWarning, match="names the class Plugin; name a module or an instance"):
        plugins.load()


def test_broken_plugin_warns_and_the_others_still_load(site):
    _schedule_dist(site)
    make_dist(site, "polydl-broken", "0.3", {"broken": "fake_broken"},
              {"fake_broken.py": "import polydl\nimport a_module_that_does_not_exist\n"})
    with pytest.warns(PluginWarning) as record:
        names = polydl.schedules.names()
    assert "halving" in names and "inverse_time" in names
    (msg,) = [str(w.message) for w in record]
    assert "plugin 'broken'" in msg and "distribution polydl-broken 0.3" in msg
    assert "ModuleNotFoundError" in msg and "a_module_that_does_not_exist" in msg and "\n" not in msg
    (failed,) = plugins.failed()
    assert (failed.name, failed.distribution, failed.error) == ("broken", "polydl-broken", msg)
    assert plugins.problems() == [msg]
    assert "broken" not in {p.name for p in plugins.plugins()}
    assert "broken" not in dict(plugins.plugin_manager().list_name_plugin())


def test_plugin_raising_in_its_hook_is_isolated(site):
    _schedule_dist(site)
    make_dist(site, "polydl-raiser", "1.0", {"raiser": "fake_raiser"}, {"fake_raiser.py": """
        import polydl

        @polydl.hookimpl
        def polydl_register_losses(register):
            raise RuntimeError("boom")
    """})
    with pytest.warns(PluginWarning, match=r"plugin 'raiser' \(distribution polydl-raiser 1.0\): "
                                           r"polydl_register_losses raised RuntimeError: boom"):
        assert "halving" in polydl.schedules.names()


def test_strict_mode_turns_a_broken_plugin_into_an_error(site, monkeypatch):
    make_dist(site, "polydl-broken", "0.3", {"broken": "fake_broken"},
              {"fake_broken.py": "raise ImportError('no luck')\n"})
    monkeypatch.setenv("POLYDL_STRICT_PLUGINS", "1")
    for _ in range(2):  # not half-loaded afterwards: every use raises again
        with pytest.raises(PluginError, match=r"plugin 'broken' \(distribution polydl-broken 0.3\) failed to "
                                              r"load \(fake_broken\): ImportError: no luck"):
            polydl.losses.get("mse")
        assert not plugins.is_loaded()
    monkeypatch.setenv("POLYDL_STRICT_PLUGINS", "0")
    with pytest.warns(PluginWarning):
        assert "mse" in polydl.losses.names()


def test_load_plugins_selects_by_entry_point_or_distribution_name(site, monkeypatch):
    _schedule_dist(site)
    _schedule_dist(site, dist="polydl-other", ep="other", module="fake_other")
    monkeypatch.setenv("POLYDL_LOAD_PLUGINS", "other")
    # fake_other registers "halving" too; alone it loads fine
    assert {p.name for p in plugins.plugins() if p.source != "builtin"} == {"other"}
    plugins.reset()
    monkeypatch.setenv("POLYDL_LOAD_PLUGINS", " polydl_halving , ")  # distribution name, normalised
    assert {p.name for p in plugins.plugins() if p.source != "builtin"} == {"halving"}
    assert settings_only() == ["polydl_halving"]


def settings_only():
    return plugins.report()["settings"]["only"]


def test_load_plugins_warns_about_unknown_names(site, monkeypatch):
    _schedule_dist(site)
    monkeypatch.setenv("POLYDL_LOAD_PLUGINS", "halving,halvng")
    with pytest.warns(PluginWarning, match="POLYDL_LOAD_PLUGINS names 'halvng', but no installed polydl "
                                           "plugin has that entry-point or distribution name"):
        assert "halving" in polydl.schedules.names()
    plugins.reset()
    monkeypatch.setenv("POLYDL_STRICT_PLUGINS", "yes")
    with pytest.raises(PluginError, match="names 'halvng'"):
        plugins.load()


def test_disable_autoload_loads_only_the_builtins(site, monkeypatch):
    _schedule_dist(site)
    make_dist(site, "polydl-broken", "0.3", {"broken": "fake_broken"}, {"fake_broken.py": "raise ImportError\n"})
    monkeypatch.setenv("POLYDL_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("POLYDL_LOAD_PLUGINS", "halving")  # autoload off wins
    assert [p.name for p in plugins.plugins()] == list(plugins.BUILTIN_MODULES)
    assert "halving" not in polydl.schedules.names() and plugins.failed() == []
    assert "fake_halving" not in sys.modules and "fake_broken" not in sys.modules
    assert plugins.report()["settings"]["autoload"] is False


@pytest.mark.parametrize("var", [plugins.STRICT_ENV, plugins.DISABLE_ENV])
def test_bad_flag_values_are_one_line_errors(site, monkeypatch, var):
    monkeypatch.setenv(var, "maybe")
    with pytest.raises(PluginError, match=f"^{var} must be 1 or 0 .* not 'maybe'$"):
        polydl.schedules.names()


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("ON", True), ("yes", True),
                                             ("0", False), ("", False), ("false", False), ("off", False)])
def test_flag_values(monkeypatch, value, expected):
    monkeypatch.setenv("POLYDL_STRICT_PLUGINS", value)
    assert plugins.settings()["strict"] is expected


def test_duplicate_entry_point_names_keep_the_first(site):
    _schedule_dist(site, dist="polydl-a", ep="same", module="fake_a")
    make_dist(site, "polydl-b", "1.0", {"same": "fake_b"}, {"fake_b.py": "raise RuntimeError('never imported')\n"})
    with pytest.warns(PluginWarning, match="the plugin name 'same' is already used by another plugin"):
        plugins.load()
    assert {p.name: p.distribution for p in plugins.plugins()}["same"] == "polydl-a"
    assert "fake_b" not in sys.modules


# ---------------------------------------------------------------------- misspelt and malformed hooks
def test_misspelt_hook_is_caught_naming_plugin_and_hook(site):
    _schedule_dist(site)
    make_dist(site, "polydl-typo", "2.0", {"typo": "fake_typo"}, {"fake_typo.py": """
        import polydl

        @polydl.hookimpl
        def polydl_register_schedule(register):
            register("never", None)
    """})
    with pytest.warns(PluginWarning) as record:
        plugins.load()
    (msg,) = [str(w.message) for w in record]
    assert "plugin 'typo' (distribution polydl-typo 2.0) implements unknown hook 'polydl_register_schedule'" in msg
    assert "did you mean 'polydl_register_schedules'?" in msg
    assert "halving" in polydl.schedules.names()
    plugins.plugin_manager().check_pending()  # nothing unknown is left registered


def test_misspelt_hook_raises_when_registered_directly():
    mod = types.ModuleType("typo_plugin")

    @hookimpl
    def polydl_register_los(register):
        pass

    mod.polydl_register_los = polydl_register_los
    with pytest.raises(PluginError, match="plugin 'typo_plugin' .* unknown hook 'polydl_register_los'; did you "
                                          "mean 'polydl_register_losses'"):
        plugins.register_plugin(mod)
    assert "typo_plugin" not in dict(plugins.plugin_manager().list_name_plugin())


def test_hook_without_marker_is_caught():
    mod = types.ModuleType("unmarked")
    mod.polydl_register_losses = lambda register: register("x", None)
    with pytest.raises(PluginError, match=r"defines polydl_register_losses\(\) without the @polydl.hookimpl marker"):
        plugins.register_plugin(mod)


def test_hook_with_wrong_argument_is_caught():
    class P:
        @hookimpl
        def polydl_register_losses(self, registry):
            pass

    with pytest.raises(PluginError, match="registry"):
        plugins.register_plugin(P(), "wrongarg")
    assert "wrongarg" not in dict(plugins.plugin_manager().list_name_plugin())


def test_hook_wrappers_are_rejected():
    class P:
        @hookimpl(wrapper=True)
        def polydl_register_losses(self, register):
            return (yield)

    with pytest.raises(PluginError, match="must be a plain hook, not a wrapper"):
        plugins.register_plugin(P(), "wrapper")


def test_hook_may_omit_the_register_argument():
    class P:
        @hookimpl
        def polydl_register_losses(self):
            pass

    with registered_plugin(P(), "noargs") as info:
        assert info.hooks == ["polydl_register_losses"] and info.registered == {}


# ---------------------------------------------------------------------- names, clashes, overrides
class _Loss:
    def __init__(self, scale=1.0):
        self.scale = scale

    def __call__(self, scores, targets):
        return polydl.functional.softmax_cross_entropy(scores, targets) * self.scale


def _loss_plugin(name, loss_name="myloss", override=False, extra=()):
    class P:
        @hookimpl
        def polydl_register_losses(self, register):
            register(loss_name, _Loss, override=override)
            for n in extra:
                register(n, _Loss)
    return P()


def test_clash_names_both_plugins_and_leaves_the_first():
    with registered_plugin(_loss_plugin("first"), "first"):
        with pytest.raises(PluginError, match="loss 'myloss' registered by plugin 'second' is already registered "
                                              "by plugin 'first'; rename it, or pass override=True"):
            plugins.register_plugin(_loss_plugin("second", extra=["other_name"]), "second")
        assert polydl.losses.registry.entry("myloss").plugin == "first"
        assert "other_name" not in polydl.losses.names()  # all of a plugin, or nothing
        assert "second" not in {p.name for p in plugins.plugins()}


def test_clash_with_a_builtin_names_its_distribution():
    with pytest.raises(PluginError, match=r"already registered by plugin 'polydl.losses' \(distribution polydl "):
        plugins.register_plugin(_loss_plugin("x", loss_name="mse"), "x")


def test_override_replaces_and_is_undone():
    faster = _loss_plugin("faster", loss_name="mse", override=True)
    with registered_plugin(faster, "faster", distribution="polydl-faster", version="9") as info:
        entry = polydl.losses.registry.entry("mse")
        assert (entry.obj, entry.plugin, entry.overridden) == (_Loss, "faster", ["polydl.losses"])
        assert info.overrides == {"losses": ["mse"]}
    entry = polydl.losses.registry.entry("mse")
    assert entry.plugin == "polydl.losses" and entry.obj is polydl.losses.MSE


def test_override_wins_whatever_the_load_order(site):
    for ep, mod, override in (("aaa", "fake_aaa", True), ("zzz", "fake_zzz", False)):
        make_dist(site, f"polydl-{ep}", "1.0", {ep: mod}, {f"{mod}.py": f"""
            import polydl

            def factory(num_features):
                return polydl.nn.Identity()

            @polydl.hookimpl
            def polydl_register_normalizers(register):
                register("shared", factory, override={override})
                register("{ep}_own", factory)
        """})
    plugins.load()  # "aaa" loads first but overrides, so "zzz"'s plain registration does not clash
    entry = polydl.normalizers.registry.entry("shared")
    assert (entry.plugin, entry.overridden) == ("aaa", ["zzz"])
    assert {"aaa_own", "zzz_own"} <= set(polydl.normalizers.names())
    assert plugins.problems() == []


def test_a_plugin_may_not_register_a_name_twice():
    class P:
        @hookimpl
        def polydl_register_losses(self, register):
            register("twice", _Loss)
            register("twice", _Loss)

    with pytest.raises(PluginError, match="plugin 'twice_plugin' registered the loss 'twice' twice"):
        plugins.register_plugin(P(), "twice_plugin")


@pytest.mark.parametrize("name", ["", "has space", "-dash", "semi;colon", 3, None])
def test_invalid_names_are_rejected(name):
    class P:
        @hookimpl
        def polydl_register_losses(self, register):
            register(name, _Loss)

    with pytest.raises(PluginError, match="a name must be a word of letters, digits"):
        plugins.register_plugin(P(), "badname")


def test_override_must_be_a_bool():
    class P:
        @hookimpl
        def polydl_register_losses(self, register):
            register("x_loss", _Loss, override="yes")

    with pytest.raises(PluginError, match="override must be True or False"):
        plugins.register_plugin(P(), "badoverride")


def test_plugin_names_are_unique():
    with registered_plugin(_loss_plugin("a"), "dup"):
        with pytest.raises(PluginError, match="the plugin name 'dup' is already taken by plugin 'dup'"):
            plugins.register_plugin(_loss_plugin("b", loss_name="other"), "dup")


def test_unregister_plugin_restores_what_it_overrode():
    plugins.register_plugin(_loss_plugin("tmp", loss_name="mse", override=True, extra=["tmp_extra"]), "tmp")
    try:
        assert polydl.losses.registry.entry("mse").plugin == "tmp"
    finally:
        info = plugins.unregister_plugin("tmp")
    assert info.name == "tmp"
    assert polydl.losses.registry.entry("mse").plugin == "polydl.losses"
    assert "tmp_extra" not in polydl.losses.names()
    with pytest.raises(PluginError, match="no plugin named 'tmp' is loaded"):
        plugins.unregister_plugin("tmp")


def test_registry_remove_plugin_splices_an_override_chain():
    reg = Registry("things")
    reg.register("x", 1, plugin="a")
    reg.register("x", 2, plugin="b", override=True)
    reg.register("x", 3, plugin="c", override=True)
    assert reg._entries["x"].overridden == ["a", "b"]
    reg.remove_plugin("b")
    assert reg._entries["x"].obj == 3 and reg._entries["x"].overridden == ["a"]
    reg.remove_plugin("c")
    assert reg._entries["x"].obj == 1 and reg._entries["x"].previous is None
    reg.remove_plugin("a")
    assert "x" not in reg._entries


def test_registry_queries_and_direct_registration():
    reg = Registry("widgets", validate=lambda name, obj: None if callable(obj) else 1 / 0)
    assert reg.singular == "widget" and repr(reg) == "<Registry widgets>"
    reg.register("double", lambda x, k=2: x * k, plugin="mine", distribution="my-dist", version="1")
    assert "double" in reg and list(reg) == ["double"] and reg.names() == ["double"]
    assert reg.build("double", 3) == 6 and reg.build("double", 3, k=3) == 9
    (entry,) = reg.entries()
    assert (entry.name, entry.plugin, entry.distribution, entry.version) == ("double", "mine", "my-dist", "1")
    with pytest.raises(RegistrationError, match="override must be True or False"):
        reg.register("double", abs, override=1)
    with pytest.raises(RegistrationError, match="plugin 'other' registered an invalid widget 'w': ZeroDivisionError"):
        reg.register("w", 42, plugin="other")
    with pytest.raises(RegistrationError, match="widget 'double' registered by plugin 'other' is already registered "
                                                "by plugin 'mine' \\(distribution my-dist 1\\)"):
        reg.register("double", abs, plugin="other")
    reg.unregister("double")
    assert "double" not in reg
    with pytest.raises(UnknownNameError, match="unknown widget 'double' \\(valid: \\)"):
        reg.lookup("double")
    with pytest.raises(UnknownNameError):
        reg.lookup(["unhashable"])


def test_direct_registration_before_first_use_survives_loading(site):
    assert not plugins.is_loaded()
    polydl.losses.registry.register("direct_mse", polydl.losses.MSE, plugin="by-hand")
    assert plugins.is_loaded() and "mse" in polydl.losses.names()
    assert polydl.losses.registry.entry("direct_mse").plugin == "by-hand"


def test_unknown_name_lists_valid_names_and_closest_match():
    with pytest.raises(UnknownNameError) as err:
        polydl.schedules.get("inverse_tme")
    msg = str(err.value)
    assert "unknown schedule 'inverse_tme'; did you mean 'inverse_time'?" in msg and "staircase" in msg
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)
    with pytest.raises(UnknownNameError, match="unknown normalizer 'zzz' \\(valid: "):
        polydl.normalizers.get("zzz", 3)


# ---------------------------------------------------------------------- validation at registration
def _register(kind_hook, name, obj):
    class P:
        pass

    def hook(self, register):
        register(name, obj)

    setattr(P, kind_hook, hookimpl(hook))
    hook.__name__ = kind_hook
    return plugins.register_plugin(P(), f"probe_{name}")


def _schedule(fn, lr0_check=True):
    def factory(lr0=0.1):
        if lr0_check and (not isinstance(lr0, (int, float)) or not lr0 >= 0):
            raise ValueError("bad lr0")
        return lambda pos: fn(lr0, pos.epoch, pos.step)
    return factory


class _Stateful:
    def __init__(self):
        self.n = 0

    def __call__(self, pos):
        self.n += 1
        return 0.1 / self.n


@pytest.mark.parametrize("factory, message", [
    ("not callable", "must be a callable factory"),
    (lambda rate=0.1: None, "must take an 'lr0' argument"),
    (lambda lr0=0.1: 0.5, "returned 0.5, not a callable"),
    (_schedule(lambda lr0, e, t: -lr0), "gave -0.1 at epoch 1, step 1: a learning rate must be a finite number >= 0"),
    (_schedule(lambda lr0, e, t: float("nan")), "gave nan"),
    (_schedule(lambda lr0, e, t: "fast"), "gave 'fast'"),
    (_schedule(lambda lr0, e, t: lr0 / (e - 2) ** 2), "failed at epoch 2, step 13 .*: ZeroDivisionError"),
    (lambda lr0=0.1: _Stateful(), "is not a pure function of the position"),
    (_schedule(lambda lr0, e, t: lr0, lr0_check=False), "accepted lr0=-1.0: a factory must check its parameters"),
])
def test_invalid_schedules_are_rejected(factory, message):
    with pytest.raises(PluginError, match=message):
        _register("polydl_register_schedules", "bad_sched", factory)
    assert "bad_sched" not in polydl.schedules.names()


def test_schedule_factory_may_convert_with_float():
    def factory(lr0=0.1):
        lr0 = float(lr0)
        if lr0 < 0:
            raise ValueError("lr0 must be >= 0")
        return lambda pos: lr0

    with registered_plugin(type("P", (), {"polydl_register_schedules": hookimpl(
            lambda self, register: register("floaty", factory))})(), "floaty"):
        assert polydl.schedules.get("floaty", lr0="0.5")(1, 1) == 0.5


def test_plain_function_schedule_is_wrapped_with_the_builtin_checks():
    def factory(lr0=0.1, drop=0.5):
        if not isinstance(lr0, (int, float)) or not lr0 >= 0:
            raise ValueError("lr0 must be >= 0")
        return lambda pos: lr0 * (drop if pos.epoch > 3 else 1) - (1 if pos.epoch > 100 else 0)

    with registered_plugin(type("P", (), {"polydl_register_schedules": hookimpl(
            lambda self, register: register("plain", factory))})(), "plain"):
        lr = polydl.schedules.get("plain", lr0=0.4)
        assert isinstance(lr, polydl.schedules.Schedule) and repr(lr) == "plain(lr0=0.4, drop=0.5)"
        assert lr(5, 1) == 0.2 and isinstance(lr(1, 1), float)
        with pytest.raises(ValueError, match="epoch is counted from 1"):
            lr(0, 1)
        with pytest.raises(ValueError, match="schedule 'plain' gave -0.8 at epoch 101, step 1"):
            lr(101, 1)
        with pytest.raises(ValueError, match="schedule 'plain' has no parameter 'rate'"):
            polydl.schedules.get("plain", rate=1)


def test_schedule_with_required_parameters_is_checked_when_built():
    def factory(lr0, total):
        if total < 1:
            raise ValueError("total must be >= 1")
        return lambda pos: lr0

    with registered_plugin(type("P", (), {"polydl_register_schedules": hookimpl(
            lambda self, register: register("needs_total", factory))})(), "needs"):
        with pytest.raises(ValueError, match="schedule 'needs_total': missing a required argument: 'total'"):
            polydl.schedules.get("needs_total", lr0=0.1)
        assert polydl.schedules.get("needs_total", lr0=0.1, total=3)(1, 1) == pytest.approx(0.1)


class _Shrink(polydl.nn.Module):
    def forward(self, x):
        return x[:, :1]


class _Broken(polydl.nn.Module):
    def forward(self, x):
        raise RuntimeError("no forward today")


@pytest.mark.parametrize("factory, message", [
    (42, "must be a callable factory\\(num_features"),
    (lambda: polydl.nn.Identity(), "must accept num_features as its first argument"),
    (lambda n: "module", "returned str, not a polydl.nn.Module"),
    (lambda n: _Shrink(), "must map a \\(batch, num_features\\) Tensor to a Tensor of the same shape; on \\(3, 4\\) "
                          "in training mode it gave a Tensor of shape \\(3, 1\\)"),
    (lambda n: _Broken(), "failed in training mode on a batch of shape \\(3, 4\\): RuntimeError: no forward today"),
])
def test_invalid_normalizers_are_rejected(factory, message):
    with pytest.raises(PluginError, match=message):
        _register("polydl_register_normalizers", "bad_norm", factory)


def test_normalizer_get_checks_the_module_it_builds():
    def factory(num_features):
        return polydl.nn.Identity() if num_features == 4 else None

    with registered_plugin(type("P", (), {"polydl_register_normalizers": hookimpl(
            lambda self, register: register("odd", factory))})(), "odd"):
        with pytest.raises(ValueError, match="normalizer factory 'odd' returned NoneType, not a polydl.nn.Module"):
            polydl.normalizers.get("odd", 5)


def _numpy_loss():
    def loss(scores, targets):
        return polydl.tensor(float(np.mean(scores.data)))
    return loss


def _nan_grad_loss():
    def loss(scores, targets):
        return (scores * float("nan")).sum() * 0.0 + 1.0
    return loss


@pytest.mark.parametrize("factory, message", [
    (None, "must be a callable factory"),
    (lambda: 3, "returned 3, not a callable"),
    (lambda: (lambda s, t: s * 2), "must return a scalar Tensor, not Tensor of shape"),
    (lambda: (lambda s, t: 0.5), "must return a scalar Tensor, not float"),
    (_numpy_loss, "returned a Tensor with no gradient path to the scores"),
    (_nan_grad_loss, "gave no finite gradient"),
    (lambda: (lambda s, t: (_ for _ in ()).throw(ValueError("shape"))), "failed on \\(scores \\(2, 3\\)"),
])
def test_invalid_losses_are_rejected(factory, message):
    with pytest.raises(PluginError, match=message):
        _register("polydl_register_losses", "bad_loss", factory)


def test_loss_get_checks_what_the_factory_builds():
    def factory(kind="ok"):
        return _Loss() if kind == "ok" else kind

    with registered_plugin(type("P", (), {"polydl_register_losses": hookimpl(
            lambda self, register: register("picky", factory))})(), "picky"):
        with pytest.raises(ValueError, match="loss factory 'picky' returned str, not a callable"):
            polydl.losses.get("picky", kind="nope")
        with pytest.raises(ValueError, match=r"loss 'picky' has no parameter 'gamma' \(its parameters: kind\)"):
            polydl.losses.get("picky", gamma=1)


SMOOTHING_PLUGIN = """
import polydl
from polydl import functional as F


class LabelSmoothing:
    \"\"\"(1 − ε) · softmax cross-entropy + ε · the cross-entropy against the uniform distribution.\"\"\"

    def __init__(self, smoothing=0.1):
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1), not {smoothing!r}")
        self.smoothing = smoothing

    def __call__(self, scores, targets):
        ce = polydl.losses.get("softmax_cross_entropy")(scores, targets)
        uniform = -F.log_softmax(scores, axis=-1).mean()
        return ce * (1 - self.smoothing) + uniform * self.smoothing


@polydl.hookimpl
def polydl_register_losses(register):
    assert "softmax_cross_entropy" in polydl.losses.names()  # the built-ins are there already
    register("label_smoothing", LabelSmoothing)
"""


def _check_label_smoothing():
    scores = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]])
    labels = np.array([0, 2])
    z = scores - scores.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    q = np.eye(3)[labels] * 0.8 + 0.2 / 3
    loss = polydl.losses.get("label_smoothing", smoothing=0.2)(polydl.tensor(scores), labels)
    np.testing.assert_allclose(float(loss.data), -(q * logp).sum() / 2, rtol=1e-12)
    plain = polydl.losses.get("softmax_cross_entropy")(polydl.tensor(scores), labels)
    assert float(polydl.losses.get("label_smoothing", smoothing=0)(polydl.tensor(scores), labels).data) == \
        float(plain.data)


def test_a_plugin_loss_may_build_on_a_builtin_one_when_loaded_from_its_entry_point(site, monkeypatch):
    monkeypatch.setenv("POLYDL_STRICT_PLUGINS", "1")  # a plugin rejected at load time would raise
    make_dist(site, "polydl-smoothing", "1.0", {"smoothing": "fake_smoothing"},
              {"fake_smoothing.py": SMOOTHING_PLUGIN})
    assert "label_smoothing" in polydl.losses.names()
    assert plugins.failed() == [] and plugins.problems() == []
    assert polydl.losses.registry.entry("label_smoothing").distribution == "polydl-smoothing"
    _check_label_smoothing()


def test_a_plugin_loss_may_build_on_a_builtin_one_when_registered_in_process():
    module = types.ModuleType("fake_smoothing_inline")
    exec(SMOOTHING_PLUGIN, module.__dict__)
    with registered_plugin(module, "smoothing") as info:
        assert info.registered == {"losses": ["label_smoothing"]}
        _check_label_smoothing()
    assert "label_smoothing" not in polydl.losses.names()


def test_invalid_optimizers_and_datasets_are_rejected():
    with pytest.raises(PluginError, match="must subclass polydl.optim.Optimizer"):
        _register("polydl_register_optimizers", "bad_opt", dict)
    with pytest.raises(PluginError, match="must be a callable loader"):
        _register("polydl_register_datasets", "bad_data", "digits.npz")


def test_optimizer_and_dataset_hooks():
    class HalfSGD(polydl.optim.SGD):
        def __init__(self, params, lr=0.01):
            super().__init__(params, lr=lr / 2)

    def tiny(seed=0, n=40):
        rng = np.random.default_rng(seed)
        return polydl.datasets.split(rng.normal(size=(n, 2)), (np.arange(n) % 2), seed, name="tiny")

    class P:
        @hookimpl
        def polydl_register_optimizers(self, register):
            register("half_sgd", HalfSGD)

        @hookimpl
        def polydl_register_datasets(self, register):
            register("tiny", tiny)

    with registered_plugin(P(), "extras") as info:
        assert info.hooks == ["polydl_register_datasets", "polydl_register_optimizers"]
        p = polydl.Parameter(np.ones(2, np.float32))
        opt = polydl.optim.get("half_sgd", [p], lr=0.2)
        assert isinstance(opt, HalfSGD)
        ds = polydl.datasets.load("tiny", seed=1, n=50)
        assert sum(ds.sizes().values()) == 50 and ds.num_classes == 2
    assert "half_sgd" not in polydl.optim.names() and "tiny" not in polydl.datasets.names()


def test_validation_does_not_move_the_random_state_or_need_grad_mode(site):
    make_dist(site, "polydl-rand", "1.0", {"rand": "fake_rand"}, {"fake_rand.py": """
        import polydl

        class Noisy(polydl.nn.Module):
            def __init__(self, n):
                self.w = polydl.Parameter(polydl.random.host_generator().normal(size=n).astype("float32"))

            def forward(self, x):
                return x * self.w

        @polydl.hookimpl
        def polydl_register_normalizers(register):
            register("noisy", Noisy)
    """})
    polydl.manual_seed(5)
    expected = np.random.default_rng(5).random(3)
    with polydl.no_grad():
        assert "noisy" in polydl.normalizers.names()  # loaded (and validated) here, inside no_grad
    np.testing.assert_array_equal(polydl.random.host_generator().random(3), expected)
    assert polydl.is_grad_enabled()
    assert plugins.problems() == []


# ---------------------------------------------------------------------- the testing helper
def test_registered_plugin_restores_everything_even_after_an_error():
    plugins.load()
    before = {k: r.snapshot() for k, r in plugins.registries().items()}
    names_before = [n for n, _ in plugins.plugin_manager().list_name_plugin()]
    with pytest.raises(RuntimeError, match="inside"):
        with registered_plugin(_loss_plugin("inner", loss_name="mse", override=True), "inner"):
            assert polydl.losses.registry.entry("mse").plugin == "inner"
            raise RuntimeError("inside")
    assert {k: r.snapshot() for k, r in plugins.registries().items()} == before
    assert [n for n, _ in plugins.plugin_manager().list_name_plugin()] == names_before


def test_registered_plugin_raises_for_an_invalid_plugin_and_restores():
    before = polydl.losses.names()
    with pytest.raises(PluginError, match="loss 'bad' must return a scalar Tensor"):
        with registered_plugin(type("P", (), {"polydl_register_losses": hookimpl(
                lambda self, register: (register("ok_loss", _Loss), register("bad", lambda: (lambda s, t: s)))
        )})(), "half_bad"):
            pass  # pragma: no cover
    assert polydl.losses.names() == before


def test_registered_plugin_nests_and_takes_out_an_already_loaded_copy(site):
    _schedule_dist(site)
    module = None
    polydl.schedules.names()
    module = sys.modules["fake_halving"]
    with registered_plugin(module, "halving_test") as info:
        assert polydl.schedules.registry.entry("halving").plugin == "halving_test"
        assert "halving" not in {p.name for p in plugins.plugins()}
        with registered_plugin(_loss_plugin("n"), "nested"):
            assert "myloss" in polydl.losses.names()
        assert "myloss" not in polydl.losses.names()
        assert info.registered == {"schedules": ["halving"]}
    assert polydl.schedules.registry.entry("halving").plugin == "halving"
    assert plugins.plugin_manager().get_plugin("halving") is module


def test_register_plugin_names_default_to_the_module_name():
    mod = types.ModuleType("my_named_plugin")
    with registered_plugin(mod) as info:
        assert info.name == "my_named_plugin" and info.source == "runtime" and info.hooks == []
    with pytest.raises(PluginError, match="a plugin name must be a non-empty string"):
        plugins.register_plugin(mod, "")


def test_report_is_json_ready():
    import json
    rep = plugins.report()
    assert set(rep) == {"polydl_version", "entry_point_group", "settings", "plugins", "failed", "warnings"}
    assert rep["entry_point_group"] == "polydl"
    json.dumps(rep)
    first = rep["plugins"][0]
    assert set(first) == {"name", "source", "target", "distribution", "version", "hooks", "registered",
                          "overrides", "shadowed", "parameters", "error"}
    assert first["parameters"]["schedules"]["inverse_time"] == ["decay_rate"]  # lr0 comes from --lr
