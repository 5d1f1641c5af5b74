"""A population's parts: P configurations that agree on everything that fixes the shapes and the
data (:data:`SHARED_KEYS`) become one stacked model (every parameter with a leading member axis,
``nn.mlp(..., population=P)``), one loss giving one value per member, and one optimizer holding
one row of its flat buffers and one value of every hyperparameter per member. Member k's weights
and random stream are drawn exactly as the same configuration trained alone draws them.

A plugin's loss or normalizer whose factory takes no ``population`` is applied member by member
(``polydl.losses.get`` / ``polydl.normalizers.get`` with ``population``), and so is a model whose
factory takes none (``cnn``, ``lenet5``: :class:`polydl.models.ModelByMember`): the same results,
more slowly; :func:`build_population` returns the note that says so."""
from __future__ import annotations

import inspect
from pathlib import Path

from .. import losses, models, normalizers, optim
from .. import random as _random
from .build import (
    Parts,
    batch_plan,
    build_loss,
    build_model,
    check_memory,
    check_normalizer,
    min_batch,
    num_outputs,
    optimizer_hyperparameters,
    param_dtype,
)
from .config import KEYS, ConfigError, TrainConfig, from_dict
from .members import Member
from .model_build import check_model, check_model_keys, copy_member, input_shape, stacked_model

__all__ = ["MEMBER_KEYS", "SHARED_KEYS", "check_members", "optimizer_arguments", "build_population",
           "member_by_member_note"]

#: the keys in which the members of a population may differ
MEMBER_KEYS = ("seed", "lr", "beta", "beta1", "beta2", "eps", "weight_decay", "optimizer_params", "schedule",
               "schedule_params", "dropout", "plot", "out", "monitor", "min_delta", "early_stopping_patience",
               "restore_best", "plateau_factor", "plateau_patience", "warmup_epochs", "warmup_steps")
#: the keys that fix the shapes and the data: every member has the same
SHARED_KEYS = tuple(k for k in KEYS if k not in MEMBER_KEYS)


def check_members(configs) -> list[TrainConfig]:
    """The configurations, validated, if they can train as one population; else one
    :class:`ConfigError` naming the first key on which two of them differ."""
    configs = [c if isinstance(c, TrainConfig) else from_dict(dict(c)) for c in configs]
    if not configs:
        raise ConfigError("a population needs at least one configuration")
    first = configs[0].validate().to_dict()
    for i, cfg in enumerate(configs[1:], start=1):
        d = cfg.validate().to_dict()
        for key in SHARED_KEYS:
            if d[key] != first[key]:
                raise ConfigError(f"configurations 0 and {i} differ in {key} ({first[key]!r} and {d[key]!r}): the members "
                                  "of a population share everything that fixes the shapes and the data; they may differ "
                                  f"in {', '.join(k for k in MEMBER_KEYS if k != 'out')}")
    if configs[0].dtype in ("float16", "bfloat16"):
        raise ConfigError(f"a population trains in float32 or float64, not {configs[0].dtype} (mixed precision's loss "
                          "scaling is one scale for the whole computation); train those models one by one")
    return configs


def optimizer_arguments(configs, cls) -> dict:
    """The optimizer's keyword arguments with one value per member where members differ (a
    member that does not set a hyperparameter has the optimizer's default)."""
    per = [optimizer_hyperparameters(c) for c in configs]
    keys = sorted({k for h in per for k in h}, key=lambda k: (k != "lr", k))
    try:
        defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items() if p.default is not p.empty}
    except (TypeError, ValueError):
        defaults = {}
    out = {}
    for key in keys:
        values = []
        for i, h in enumerate(per):
            if key in h:
                values.append(h[key])
            elif key in defaults:
                values.append(defaults[key])
            else:
                raise ConfigError(f"member {i} does not set the optimizer's {key}, which has no default; set it for "
                                  "every member")
        same = all(v is values[0] or (not isinstance(v, (dict, list)) and v == values[0]) for v in values)
        out[key] = values[0] if same and key != "lr" else values
    return out


def member_by_member_note(config: TrainConfig, loss_fn, model) -> str | None:
    """The one note for a population whose loss or normalizer takes no ``population`` (applied
    member by member); None where both do."""
    from .provenance import COMPONENTS, describe

    which = []
    if isinstance(loss_fn, losses.MemberByMember):
        which.append(describe("loss", COMPONENTS["loss"].entry(config.loss)))
    if any(isinstance(m, normalizers.MemberByMember) for m in model.modules()):
        which.append(describe("normalizer", COMPONENTS["normalizer"].entry(config.normalizer)))
    if isinstance(model, models.ModelByMember):
        which.append(describe("model", COMPONENTS["model"].entry(config.model)))
    if not which:
        return None
    takes = "takes" if len(which) == 1 else "take"
    return (f"the {' and the '.join(which)} {takes} no population argument, so the population applies "
            f"{'it' if len(which) == 1 else 'them'} member by member: the same results, more slowly "
            "(docs/plugins.md says how a plugin declares population support)")


def build_population(configs, data, dev, out_dirs) -> tuple[Parts, list[Member], list[str]]:
    """(parts, members, notes) of a population of ``configs`` (checked by :func:`check_members`)
    on ``dev``: the stacked model with member k's weights those of ``configs[k]`` alone, the
    loss, the optimizer with per-member hyperparameters set for the run, and member k's random
    stream continuing from its weights' draws, as the model alone's does."""
    cfg = configs[0]
    P = len(configs)
    outputs = num_outputs(build_loss(cfg), data.num_classes)
    loss_fn = build_loss(cfg, population=P)
    check_model_keys(cfg)
    if models.is_mlp(cfg.model):
        check_memory(cfg, data.num_features, outputs, min(cfg.batch_size, len(data.y_train)), dev, P)
    check_normalizer(cfg, dev, P)
    shape = input_shape(data)
    model = stacked_model(cfg, [c.dropout for c in configs], shape, outputs, P, dev, param_dtype(cfg))
    alones, members = [], []  # the models alone of a model trained member by member
    for k, (c, out) in enumerate(zip(configs, out_dirs, strict=True)):
        alone = build_model(c, data.num_features, outputs, dev, shape)  # its seed, its draws
        stream = _random.Stream.from_state(_random.get_state())  # then its dropout masks
        if k == 0:
            check_model(cfg, alone, shape, outputs, param_dtype(cfg), dev)
        if model is None:
            alones.append(alone)
        else:
            copy_member(model, k, alone)
        names = [n for n, _ in alone.named_parameters()] + [n for n, _ in alone.named_buffers()]
        members.append(Member(k, c, Path(out), names, stream))
    if model is None:
        model = models.ModelByMember(alones, cfg.model)
    plan = batch_plan(len(data.y_train), cfg.batch_size, min_batch(model), cfg.normalizer)
    cls = optim.registry.lookup(cfg.optimizer)
    opt = optim.get(cfg.optimizer, model.parameters(), **optimizer_arguments(configs, cls))
    opt.set_run(cfg.epochs, plan.n_batches, cfg.schedule_unit)
    opt.next_lr()
    note = member_by_member_note(cfg, loss_fn, model)
    return Parts(model, loss_fn, opt, outputs, plan), members, [note] if note else []
