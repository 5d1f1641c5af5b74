"""The shared checks in ``polydl.checks``: closest names, number and whole-number values, and
how values are shown in messages."""
from __future__ import annotations

import numpy as np
import pytest

import polydl
from polydl.checks import check_number, check_whole, closest, did_you_mean, shown


def test_closest_and_did_you_mean():
    assert closest("trian", ["train", "evaluate"]) == "train"
    assert closest("zzz", ["train", "evaluate"]) is None
    assert closest("zzz", ["train"], cutoff=0.0) == "train"
    assert did_you_mean("inverse_tme", polydl.schedules.names()) == "; did you mean 'inverse_time'?"
    assert did_you_mean("qqqq", ["train"]) == ""


@pytest.mark.parametrize("args, kwargs, value", [
    ((3,), {}, 3.0), ((0.5, 0, 1), {"low_open": True}, 0.5), ((1, 0, 1), {}, 1.0), ((0, 0), {}, 0.0),
])
def test_check_number_accepts(args, kwargs, value):
    out = check_number("x", *args, **kwargs)
    assert out == value and isinstance(out, float)


@pytest.mark.parametrize("args, kwargs, message", [
    (("a",), {}, "x must be a finite number, not 'a'"),
    ((True,), {}, "x must be a finite number, not True"),
    ((float("nan"),), {}, "x must be a finite number, not nan"),
    ((-1, 0), {}, "x must be >= 0, not -1"),
    ((0, 0), {"low_open": True}, "x must be > 0, not 0"),
    ((1, 0, 1), {"high_open": True}, r"x must be in \[0, 1\), not 1"),
    ((0, 0, 1), {"low_open": True}, r"x must be in \(0, 1\], not 0"),
    ((2, None, 1), {}, "x must be <= 1, not 2"),
])
def test_check_number_rejects(args, kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        check_number("x", *args, **kwargs)


def test_check_whole():
    assert check_whole("n", 3, 1) == 3
    assert check_whole("n", 4.0, 1, integral_floats=True) == 4
    for bad in (4.0, 2.5, "3", True, None):
        with pytest.raises(ValueError, match="n must be a whole number"):
            check_whole("n", bad, 1)
    with pytest.raises(ValueError, match=r"^n must be >= 1 \(samples\), not 0$"):
        check_whole("n", 0, 1, meaning="samples")


def test_numpy_scalars_are_shown_as_plain_numbers():
    assert shown(np.float64(1.5)) == "1.5" and shown(np.int64(3)) == "3" and shown("a") == "'a'"
    with pytest.raises(ValueError, match=r"^x must be a finite number, not nan$"):
        check_number("x", np.float32("nan"))
    with pytest.raises(ValueError, match=r"^n must be a whole number, not 2.5$"):
        check_whole("n", np.float64(2.5))
