"""The one registry: every activation, loss, optimizer and initialiser by name.

Tests, the reference harness and the reports iterate these tables, so adding an entry grows
the conformance matrix with no other edit. Each entry is the implementing class; the class
attributes say what the registry needs to know — an activation's ``output_kind`` (the range
of values it produces), a loss's ``accepts`` (the output kinds it is defined on) and whether
the ``(output, loss)`` pair is fused (:data:`scratchnet.fused.FUSED_PAIRS`).

Specs are a name or a mapping ``{"name": ..., **params}``; :func:`normalize` returns the full
mapping with every parameter filled in, which is what :class:`scratchnet.ModelSpec` stores.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from . import activations as A
from . import losses as L
from . import optimizers as O
from ._checks import check_choice
from .dropout import Dropout
from .fused import FUSED_PAIRS
from .initializers import INITIALIZERS
from .normalization import BatchNorm1d

__all__ = [
    "ACTIVATIONS", "LOSSES", "OPTIMIZERS", "INITIALIZERS", "LAYERS", "FUSED_PAIRS", "Spec",
    "normalize", "make_activation", "make_loss", "make_optimizer", "make_layer", "check_pair", "check_params",
    "outputs_for", "is_fused", "label", "takes_class_indices", "CLASS_INDEX_LOSSES",
]

Spec = str | Mapping[str, Any]

ACTIVATIONS: dict[str, type[A.Activation]] = {cls.name: cls for cls in (
    A.Identity, A.Sigmoid, A.Tanh, A.ReLU, A.LeakyReLU, A.ELU, A.Softplus, A.GELU, A.SiLU,
    A.Softmax, A.LogSoftmax)}

LOSSES: dict[str, type[L.Loss]] = {cls.name: cls for cls in (
    L.MSELoss, L.L1Loss, L.HuberLoss, L.SmoothL1Loss, L.CrossEntropyLoss, L.NLLLoss, L.BCELoss)}

OPTIMIZERS: dict[str, type[O.Optimizer]] = {cls.name: cls for cls in (O.SGD, O.Adam, O.AdamW)}

#: Layers a spec may place after a hidden dense layer (``ModelSpec.after_hidden``); each is built
#: as ``cls(features, dtype, **params)`` (dropout also gets the network's generator, ``rng=``).
LAYERS: dict[str, type] = {cls.name: cls for cls in (BatchNorm1d, Dropout)}


def _split(spec: Spec, kind: str) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        params = dict(spec)
        return params.pop("name"), params
    raise ValueError(f"{kind} must be a name or a mapping with a 'name' key, got {spec!r}")


def check_params(function: Any, params: Mapping[str, Any], kind: str, name: str, *args: Any) -> None:
    """Refuse keyword arguments ``function`` does not take (a misspelt parameter), before it
    runs: a ``TypeError`` the function raises itself (a wrong value type) then stays a
    ``TypeError`` instead of being mistaken for a bad keyword."""
    try:
        inspect.signature(function).bind(*args, **params)
    except TypeError as exc:
        raise ValueError(f"bad parameters {dict(params)!r} for {kind} {name!r}: {exc}") from None


def _build(table: Mapping[str, type], spec: Spec, kind: str, *args: Any) -> Any:
    name, params = _split(spec, kind)
    cls = table[check_choice(name, kind, table)]
    check_params(cls, params, kind, name, *args)
    return cls(*args, **params)


def make_activation(spec: Spec) -> A.Activation:
    """Build an activation from ``"relu"`` or ``{"name": "leaky_relu", "negative_slope": 0.1}``."""
    return _build(ACTIVATIONS, spec, "activation")


def make_loss(spec: Spec, reduction: str = "mean") -> L.Loss:
    """Build a loss from ``"cross_entropy"`` or ``{"name": "huber", "delta": 0.5}``."""
    name, params = _split(spec, "loss")
    return _build(LOSSES, {"name": name, "reduction": reduction, **params}, "loss")


def make_optimizer(spec: Spec, params: list[O.Parameter]) -> O.Optimizer:
    """Build an optimizer over ``params`` from ``{"name": "adam", "lr": 1e-3, ...}``."""
    return _build(OPTIMIZERS, spec, "optimizer", params)


def make_layer(spec: Spec, features: int, dtype: Any, **extra: Any) -> Any:
    """Build a layer of :data:`LAYERS` from ``"batch_norm"`` or ``{"name": "dropout", "p": 0.2}``
    for ``features`` inputs in ``dtype`` (``extra``: ``rng=`` for dropout)."""
    name, params = _split(spec, "layer")
    cls = LAYERS[check_choice(name, "layer", LAYERS)]
    if "rng" in params:
        raise ValueError(f"layer {name!r} must not set 'rng' (the network hands it its generator), got {spec!r}")
    check_params(cls, params, "layer", name, features, dtype)
    if name == "dropout":
        params.update(extra)
    return cls(features, dtype, **params)


def normalize(spec: Spec, kind: str) -> dict[str, Any]:
    """The full spec ``{"name": ..., every parameter}`` of an activation, a loss or a layer."""
    if kind == "layer":
        obj = make_layer(spec, 1, "float64")
        return {"name": obj.name, **obj.params}
    if kind == "activation":
        obj = make_activation(spec)
        return {"name": obj.name, **obj.params}
    if kind == "loss":
        obj = make_loss(spec)
        return {"name": obj.name, **obj.params}
    raise ValueError(f"kind must be 'activation', 'loss' or 'layer', got {kind!r}")


def label(spec: Spec) -> str:
    """Short display name: ``"relu"``, or ``"leaky_relu(negative_slope=0.1)"`` when a parameter
    differs from its default."""
    name, params = _split(spec, "spec")
    if name in LAYERS:
        defaults = make_layer(name, 1, "float64").params
    elif name in ACTIVATIONS:
        defaults = make_activation(name).params
    else:
        defaults = make_loss(name).params
    changed = {k: v for k, v in params.items() if defaults.get(k) != v}
    return name if not changed else f"{name}({', '.join(f'{k}={v}' for k, v in changed.items())})"


def takes_class_indices(loss: str) -> bool:
    """Whether ``loss`` reads integer targets as class indices and its ``"mean"`` divides by the
    batch size ``N`` (cross-entropy, NLL): :attr:`scratchnet.losses.Loss.per_sample`, the one place
    this is stated. The other losses read integer labels as one-hot rows (a single output: the 0/1
    column itself) and their ``"mean"`` divides by every element, ``N·C``."""
    return LOSSES[check_choice(loss, "loss", LOSSES)].per_sample


#: The losses of :func:`takes_class_indices`, in registry order.
CLASS_INDEX_LOSSES: tuple[str, ...] = tuple(name for name, cls in LOSSES.items() if cls.per_sample)


def outputs_for(loss: str) -> list[str]:
    """Names of the output activations on whose range ``loss`` is defined."""
    accepts = LOSSES[check_choice(loss, "loss", LOSSES)].accepts
    return [name for name, cls in ACTIVATIONS.items() if cls.output_kind in accepts]


def check_pair(output: str, loss: str) -> None:
    """Refuse an output activation whose range the loss is undefined on, saying why."""
    out_cls = ACTIVATIONS[check_choice(output, "activation", ACTIVATIONS)]
    loss_cls = LOSSES[check_choice(loss, "loss", LOSSES)]
    if out_cls.output_kind not in loss_cls.accepts:
        need = {"probability": "probabilities in [0, 1]",
                "log_probability": "log-probabilities (log_softmax outputs)"}
        wanted = " or ".join(need[k] for k in sorted(loss_cls.accepts))
        raise ValueError(f"loss {loss!r} is undefined on the outputs of {output!r}: it needs "
                         f"{wanted}, and {output!r} produces {out_cls.output_kind} values; "
                         f"output activations that work with {loss!r}: {', '.join(outputs_for(loss))}")


def is_fused(output: str, loss: str) -> bool:
    """Whether ``(output, loss)`` is computed as one stable fused pair."""
    return (output, loss) in FUSED_PAIRS
