"""What an implementation implements: its declared :class:`Capabilities` (the keys are documented
in :mod:`scratchnet_reference.core.adapter`), read by :func:`capabilities_of`, and the
:class:`AdapterError` that names what an implementation's declaration (or surface) gets wrong.

The conformance run narrows its matrix with these; everything the registry has is the default.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scratchnet import ModelSpec, registry
from scratchnet.spec import REDUCTIONS  # the names a spec accepts (not the loss code)

from .architecture import ANY, Architecture, parse_architectures
from .matrix import AFTER, DTYPES, OPTIMIZER_CONFIGS, Case

__all__ = ["AdapterError", "Capabilities", "CAPABILITY_KEYS", "capabilities_of", "describe_capabilities",
           "owner_of", "HIDDEN_PREFERENCE", "PAIR_PREFERENCE"]

CAPABILITY_KEYS = ("activations", "hidden", "outputs", "losses", "reductions", "dtypes", "optimizers",
                   "optimizer_options", "hyperparameters", "layers", "architectures")

#: Preferred models: the first supported one is what the training checks train, and what
#: validation builds first.
HIDDEN_PREFERENCE = ("tanh", "sigmoid", "relu", "identity")
PAIR_PREFERENCE = (("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy"), ("identity", "mse"),
                    ("sigmoid", "mse"), ("log_softmax", "nll"))
_TEMPLATE = "examples/adapter_template.py in the scratchnet repository"


class AdapterError(ValueError):
    """An implementation that does not follow the adapter protocol; the message lists every
    problem found."""

    def __init__(self, owner: str, problems: Iterable[str]):
        self.owner = owner
        self.problems = list(problems)
        lines = [f"{owner} does not follow the adapter protocol (scratchnet_reference.core.adapter):"]
        lines += [f"  - {p}" for p in self.problems]
        lines.append(f"  (a commented adapter to start from: {_TEMPLATE})")
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------------------------
# Capabilities
# --------------------------------------------------------------------------------------------

def _optimizer_options() -> frozenset[str]:
    names: set[str] = set()
    for cls in registry.OPTIMIZERS.values():
        names |= {p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "params", "lr")}
    for config in OPTIMIZER_CONFIGS.values():
        names |= set(config) - {"name", "lr"}
    return frozenset(names)


def _hyperparameters() -> frozenset[str]:
    names: set[str] = set()
    for name in registry.ACTIVATIONS:
        names |= set(registry.normalize(name, "activation")) - {"name"}
    for name in registry.LOSSES:
        names |= set(registry.normalize(name, "loss")) - {"name"}
    return frozenset(names)


def _known(key: str) -> frozenset[str]:
    """Every name a capability key may list."""
    return {
        "activations": frozenset(registry.ACTIVATIONS), "hidden": frozenset(registry.ACTIVATIONS),
        "outputs": frozenset(registry.ACTIVATIONS), "losses": frozenset(registry.LOSSES),
        "reductions": frozenset(REDUCTIONS), "dtypes": frozenset(DTYPES),
        "optimizers": frozenset(registry.OPTIMIZERS), "optimizer_options": _optimizer_options(),
        "hyperparameters": _hyperparameters(), "layers": frozenset(registry.LAYERS),
    }[key]


@dataclass(frozen=True)
class Capabilities:
    """What an implementation implements. :meth:`everything` is scratchnet's; ``training`` is
    empty, or why no training check can run at all (e.g. the model has no ``step()``)."""

    hidden: frozenset[str]
    outputs: frozenset[str]
    losses: frozenset[str]
    reductions: frozenset[str]
    dtypes: frozenset[str]
    optimizers: frozenset[str]
    optimizer_options: frozenset[str]
    hyperparameters: frozenset[str]
    training: str = ""
    declared: tuple[str, ...] = field(default=(), compare=False)
    layers: frozenset[str] = frozenset()
    #: what ``build`` accepts (:mod:`~scratchnet_reference.core.architecture`): declared, or found by
    #: :func:`~scratchnet_reference.core.adapter.validate_implementation`; ``()``: any (the default)
    architectures: tuple[Architecture, ...] = ()

    @property
    def architecture(self) -> Architecture:
        """The architecture the run builds every model with: the first declared or found."""
        return self.architectures[0] if self.architectures else ANY

    @classmethod
    def everything(cls) -> Capabilities:
        return cls(hidden=_known("hidden"), outputs=_known("outputs"), losses=_known("losses"),
                   reductions=_known("reductions"), dtypes=_known("dtypes"), optimizers=_known("optimizers"),
                   optimizer_options=_known("optimizer_options"), hyperparameters=_known("hyperparameters"),
                   layers=_known("layers"))

    @classmethod
    def from_declaration(cls, declared: Any, owner: str = "implementation") -> Capabilities:
        """From a mapping ``{key: names}`` (keys of :data:`CAPABILITY_KEYS`, all optional) or a
        :class:`Capabilities`; raises :class:`AdapterError` naming unknown keys and names."""
        if declared is None:
            return cls.everything()
        if isinstance(declared, Capabilities):
            return declared
        if not isinstance(declared, Mapping):
            raise AdapterError(owner, [f"{owner}.capabilities must be a mapping {{key: [names]}} with keys from "
                                       f"{', '.join(CAPABILITY_KEYS)}; got {type(declared).__name__}"])
        problems = []
        architectures: tuple[Architecture, ...] = ()
        if "architectures" in declared:
            architectures, found = parse_architectures(declared["architectures"],
                                                       f"{owner}.capabilities['architectures']")
            problems += found
        unknown_keys = sorted(set(map(str, declared)) - set(CAPABILITY_KEYS))
        if unknown_keys:
            problems.append(f"{owner}.capabilities has unknown key(s) {unknown_keys}; valid keys: "
                            f"{', '.join(CAPABILITY_KEYS)}")
        values: dict[str, frozenset[str]] = {}
        for key in CAPABILITY_KEYS:
            if key not in declared or key == "architectures":
                continue
            raw = declared[key]
            if isinstance(raw, str) or not isinstance(raw, Iterable):
                problems.append(f"{owner}.capabilities[{key!r}] must be a list of names, got {raw!r}")
                continue
            names = frozenset(str(n) for n in raw)
            bad = sorted(names - _known(key))
            if bad:
                problems.append(f"{owner}.capabilities[{key!r}]: unknown name(s) {bad}; known: "
                                f"{', '.join(sorted(_known(key)))}")
            values[key] = names & _known(key)
        if problems:
            raise AdapterError(owner, problems)
        activations = values.get("activations", _known("activations"))
        return cls(hidden=values.get("hidden", activations), outputs=values.get("outputs", activations),
                   losses=values.get("losses", _known("losses")),
                   reductions=values.get("reductions", _known("reductions")),
                   dtypes=values.get("dtypes", _known("dtypes")),
                   optimizers=values.get("optimizers", _known("optimizers")),
                   optimizer_options=values.get("optimizer_options", _known("optimizer_options")),
                   hyperparameters=values.get("hyperparameters", _known("hyperparameters")),
                   layers=values.get("layers", frozenset()),
                   declared=tuple(k for k in CAPABILITY_KEYS if k in values or (k == "architectures" and
                                                                               architectures)),
                   architectures=architectures)

    @property
    def is_everything(self) -> bool:
        return self == Capabilities.everything()

    # -- what is missing for a piece of the matrix ----------------------------------------
    def missing(self, *, hidden: Iterable[str] = (), output: str | None = None, loss: str | None = None,
                reduction: str | None = None, dtype: str | None = None) -> str:
        """``""`` when everything named is implemented, else what is not, in words
        (``"hidden activation gelu, dtype float32"``)."""
        parts = [f"hidden activation {h}" for h in dict.fromkeys(hidden) if h not in self.hidden]
        if output is not None and output not in self.outputs:
            parts.append(f"output activation {output}")
        if loss is not None and loss not in self.losses:
            parts.append(f"loss {loss}")
        if reduction is not None and reduction not in self.reductions:
            parts.append(f"reduction {reduction}")
        if dtype is not None and dtype not in self.dtypes:
            parts.append(f"dtype {dtype}")
        return ", ".join(parts)

    def missing_for_spec(self, spec: ModelSpec) -> str:
        parts = [self.missing(hidden=[h["name"] for h in spec.hidden], output=spec.output["name"],
                              loss=spec.loss["name"], reduction=spec.reduction, dtype=spec.dtype)]
        changed = sorted({k for s in (*spec.activations, spec.loss) for k, v in s.items()
                          if k != "name" and v != _default(s["name"], k)} - self.hyperparameters)
        if changed:
            parts.append("non-default " + ", ".join(changed))
        return ", ".join(p for p in parts if p)

    def missing_for_case(self, case: Case) -> str:
        missing = self.missing(hidden=[case.hidden], output=case.output, loss=case.loss, reduction=case.reduction,
                               dtype=case.dtype)
        return ", ".join(p for p in (missing, self.missing_layers(case.after)) if p)

    def missing_layers(self, after: str) -> str:
        """What of the :data:`~scratchnet_reference.core.matrix.AFTER` arrangement ``after`` is not
        implemented (``""`` for a dense-only case)."""
        names = [layer if isinstance(layer, str) else layer["name"] for layer in AFTER.get(after, ())]
        return ", ".join(f"layer {name}" for name in names if name not in self.layers)

    def missing_for_optimizer(self, config: str | Mapping[str, Any]) -> str:
        spec = OPTIMIZER_CONFIGS[config] if isinstance(config, str) else config
        if self.training:
            return self.training
        if spec["name"] not in self.optimizers:
            return f"optimizer {spec['name']}"
        options = sorted(k for k in spec if k not in ("name", "lr") and k not in self.optimizer_options)
        return f"{spec['name']} option {', '.join(options)}" if options else ""

    def training_model(self, dtype: str) -> tuple[str, str, str, str] | None:
        """``(hidden, output, loss, reduction)`` of the model the training checks train: tanh →
        softmax + cross_entropy (mean) where implemented, else the closest implemented one."""
        hidden = next((h for h in (*HIDDEN_PREFERENCE, *sorted(self.hidden)) if h in self.hidden), None)
        defined = [(o, l) for o in registry.ACTIVATIONS for l in registry.LOSSES if o in registry.outputs_for(l)]
        pair = next(((o, l) for o, l in (*PAIR_PREFERENCE, *defined)
                     if o in self.outputs and l in self.losses and (o, l) in defined), None)
        reduction = next((r for r in ("mean", "sum") if r in self.reductions), None)
        if hidden is None or pair is None or reduction is None or dtype not in self.dtypes:
            return None
        return hidden, pair[0], pair[1], reduction

    def missing_for_training(self, config: str | Mapping[str, Any], dtype: str) -> str:
        """Why an optimizer configuration cannot be trained in lockstep (``""``: it can)."""
        reason = self.missing_for_optimizer(config)
        if reason:
            return reason
        if dtype not in self.dtypes:
            return f"dtype {dtype}"
        if self.training_model(dtype) is None:
            return "no implemented hidden activation, (output, loss) pair and reduction to train"
        return ""

    def describe(self) -> str:
        """One line for the report metadata: the declared sets (``"all"`` for what is not narrowed)."""
        if self.is_everything:
            return "everything"
        full = Capabilities.everything()
        parts = []
        for key in ("hidden", "outputs", "losses", "reductions", "dtypes", "optimizers", "optimizer_options",
                    "hyperparameters", "layers"):
            mine = getattr(self, key)
            parts.append(f"{key}={'all' if mine == getattr(full, key) else ','.join(sorted(mine)) or 'none'}")
        if self.training:
            parts.append(f"training: {self.training}")
        if self.architectures:
            parts.append(f"architecture: {self.architecture.describe()}")
        return "; ".join(parts)


def describe_capabilities(caps: Capabilities) -> str:
    return caps.describe()


def _default(name: str, key: str) -> Any:
    kind = "activation" if name in registry.ACTIVATIONS else "loss"
    return registry.normalize(name, kind).get(key)


def capabilities_of(impl: Any) -> Capabilities:
    """The capabilities ``impl`` declares (``capabilities`` attribute or method; none: everything)."""
    declared = getattr(impl, "capabilities", None)
    if callable(declared) and not isinstance(declared, Mapping | Capabilities):
        declared = declared()
    return Capabilities.from_declaration(declared, owner_of(impl))


def owner_of(obj: Any) -> str:
    return obj.__name__ if isinstance(obj, type) else type(obj).__name__
