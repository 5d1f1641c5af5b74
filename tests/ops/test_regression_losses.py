"""The regression losses mae and huber: values, float64 finite-difference gradients, populations."""
import numpy as np
import pytest

import polydl
import polydl.functional as F
from polydl import losses
from polydl.testing import gradcheck


def _values(rng, shape):
    # residuals kept away from the kinks (0 for mae, ±delta for huber)
    return rng.normal(size=shape), rng.normal(size=shape) + 0.05


def test_mae_and_huber_values():
    z = np.array([[1.0, -2.0], [0.5, 3.0]])
    y = np.array([[0.0, 0.0], [0.0, 0.0]])
    assert F.mae(polydl.tensor(z), y).item() == pytest.approx(np.mean(np.abs(z)))
    d, delta = z - y, 1.0
    h = np.where(np.abs(d) <= delta, 0.5 * d * d, delta * (np.abs(d) - 0.5 * delta))
    assert F.huber(polydl.tensor(z), y, delta).item() == pytest.approx(h.mean())
    assert F.huber(polydl.tensor(z), y, 10.0).item() == pytest.approx(0.5 * np.mean(d * d))  # all within delta


@pytest.mark.parametrize("shape", [(6, 1), (5, 3)])
def test_gradients_match_finite_differences_in_float64(shape):
    rng = np.random.default_rng(0)
    z, y = _values(rng, shape)
    assert gradcheck(lambda a: F.mae(a, y), polydl.tensor(z, requires_grad=True))
    assert gradcheck(lambda a: F.huber(a, y, 0.7), polydl.tensor(z, requires_grad=True))


def test_a_population_gives_each_member_its_own_loss_and_gradient():
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(3, 8, 2)), rng.normal(size=(8, 2))
    for fn in (F.mae, lambda a, t: F.huber(a, t, 0.5)):
        out = fn(polydl.tensor(z), y)
        alone = [fn(polydl.tensor(z[k]), y).item() for k in range(3)]
        np.testing.assert_allclose(out.data, alone, rtol=1e-12)
        assert gradcheck(lambda a, fn=fn: fn(a, y), polydl.tensor(z + 0.0, requires_grad=True))


def test_targets_of_one_column_and_integer_labels():
    z = np.array([[0.5], [1.5]])
    assert F.mae(polydl.tensor(z), np.array([0.0, 1.0])).item() == pytest.approx(0.5)
    scores = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert F.mae(polydl.tensor(scores), np.array([0, 1])).item() == pytest.approx(np.mean([0.1, 0.1, 0.2, 0.2]))
    with pytest.raises(ValueError, match="targets of shape"):
        F.mae(polydl.tensor(scores), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="delta must be > 0"):
        F.huber(polydl.tensor(scores), np.zeros((2, 2)), 0)


def test_registered_as_regression_losses():
    assert {"mse", "mae", "huber"} <= set(losses.names())
    assert [losses.task_of(n) for n in ("mse", "mae", "huber", "softmax_cross_entropy")] == \
        ["regression"] * 3 + ["classification"]
    assert losses.get("huber", delta=2.0).delta == 2.0
    with pytest.raises(ValueError, match="delta must be a number > 0"):
        losses.get("huber", delta=-1)
    per = losses.get("mae", population=2)(polydl.tensor(np.ones((2, 3, 1))), np.zeros((3, 1)))
    np.testing.assert_allclose(per.data, [1.0, 1.0])


def test_on_every_device(device):
    rng = np.random.default_rng(3)
    z, y = rng.normal(size=(2, 5, 3)), rng.normal(size=(5, 3))
    for fn in (F.mae, lambda a, t: F.huber(a, t, 0.5)):
        zt = polydl.tensor(z, requires_grad=True, device=device)
        out = fn(zt, polydl.tensor(y, device=device).data)
        out.backward()
        ref = polydl.tensor(z, requires_grad=True)
        fn(ref, y).backward()
        np.testing.assert_allclose(polydl.backend.to_numpy(out.data), fn(polydl.tensor(z), y).data, rtol=1e-12)
        np.testing.assert_allclose(polydl.backend.to_numpy(zt.grad), ref.grad, rtol=1e-12)
