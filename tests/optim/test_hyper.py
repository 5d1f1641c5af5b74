"""Hyperparameter values: one number or one per member; the rescaling of a buffer kept divided by (1 − β)."""
from __future__ import annotations

import numpy as np
import pytest

from polydl.optim import hyper


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rescale_keeps_the_moving_average(dtype):
    # x' = x/(1 − β): moving from β = 0.9 to β = 0.5 keeps x = (1 − β) x'
    x = np.array([1.0, -2.0, 0.5])
    scaled = (x / (1 - 0.9)).astype(dtype)
    hyper.rescale(scaled, 0.9, 0.5)
    assert scaled.dtype == dtype
    np.testing.assert_allclose(scaled * (1 - 0.5), x, rtol=1e-6)
    # the factor is computed in float64 and rounded once to the buffer's dtype
    again = (x / (1 - 0.9)).astype(dtype)
    expected = again * dtype((1.0 - 0.9) / (1.0 - 0.5))
    hyper.rescale(again, 0.9, 0.5)
    np.testing.assert_array_equal(again, expected)


def test_rescale_per_member_rows_and_equal_betas():
    rows = np.ones((3, 4))
    hyper.rescale(rows, [0.9, 0.5, 0.0], 0.5)
    np.testing.assert_allclose(rows[:, 0], [0.2, 1.0, 2.0])
    assert (rows == rows[:, :1]).all()
    same = np.full((2, 4), 7.0)
    hyper.rescale(same, [0.3, 0.6], np.array([0.3, 0.6]))
    hyper.rescale(same[0], 0.3, 0.3)
    np.testing.assert_array_equal(same, 7.0)


def test_sqrt_and_power_take_a_number_or_one_per_member():
    assert hyper.sqrt(4.0) == 2.0 and type(hyper.sqrt(4.0)) is float
    np.testing.assert_array_equal(hyper.sqrt(np.array([4.0, 9.0])), [2.0, 3.0])
    assert hyper.power(0.9, 3) == 0.9 ** 3
    assert hyper.power(np.array([0.9, 0.5]), 3).tolist() == [0.9 ** 3, 0.5 ** 3]  # Python's pow, member by member


def test_plain_and_is_seq():
    assert hyper.plain(np.array([0.5, 0.25])) == [0.5, 0.25] and hyper.plain(0.1) == 0.1
    assert hyper.is_seq([1, 2]) and hyper.is_seq(np.zeros(2)) and not hyper.is_seq(0.5)
