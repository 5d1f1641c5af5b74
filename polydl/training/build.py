"""A run's parts, built from its configuration: the device and data, the model, the loss, the
optimizer with its learning-rate schedule, and the mixed-precision settings. Shared by training,
resuming and inference, so that a run directory's model is rebuilt exactly as it was trained."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import amp, backend, losses, memory, models, nn, normalizers, optim, schedules
from .. import random as _random
from ..tensor import Tensor
from .config import ConfigError, TrainConfig
from .data import REGRESSION, Data, load_data, task_for
from .errors import ComponentError
from .model_build import check_model, check_model_keys, input_shape, make_model

__all__ = ["Parts", "BatchPlan", "batch_plan", "setup", "build_parts", "build_model", "start_at_the_mean", "build_loss", "build_schedule", "build_optimizer",
           "optimizer_hyperparameters", "num_outputs", "param_dtype", "compute_dtype", "schedule_label", "optimizer_slots",
           "training_memory", "check_memory", "check_normalizer"]

#: values kept per hidden unit and sample of a mini-batch while it trains: the layer's output, the
#: normalizer's and what it saves for the backward pass, the activation's, dropout's, and gradients
ACTIVATION_VALUES = 8


@dataclass
class BatchPlan:
    """The mini-batches of an epoch over ``m`` training samples: ``n_batches`` of ``batch_size``
    (the last one shorter), except that a last mini-batch smaller than the model can use (a
    single sample for batch normalization) is left out: ``dropped`` samples per epoch."""

    m: int
    batch_size: int
    n_batches: int
    dropped: int

    @property
    def sizes(self) -> np.ndarray:
        sizes = np.full(self.n_batches, self.batch_size, dtype=np.float64)
        sizes[-1] = self.m - self.dropped - (self.n_batches - 1) * self.batch_size
        return sizes

    @property
    def used(self) -> int:
        """Samples trained on per epoch."""
        return self.m - self.dropped


def min_batch(model) -> int:
    """The smallest mini-batch the model trains on: 2 where a layer normalises over the batch
    (its ``min_batch``, e.g. BatchNorm: σ² of one sample is 0), else 1."""
    return max((int(getattr(mod, "min_batch", 1)) for mod in model.modules()), default=1)


def batch_plan(m: int, batch_size: int, smallest: int = 1, normalizer: str = "batchnorm") -> BatchPlan:
    """The mini-batches of an epoch; ``smallest`` is the model's :func:`min_batch`."""
    if batch_size < smallest:
        raise ConfigError(f"batch_size {batch_size} is too small for the {normalizer} normalizer: it normalises over "
                          f"the mini-batch, which needs at least {smallest} samples (the variance of one sample is 0, "
                          f"so nothing is learned); use --batch-size {smallest} or more, or --normalizer none")
    n, rest = divmod(m, batch_size)
    if rest and rest < smallest:
        return BatchPlan(m, batch_size, n, rest)
    return BatchPlan(m, batch_size, n + (1 if rest else 0), 0)


@dataclass
class Parts:
    """What a trainer trains: the model, its loss, its optimizer (owning α and its schedule), the
    width of the last layer, the epoch's mini-batches, and for mixed precision the autocast dtype
    and the loss scaler."""

    model: object
    loss_fn: object
    optimizer: object
    outputs: int
    plan: BatchPlan
    autocast_dtype: object = None
    scaler: object = None


def param_dtype(config: TrainConfig) -> np.dtype:
    """The dtype of weights and data: ``config.dtype``, or float32 master weights for half dtypes."""
    return np.dtype(np.float32) if config.dtype in amp.HALF_DTYPES else np.dtype(config.dtype)


def compute_dtype(config: TrainConfig):
    """The autocast dtype of the matrix products (None unless ``config.dtype`` is a half dtype)."""
    return amp.resolve(config.dtype) if config.dtype in amp.HALF_DTYPES else None


def setup(config: TrainConfig, data=None, load=None):
    """(device, data) of a configuration, after checking it: the device is usable, a half dtype
    can be had (bfloat16 needs ml_dtypes), the data loads. ``data``: arrays or a DataFrame given
    in Python instead of ``config.dataset``; ``load(config)``: what loads the data instead (a
    resumed run's, with the run's own preprocessing)."""
    config.validate()
    dev = backend.check_device(config.device)
    if config.dtype in amp.HALF_DTYPES:
        try:
            amp.resolve(config.dtype)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return dev, (load(config) if load is not None else load_data(config, data=data))


def num_outputs(loss_fn, num_classes: int) -> int:
    """Width of the last layer: one logit for the binary logistic loss, else one score per class."""
    n = getattr(loss_fn, "num_outputs", None)
    if callable(n):
        return int(n(num_classes))
    if isinstance(loss_fn, losses.BinaryCrossEntropy):
        if num_classes != 2:
            raise ConfigError(f"loss binary_cross_entropy needs 2 classes, the data has {num_classes}; "
                              "use --loss softmax_cross_entropy")
        return 1
    return num_classes


