import numpy as np

import polydl


def test_add_backward(device):
    a = polydl.tensor([1.0, 2.0], device=device, requires_grad=True)
    (a * a).sum().backward()
    np.testing.assert_allclose(backend_numpy(a.grad), [2.0, 4.0])


def backend_numpy(x):
    return polydl.backend.to_numpy(x)
