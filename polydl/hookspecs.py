"""The hooks a polydl plugin can implement (pluggy project name ``polydl``).

Each hook receives a ``register(name, obj, *, override=False)`` callback::

    import polydl

    @polydl.hookimpl
    def polydl_register_schedules(register):
        register("cosine", cosine_factory)

``register`` validates ``obj`` at once and records the plugin, distribution and version that
registered ``name``; a name another plugin holds needs ``override=True``. Plugins are found through
the entry-point group ``polydl`` (see ``polydl.plugins`` and docs/plugins.md).
"""
import pluggy

hookspec = pluggy.HookspecMarker("polydl")
hookimpl = pluggy.HookimplMarker("polydl")


class PolydlSpecs:
    @hookspec
    def polydl_register_schedules(self, register):
        """Register learning-rate schedule factories: ``factory(lr0, **params) -> schedule`` where
        ``schedule(epoch, step) -> float``; parameters are validated in the factory."""

    @hookspec
    def polydl_register_normalizers(self, register):
        """Register normalizer factories: ``factory(num_features, **params) -> Module``."""

    @hookspec
    def polydl_register_losses(self, register):
        """Register loss factories: ``factory(**params) -> loss`` where
        ``loss(scores, targets) -> scalar Tensor``."""

    @hookspec
    def polydl_register_optimizers(self, register):
        """Register optimizer classes: ``cls(params, lr, **hyperparameters)``."""

    @hookspec
    def polydl_register_datasets(self, register):
        """Register dataset loaders: ``loader(seed=0, **params) -> polydl.datasets.Dataset``."""
