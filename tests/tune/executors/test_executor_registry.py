"""The executors by name, what each declares it takes, and the one check of a search's options."""
import subprocess
import sys

import pytest

from polydl.tune.executors.local import LocalExecutor
from polydl.tune.executors.population import PopulationExecutor
from polydl.tune.executors.registry import EXECUTORS, check_options, executor_class, make_executor


def test_the_executors_by_name():
    assert list(EXECUTORS) == ["local", "population", "ray"]
    assert EXECUTORS["local"] is LocalExecutor and executor_class("population") is PopulationExecutor
    assert EXECUTORS["ray"].__module__ == "polydl.tune.executors.ray.executor"
    with pytest.raises(ValueError, match="unknown executor 'pool': --executor must be one of local, population, ray"):
        make_executor("pool")
    assert isinstance(make_executor("population", workers=1, population_size=2), PopulationExecutor)


def test_naming_the_executors_imports_none_but_local():
    code = ("import sys; from polydl.tune.executors import EXECUTORS; list(EXECUTORS); "
            "print(sorted(m for m in sys.modules if m.startswith(('polydl.tune.executors.', 'ray'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "population" not in out and "executors.ray" not in out and "'ray" not in out


@pytest.mark.parametrize("name, options, message", [
    ("local", {"population_size": 4}, "--population-size sets how many trials train as one population: it needs "
                                      "--executor population or ray"),
    ("population", {"address": "h:1"}, "--address belongs to --executor ray; add --executor ray or leave it out"),
    ("local", {"workers": 0}, "--workers must be >= 1, not 0"),
    ("population", {"population_size": True}, "--population-size must be a whole number >= 1, not True"),
    ("ray", {"cpus_per_trial": 0}, "--cpus-per-trial must be a number > 0"),
    ("ray", {"gpus_per_trial": 1.5}, "--gpus-per-trial must be a fraction in (0, 1]"),
    ("ray", {"address": "head:port"}, "--address must be HOST:PORT"),
])
def test_options_are_checked_against_what_the_executor_declares(name, options, message):
    with pytest.raises(ValueError) as err:
        check_options(name, options)
    assert message in str(err.value)


def test_options_that_fit_come_back_checked():
    assert check_options("ray", {"workers": 2, "cpus_per_trial": 2, "address": "h:1"}) == \
        {"workers": 2, "cpus_per_trial": 2.0, "address": "h:1"}
    assert check_options("local", {"workers": None}) == {"workers": None}
    assert LocalExecutor.default_workers("cuda") == 1 and EXECUTORS["ray"].default_workers("cpu") is None


def test_a_keyword_no_executor_declares_is_left_to_the_constructor():
    assert check_options("ray", {"ship": True}) == {"ship": True}
    with pytest.raises(TypeError):
        make_executor("local", workers=1, ship=True)