def build_model(config: TrainConfig, num_features: int, outputs: int, dev, input_shape: tuple | None = None):
    """The model of ``config`` (``config.model``, the MLP by default: ``polydl.training.model_build``)
    for samples of ``input_shape`` (default: rows of ``num_features``) on ``dev`` in
    ``param_dtype(config)`` (weights drawn from ``config.seed``); a regression's starts at the
    mean (:func:`start_at_the_mean`)."""
    _random.manual_seed(config.seed)
    model = make_model(config, tuple(input_shape) if input_shape else (num_features,), outputs)
    model = model.to(device=dev, dtype=param_dtype(config))
    if task_for(config.loss, config.dataset) == REGRESSION:
        start_at_the_mean(model, outputs)
    return model


def start_at_the_mean(model, outputs: int) -> bool:
    """Zero the output layer (the model's last ``Linear``, where it has ``outputs`` units): the
    untrained model predicts 0 for every sample, a regression's training mean (its targets are
    standardised), and its loss at the start is the targets' variance. Drawn at random, that layer
    would make the untrained model a random function of the inputs, with a variance like the
    targets' own, which a few hundred noisy samples never quite train away. The weights are drawn
    first, so that the random stream is the same. False where the model has no such layer."""
    last = next((m for m in reversed(model.modules()) if isinstance(m, nn.Linear)), None)
    if last is None or last.out_features != outputs:
        return False
    last.weight.data[...] = 0
    if last.bias is not None:
        last.bias.data[...] = 0
    return True


def build_loss(config: TrainConfig, population: int | None = None):
    """The loss of ``config``; ``population=P`` one giving one value per member of P (a loss
    whose factory takes no ``population`` is applied member by member)."""
    if population is None:
        return losses.get(config.loss, **config.loss_params)
    return losses.get(config.loss, population=population, **config.loss_params)


def build_schedule(config: TrainConfig) -> schedules.Schedule:
    """The schedule of ``config``: α0 = ``config.lr``, after its warm-up (``warmup_epochs`` or
    ``warmup_steps``: :func:`polydl.schedules.warmup`)."""
    return schedules.warmup(schedules.get(config.schedule, lr0=config.lr, **config.schedule_params),
                            config.warmup_epochs, config.warmup_steps, config.schedule_unit)


def optimizer_hyperparameters(config: TrainConfig) -> dict:
    """The optimizer's keyword arguments: ``lr`` (the schedule), the shortcut keys that are set
    (``beta``, ``beta1``, ...) and the ``optimizer_params`` table."""
    out = {"lr": build_schedule(config)}
    for key in config.shortcut_hyperparameters():
        out[key] = getattr(config, key)
    out.update(config.optimizer_params)
    return out


def build_optimizer(config: TrainConfig, params, steps_per_epoch: int):
    """The optimizer of ``config`` over ``params``, evaluating its schedule per ``schedule_unit``
    over a run of ``config.epochs`` epochs of ``steps_per_epoch`` mini-batches."""
    opt = optim.get(config.optimizer, params, **optimizer_hyperparameters(config))
    return opt.set_run(config.epochs, steps_per_epoch, config.schedule_unit)


def optimizer_slots(name: str) -> int:
    """Buffers of the parameters' size the optimizer ``name`` keeps (sgd 0, momentum 1, rmsprop 1,
    adam 2): its ``state_names``; 2 for a plugin's optimizer that does not declare its own."""
    entry = optim.registry.entry(name)
    cls = entry.obj
    if entry.builtin:
        return len(getattr(cls, "state_names", ()))
    own = [c for c in getattr(cls, "__mro__", ()) if c is not optim.Optimizer and "state_names" in vars(c)]
    return len(own[0].state_names) if own else 2


def training_memory(config: TrainConfig, num_features: int, outputs: int, batch: int,
                    population: int | None = None) -> dict:
    """Bytes that training ``config``'s model needs at once, an estimate per part: ``parameters``
    (weights, biases, a normalizer's four vectors), their ``gradients``, the optimizer's
    ``state`` and the ``activations`` of a mini-batch of ``batch`` samples; times P for a
    population of P."""
    sizes = [num_features, *config.hidden, outputs]
    values = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    if config.normalizer != "none":
        values += 4 * sum(config.hidden)
    item = param_dtype(config).itemsize * (population or 1)
    units = num_features + ACTIVATION_VALUES * sum(config.hidden) + 2 * outputs
    return {"parameters": values * item, "gradients": values * item,
            "state": optimizer_slots(config.optimizer) * values * item, "activations": batch * units * item}


