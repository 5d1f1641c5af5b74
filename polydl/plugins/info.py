"""What the plugin system speaks of: the hooks and the kinds they fill, a plugin's record
(:class:`PluginInfo`), its errors and warnings, and the six registries."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["ENTRY_POINT_GROUP", "HOOKS", "BUILTIN_MODULES", "SUPPLIED", "PluginError", "PluginWarning",
           "PluginInfo", "registries", "one_line"]

ENTRY_POINT_GROUP = "polydl"

#: each hook and the kind of component it registers
HOOKS = {
    "polydl_register_schedules": "schedules",
    "polydl_register_normalizers": "normalizers",
    "polydl_register_losses": "losses",
    "polydl_register_optimizers": "optimizers",
    "polydl_register_datasets": "datasets",
    "polydl_register_models": "models",
}
#: the built-ins, registered through the same hooks before any entry point (default plugins)
BUILTIN_MODULES = ("polydl.schedules", "polydl.normalizers", "polydl.losses", "polydl.optim",
                   "polydl.datasets", "polydl.models")
#: per kind, the parameters polydl passes a factory itself: how many leading positional ones
#: (``num_features``, an optimizer's ``params``, a model's ``input_shape`` and ``num_outputs``) and
#: which keywords (a model's: the configuration keys it declares, ``polydl.models.CONFIG_KEYS``);
#: the rest are the user's
SUPPLIED = {"schedules": (0, ("lr0",)), "normalizers": (1, ()), "losses": (0, ()), "optimizers": (1, ("lr",)),
            "datasets": (0, ("seed", "val_fraction", "test_fraction")),
            "models": (2, ("hidden", "activation", "normalizer", "dropout", "normalizer_params"))}


class PluginError(ValueError):
    """A plugin could not be loaded (``POLYDL_STRICT_PLUGINS=1``, or an explicit registration)."""


class PluginWarning(UserWarning):
    """A broken plugin was skipped; the others were loaded."""


@dataclass
class PluginInfo:
    """One plugin: where it came from, the hooks it implements and the names it registered."""

    name: str
    source: str                      # "builtin", "entry point" or "runtime"
    target: str | None = None        # the entry point's value, or the module's name
    distribution: str | None = None
    version: str | None = None
    hooks: list = field(default_factory=list)
    registered: dict = field(default_factory=dict)   # kind -> [names]
    overrides: dict = field(default_factory=dict)    # kind -> [names it replaced]
    shadowed: dict = field(default_factory=dict)     # kind -> {name: the plugin that answers it instead}
    parameters: dict = field(default_factory=dict)   # kind -> {name: [the user's parameters]}
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """``plugin 'x' (distribution d 1.0)``: how messages name a plugin."""
        return f"plugin '{self.name}' ({_dist_text(self.distribution, self.version)})"


def _dist_text(dist, version) -> str:
    if not dist:
        return "no distribution"
    return f"distribution {dist}{' ' + version if version else ''}"


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def registries() -> dict:
    """The six registries by kind: schedules, normalizers, losses, optimizers, datasets, models."""
    from .. import datasets, losses, models, normalizers, optim, schedules
    return {"schedules": schedules.registry, "normalizers": normalizers.registry,
            "losses": losses.registry, "optimizers": optim.registry, "datasets": datasets.registry,
            "models": models.registry}
