"""Each distribution samples uniformly on its own scale: decades of α equally often, 1 − β on a
log scale (half of β in [0.9, 0.999] above 0.99), integers with their cells' shares; a shrunk
box is the bounding box of the best values' cells widened by the margin and clipped."""
import math

import numpy as np
import pytest

from polydl.tune.distributions import Choice, Int, LogUniform, OneMinusLogUniform, Pow2, Uniform, is_power_of_two

N = 10000


def draws(dist, box=None, n=N, seed=0):
    rng = np.random.default_rng(seed)
    return [dist.sample(rng, box) for _ in range(n)]


def test_log_uniform_gives_each_decade_an_equal_share():
    v = np.array(draws(LogUniform(1e-4, 1.0)))
    assert v.min() >= 1e-4 and v.max() <= 1.0
    shares = np.histogram(np.log10(v), bins=[-4, -3, -2, -1, 0])[0] / N
    assert np.allclose(shares, 0.25, atol=0.02), shares


def test_one_minus_log_uniform_puts_half_of_beta_above_0_99():
    v = np.array(draws(OneMinusLogUniform(0.9, 0.999)))
    assert v.min() >= 0.9 and v.max() <= 0.999
    assert abs((v > 0.99).mean() - 0.5) < 0.02   # β = 1 − 10^u, u uniform in [−3, −1]
    u = np.log10(1 - v)
    assert abs((u < -2.5).mean() - 0.25) < 0.02
    # sampled uniformly instead, 0.99..0.999 would get (0.999 − 0.99) / 0.099 ≈ 9% of the draws
    lin = np.array(draws(Uniform(0.9, 0.999)))
    assert abs((lin > 0.99).mean() - 0.009 / 0.099) < 0.01


def test_int_on_a_log_scale_gives_each_integer_its_cell():
    d = Int(1, 9, log=True)
    v = np.array(draws(d))
    for k in range(1, 10):
        expected = math.log10((k + 1) / k) / math.log10(10 / 1)
        assert abs((v == k).mean() - expected) < 0.012, k
    lin = np.array(draws(Int(3, 6)))
    assert set(lin) == {3, 4, 5, 6} and np.allclose([(lin == k).mean() for k in range(3, 7)], 0.25, atol=0.02)


def test_pow2_gives_powers_of_two_equally_often():
    d = Pow2(16, 256)
    v = np.array(draws(d))
    assert set(v) == {16, 32, 64, 128, 256}
    assert np.allclose([(v == k).mean() for k in d.choices()], 0.2, atol=0.02)
    assert all(isinstance(x, int) for x in v[:10].tolist())


def test_choice_and_its_box():
    d = Choice(["relu", "tanh", 3])
    v = draws(d, n=3000)
    assert {x for x in v} == {"relu", "tanh", 3}
    assert set(draws(d, box=[0, 2], n=200)) == {"relu", 3}
    assert d.shrink(["tanh", "tanh", 3], d.full, 0.1) == [1, 2]
    assert d.box_dict([1, 2]) == {"choices": ["tanh", 3]} and d.box_from_dict({"choices": [3, "tanh"]}) == [1, 2]


def test_scales_and_full_boxes():
    assert LogUniform(1e-4, 1).full == pytest.approx((-4, 0))
    assert OneMinusLogUniform(0.9, 0.999).full == pytest.approx((-3, -1))
    assert Int(16, 256, log=True).full == pytest.approx((math.log10(16), math.log10(257)))
    assert Pow2(16, 256).full == (4, 9)
    assert Uniform(0.2, 0.5).full == (0.2, 0.5)


def test_shrink_bounds_the_best_widened_by_the_margin_of_the_current_box():
    d = LogUniform(1e-4, 1.0)
    box = d.shrink([1e-3, 1e-2], d.full, 0.1)            # scale [−3, −2], padded by 0.1 · 4
    assert box == pytest.approx((-3.4, -1.6))
    assert d.shrink([1e-3, 1e-2], (-3.4, -1.6), 0.1) == pytest.approx((-3.18, -1.82))
    assert d.shrink([1.0], d.full, 0.1) == pytest.approx((-0.4, 0.0))   # clipped to the full range
    b = OneMinusLogUniform(0.9, 0.999)
    box = b.shrink([0.9, 0.99], b.full, 0.1)              # scale [−2, −1], padded by 0.2, clipped at −1
    assert box == pytest.approx((-2.2, -1.0))
    assert b.box_dict(box)["low"] == pytest.approx(0.9) and b.box_dict(box)["high"] == pytest.approx(1 - 10 ** -2.2)


def test_integer_boxes_hold_whole_cells():
    d = Int(16, 256, log=True)
    box = d.shrink([16, 32], d.full, 0.0)
    assert box == pytest.approx((math.log10(16), math.log10(33)))
    assert d.box_dict(box)["low"] == 16 and d.box_dict(box)["high"] == 32
    assert set(draws(d, box, n=3000)) == set(range(16, 33))
    p = Pow2(16, 256)
    box = p.shrink([32, 64], p.full, 0.0)
    assert box == (5, 7) and p.box_dict(box)["low"] == 32 and p.box_dict(box)["high"] == 64
    assert set(draws(p, box, n=500)) == {32, 64} and p.values(box) == [32, 64]


def test_samples_stay_inside_the_box():
    for d in (Uniform(-1, 1), LogUniform(1e-3, 10), OneMinusLogUniform(0.5, 0.999), Int(1, 100), Int(1, 100, log=True),
              Pow2(1, 1024)):
        a, b = d.full
        box = (a + 0.3 * (b - a), a + 0.6 * (b - a))
        assert all(d.contains(v, box) for v in draws(d, box, n=2000)), d


def test_is_power_of_two():
    assert [v for v in range(0, 70) if is_power_of_two(v)] == [1, 2, 4, 8, 16, 32, 64]
    assert not is_power_of_two(True) and not is_power_of_two(16.0)