def check_memory(config: TrainConfig, num_features: int, outputs: int, batch: int, dev,
                 population: int | None = None) -> None:
    """Refuse, before anything is allocated, a model that cannot train in the memory free on
    ``dev``: each weight against the machine (as ``nn.mlp`` does), then the whole of
    :func:`training_memory`, one ``MemoryLimitError`` line saying how much is needed and free."""
    sizes = [num_features, *config.hidden, outputs]
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        nn.check_weight_size(fan_in, fan_out, param_dtype(config), population=population)
    need = training_memory(config, num_features, outputs, batch, population)
    f = memory.format_bytes
    who = f"a population of {population} " if population else ""
    slots = optimizer_slots(config.optimizer)
    memory.check_free(
        f"training {who}mlp {'-'.join(map(str, sizes))} with {config.optimizer}",
        sum(need.values()),
        f"that is {f(need['parameters'])} of parameters, as much for their gradients, "
        f"{f(need['state']) if slots else 'nothing'} for the optimizer's state ({slots} value{'s' * (slots != 1)} per "
        f"parameter) and {f(need['activations'])} for a mini-batch of {batch}: use fewer or smaller layers "
        f"(e.g. --hidden 128,64){', fewer members' if population else ''} or an optimizer with less state "
        "(sgd keeps none)", dev)


def check_normalizer(config: TrainConfig, dev, population: int | None = None) -> None:
    """A plugin's normalizer must keep the shape of its input at every hidden width of the model
    (registration tried only 4 features): one that does not is one ``ComponentError`` line naming
    it, before anything is built. A probe that raises is left to training, which names it."""
    entry = normalizers.registry.entry(config.normalizer)
    if entry.builtin:
        return
    from .provenance import describe, plugin_fix

    lead = () if population is None else (population,)
    with _random.preserved():
        for width in sorted(set(config.hidden)):
            x = np.linspace(-1.0, 1.0, 4 * width).reshape(4, width) * np.ones(lead + (1, 1))
            x = Tensor(backend.to_device(x.astype(param_dtype(config)), dev))
            for mode in ("training", "evaluation"):
                try:
                    module = normalizers.get(config.normalizer, width, population=population,
                                             **config.normalizer_params).to(device=dev, dtype=param_dtype(config))
                    module.train(mode == "training")
                    out = module(x)
                except Exception:
                    return
                if not isinstance(out, Tensor) or tuple(out.shape) != tuple(x.shape):
                    got = f"a Tensor of shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
                    raise ComponentError(f"{describe('normalizer', entry)} returned {got} for a mini-batch of shape "
                                         f"{tuple(x.shape)} in {mode} mode: a normalizer must keep the width of its "
                                         f"layer ({width} units); {plugin_fix(entry)} or choose another normalizer",
                                         None, None, None)


def build_parts(config: TrainConfig, data: Data, dev) -> Parts:
    """Every part a trainer needs, checked: the whole model fits in the memory free (an mlp's,
    reckoned before it is built; other models' layers check their own weights), a plugin's
    normalizer keeps its layer's width and a plugin's model its outputs, a schedule that cannot
    give α fails now, not mid-run."""
    loss_fn = build_loss(config)
    outputs = num_outputs(loss_fn, data.num_classes)
    check_model_keys(config)
    if models.is_mlp(config.model):
        check_memory(config, data.num_features, outputs, min(config.batch_size, len(data.y_train)), dev)
    check_normalizer(config, dev)
    shape = input_shape(data)
    if config.augment and len(shape) < 2:
        raise ConfigError(f"augment crops and flips images, but {data.name} has samples of shape {shape} (rows of "
                          f"{data.num_features} features); train images (a data set with an input shape such as "
                          "(1, 8, 8)) or leave augment off")
    model = build_model(config, data.num_features, outputs, dev, shape)
    check_model(config, model, shape, outputs, param_dtype(config), dev)
    plan = batch_plan(len(data.y_train), config.batch_size, min_batch(model), config.normalizer)
    opt = build_optimizer(config, model.parameters(), plan.n_batches)
    opt.next_lr()
    autocast_dtype = compute_dtype(config)
    scaler = amp.GradScaler(autocast_dtype) if autocast_dtype is not None else None
    return Parts(model, loss_fn, opt, outputs, plan, autocast_dtype, scaler)


def schedule_label(config: TrainConfig) -> str:
    """``inverse_time(lr0=0.01, decay_rate=1) per epoch``."""
    params = ", ".join(f"{k}={v}" for k, v in config.schedule_params.items())
    n, unit = (config.warmup_epochs, "epoch") if config.warmup_epochs else (config.warmup_steps, "step")
    warm = f" after a warm-up of {n} {unit}{'s' * (n != 1)}" if n else ""
    return f"{config.schedule}(lr0={config.lr}{', ' + params if params else ''}) per {config.schedule_unit}{warm}"
