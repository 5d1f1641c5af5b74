"""The JAX reference of ``run.py`` (W1–W3) and ``population.py`` (W4, W5): the same BatchNorm MLP
as polydl's side, compiled whole.

Per hidden layer z = x W (no bias), BatchNorm in training mode with the mini-batch's μ and biased
σ² (ε = 1e-5; running averages kept as polydl keeps them, 0.9·old + 0.1·batch), ReLU; then
z = x W + b; softmax cross-entropy J = mean(logsumexp(z) − z_y); Adam with bias correction
(β2 = 0.999, ε = 1e-8; α and β1 given) over every parameter. One epoch is ``jax.jit`` of a
``lax.scan`` over its mini-batches (a population: ``jit(vmap(epoch))`` over the members, the data
shared), float32. It starts from polydl's initial weights (He normal, the same seed), so its
loss after an epoch can be compared with polydl's. Compile time (trace, lower, compile) is
measured once, apart from the timed epochs.

JAX is needed only here (pip install jax jaxlib); it is never a dependency of polydl.
"""
from __future__ import annotations

import time

import numpy as np

SKIP = "JAX is not installed (pip install jax jaxlib): skipping the JAX side"


def available() -> bool:
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str:
    try:
        import jax
    except ImportError:
        return "not installed"
    return jax.__version__


def initial_params(model):
    """A polydl ``nn.mlp`` BatchNorm model's parameters (copies, before any step) as the JAX form's
    tree: ``{"w", "g", "b"}`` per hidden layer, then ``{"w", "b"}``; each with a leading member
    axis for a population."""
    ps = [np.array(p.data, dtype=np.float32) for p in model.parameters()]
    hidden = (len(ps) - 2) // 3
    tree = [{"w": ps[3 * i], "g": ps[3 * i + 1], "b": ps[3 * i + 2]} for i in range(hidden)]
    return tree + [{"w": ps[-2], "b": ps[-1]}]


def epoch_function(momentum=0.9, bn_eps=1e-5, beta2=0.999, eps=1e-8):
    """``epoch(state, X, Y, lr, beta1) -> (state, loss of the last mini-batch)`` for one model;
    state = (params, running averages, m, v, t), X (steps, batch, inputs), Y (steps, batch)."""
    import jax
    import jax.numpy as jnp

    tree_map = jax.tree_util.tree_map

    def forward(params, stats, x):
        new_stats = []
        for layer, (rm, rv) in zip(params[:-1], stats):
            z = x @ layer["w"]
            mu = z.mean(0)
            zc = z - mu
            var = (zc * zc).mean(0)
            x = jax.nn.relu(zc * (layer["g"] * jax.lax.rsqrt(var + bn_eps)) + layer["b"])
            new_stats.append((momentum * rm + (1 - momentum) * mu, momentum * rv + (1 - momentum) * var))
        return x @ params[-1]["w"] + params[-1]["b"], new_stats

    def loss(params, stats, x, t):
        z, new_stats = forward(params, stats, x)
        picked = jnp.take_along_axis(z, t[:, None], axis=1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - picked), new_stats

    grad = jax.value_and_grad(loss, has_aux=True)

    def epoch(state, X, Y, lr, beta1):
        def step(carry, xy):
            params, stats, m, v, t = carry
            (value, stats), g = grad(params, stats, *xy)
            t = t + 1
            m = tree_map(lambda m_, g_: beta1 * m_ + (1 - beta1) * g_, m, g)
            v = tree_map(lambda v_, g_: beta2 * v_ + (1 - beta2) * g_ * g_, v, g)
            bc1, bc2 = 1 - beta1 ** t, 1 - beta2 ** t
            params = tree_map(lambda p, m_, v_: p - lr * (m_ / bc1) / (jnp.sqrt(v_ / bc2) + eps), params, m, v)
            return (params, stats, m, v, t), value

        state, losses = jax.lax.scan(step, state, (X, Y))
        return state, losses[-1]

    return epoch


class JaxMLP:
    """One model (``lr``, ``beta1`` numbers) or a population (sequences of P values, ``params``
    with a leading member axis): ``epoch()`` trains one epoch of the compiled function and returns
    the loss of its last mini-batch (the mean over members for a population)."""

    def __init__(self, params, X, y, batch, lr, beta1=0.9):
        import jax
        import jax.numpy as jnp

        self.jax = jax
        members = np.ndim(lr) == 1
        steps = len(y) // batch
        self.X = jnp.asarray(X[:steps * batch].reshape(steps, batch, X.shape[1]))
        self.Y = jnp.asarray(y[:steps * batch].reshape(steps, batch).astype(np.int32))
        params = jax.tree_util.tree_map(jnp.asarray, params)
        lead = (len(lr),) if members else ()
        stats = [(jnp.zeros(layer["g"].shape, jnp.float32), jnp.ones(layer["g"].shape, jnp.float32))
                 for layer in params[:-1]]
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        self.state = (params, stats, zeros, jax.tree_util.tree_map(jnp.zeros_like, params),
                      jnp.zeros(lead, jnp.float32))
        self.lr, self.beta1 = jnp.asarray(lr, jnp.float32), jnp.asarray(beta1, jnp.float32)
        fn = epoch_function()
        if members:
            fn = jax.vmap(fn, in_axes=(0, None, None, 0, 0))
        t0 = time.perf_counter()
        self.run = jax.jit(fn, donate_argnums=0).lower(self.state, self.X, self.Y, self.lr, self.beta1).compile()
        self.compile_s = time.perf_counter() - t0

    def epoch(self):
        self.state, last = self.run(self.state, self.X, self.Y, self.lr, self.beta1)
        self.jax.block_until_ready(self.state)
        self.last = np.asarray(last)  # per member for a population
        return float(np.mean(self.last))
