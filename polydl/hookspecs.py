"""The hooks a polydl plugin can implement (pluggy project name ``polydl``).

Each hook receives a ``register(name, obj, *, override=False)`` callback::

    import polydl

    @polydl.hookimpl
    def polydl_register_schedules(register):
        register("warmup_cosine", warmup_cosine_factory)

``register`` validates ``obj`` at once, probing it (the built-ins are registered before any
plugin's hooks are called, so a component may use them), and records the plugin, distribution
and version that registered ``name``; a name another plugin holds needs ``override=True``.
Plugins are found through the entry-point group ``polydl`` (see ``polydl.plugins`` and
docs/plugins.md).
"""
import pluggy

hookspec = pluggy.HookspecMarker("polydl")
hookimpl = pluggy.HookimplMarker("polydl")


class PolydlSpecs:
    """One hook per kind of component. Each says how polydl calls what it registers."""

    @hookspec
    def polydl_register_schedules(self, register):
        """Register learning-rate schedule factories, called ``factory(lr0=α0, **params)``
        (keywords; a bad parameter raises ``ValueError``). The factory returns a ``Schedule``
        or a callable ``schedule(position) -> α``: it receives one
        :class:`polydl.schedules.Position` (``epoch``, ``step``, ``batch``, ``fractional_epoch``,
        ``steps_per_epoch``, ``epochs``, ``total_steps``, ``progress``) and returns a finite
        number >= 0, a pure function of the position."""

    @hookspec
    def polydl_register_normalizers(self, register):
        """Register normalizer factories, called ``factory(num_features, **params)`` (``dtype``
        and ``device`` never: the model is moved with ``Module.to``). The factory returns a
        ``polydl.nn.Module`` that maps a Tensor (batch, num_features) to a Tensor of the same
        shape, in training and in evaluation mode. For a population of P models, a factory that
        takes ``population`` is called with ``population=P`` and its Module maps
        (P, batch, num_features); any other normalizer is applied member by member."""

    @hookspec
    def polydl_register_losses(self, register):
        """Register loss factories, called ``factory(**params)``. The loss is called
        ``loss(scores, targets)``: ``scores`` the model's output Tensor (batch, outputs),
        ``targets`` the integer class labels, an array (batch,) on the scores' device; it returns
        a scalar Tensor with a gradient path to the scores. Optional methods: ``predict(scores)``
        (the class of each row; the arg-max without it) and ``probabilities(scores)``. For a
        population of P models, a factory that takes ``population`` is called with
        ``population=P`` and its loss gets scores (P, batch, outputs) and returns the members'
        losses, shape (P,); any other loss is applied member by member."""

    @hookspec
    def polydl_register_optimizers(self, register):
        """Register optimizer classes (subclasses of ``polydl.optim.Optimizer``), called
        ``cls(params, lr=schedule, **hyperparameters)``: ``params`` the model's parameters, ``lr``
        a ``polydl.schedules.Schedule`` that the optimizer evaluates at its own position (for a
        population of P models, ``lr`` is a list of P schedules and each hyperparameter one value,
        or a list of P where the members differ). polydl then calls
        ``set_run(epochs, steps_per_epoch, schedule_unit)`` and trains through the base class's
        interface: ``zero_grad``, ``step``, its position and its state dicts."""

    @hookspec
    def polydl_register_datasets(self, register):
        """Register dataset loaders, called ``loader(seed=s, **params)`` (keywords; also
        ``val_fraction`` and ``test_fraction`` where the loader takes them). A loader returns a
        ``polydl.datasets.Dataset`` (``polydl.datasets.split`` builds one from arrays)."""

    @hookspec
    def polydl_register_models(self, register):
        """Register model factories, called ``factory(input_shape, num_outputs, **params)``:
        ``input_shape`` the shape of one sample as a tuple ((channels, height, width) for images,
        (features,) for a table), ``num_outputs`` the width of the last layer. ``params`` are the
        ``model_params`` table and those of the configuration keys ``hidden``, ``activation``,
        ``normalizer``, ``dropout`` and ``normalizer_params`` that the factory declares (a key it
        does not declare must keep its default). The factory returns a ``polydl.nn.Module`` that
        maps rows (batch, prod(input_shape)), the data as polydl keeps it, to scores (batch,
        num_outputs) (``polydl.nn.Unflatten(input_shape)`` views the rows as images); input it
        cannot take is a ``ValueError`` naming the sizes. For a population of P models, a factory
        that takes ``population`` is called with ``population=P`` (and ``dropout`` one rate per
        member) and its Module maps (batch, F) or (P, batch, F) to (P, batch, num_outputs); any
        other model is trained member by member."""
