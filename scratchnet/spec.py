"""``ModelSpec``: the one JSON-serialisable description of a model.

Both scratchnet and the PyTorch reference build their model from it, so "the identical model"
means "the same spec and the same state dict".
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import registry
from ._checks import as_dtype, check_choice, check_int
from .losses import REDUCTIONS

__all__ = ["ModelSpec"]


@dataclass(frozen=True)
class ModelSpec:
    """A multi-layer perceptron: ``sizes = (inputs, hidden..., outputs)``, one activation per
    hidden layer (a single spec is repeated), an output activation, a loss and its reduction.

    Activations and losses are names or ``{"name": ..., **params}`` mappings; the spec stores
    them normalised with every parameter filled in. ``init`` names an initialiser
    (:mod:`scratchnet.initializers`), optionally with parameters; ``seed`` seeds it (and, after
    the weights, the dropout masks).

    ``after_hidden`` places layers of :data:`scratchnet.registry.LAYERS` (``"batch_norm"``,
    ``"dropout"``) after hidden dense layers, behind their activation: a layer spec or a list of
    them (placed, in order, after every hidden layer: ``["batch_norm", "dropout"]``), or a list
    with one entry per hidden layer, each ``None`` or a list of layer specs
    (``[["batch_norm", {"name": "dropout", "p": 0.2}], None]``); at most one of each kind per
    layer. The output layer takes none (its values go to the loss). Stored normalised as one
    tuple per hidden layer, or ``()`` when there are none anywhere — then :meth:`to_dict` leaves
    the field out, so a dense-only spec serialises exactly as before the field existed, and older
    JSON loads unchanged.

    Example::

        >>> spec = ModelSpec((4, 16, 3), hidden="relu", output="softmax", loss="cross_entropy")
        >>> ModelSpec.from_json(spec.to_json()) == spec
        True
    """

    sizes: tuple[int, ...]
    hidden: tuple[dict[str, Any], ...] | Any = ()
    output: dict[str, Any] | Any = "identity"
    loss: dict[str, Any] | Any = "mse"
    reduction: str = "mean"
    dtype: str = "float64"
    init: dict[str, Any] | Any = "torch_default"
    seed: int = 0
    after_hidden: tuple[tuple[dict[str, Any], ...], ...] | Any = ()

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        if isinstance(self.sizes, (str, bytes)) or not isinstance(self.sizes, Sequence):
            raise TypeError(f"sizes must be a sequence of layer widths, got {self.sizes!r}")
        sizes = tuple(check_int(s, f"sizes[{i}]", low=1) for i, s in enumerate(self.sizes))
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least (inputs, outputs), got {self.sizes!r}")
        set_("sizes", sizes)
        n_hidden = len(sizes) - 2
        hidden = self.hidden
        if isinstance(hidden, (str, Mapping)):
            hidden = (hidden,) * n_hidden
        elif isinstance(hidden, (bytes, bytearray)) or not isinstance(hidden, Sequence):
            raise TypeError(f"hidden must be one activation for every hidden layer (a name such as "
                            f"'relu' or a mapping with a 'name' key) or a sequence of one per hidden "
                            f"layer, got {hidden!r}")
        hidden = tuple(hidden)
        if len(hidden) != n_hidden:
            raise ValueError(f"hidden must name one activation per hidden layer: sizes {sizes} has "
                             f"{n_hidden} hidden layers, got {len(hidden)} activations")
        set_("hidden", tuple(registry.normalize(h, "activation") for h in hidden))
        set_("output", registry.normalize(self.output, "activation"))
        set_("loss", registry.normalize(self.loss, "loss"))
        check_choice(self.reduction, "reduction", REDUCTIONS)
        set_("dtype", as_dtype(self.dtype).name)
        name, params = registry._split(self.init, "init")
        init = registry.INITIALIZERS[check_choice(name, "init", registry.INITIALIZERS)]
        if "dtype" in params:
            raise ValueError(f"init must not set 'dtype' (it draws in the spec's dtype), got {self.init!r}")
        registry.check_params(init, params, "init", name, None, 1, 1)
        init(np.random.default_rng(0), 1, 1, **params)  # a 1x1 draw checks the values now, not at Network()
        set_("init", {"name": name, **params})
        set_("seed", check_int(self.seed, "seed", low=0))
        set_("after_hidden", _normalize_after(self.after_hidden, n_hidden))
        registry.check_pair(self.output["name"], self.loss["name"])

    def __hash__(self) -> int:
        return hash(self.to_json())

    # -- convenience ---------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{name: shape}`` of every trainable parameter in ``state_dict`` order: ``layers.{k}.weight``
        ``(sizes[k+1], sizes[k])`` and ``layers.{k}.bias`` ``(sizes[k+1],)``, then for a batch norm
        after hidden layer ``k`` ``batch_norms.{k}.weight`` (γ) and ``batch_norms.{k}.bias`` (β),
        ``(sizes[k+1],)``."""
        shapes: dict[str, tuple[int, ...]] = {}
        for k in range(self.n_layers):
            shapes[f"layers.{k}.weight"] = (self.sizes[k + 1], self.sizes[k])
            shapes[f"layers.{k}.bias"] = (self.sizes[k + 1],)
        for k in self.layer_positions("batch_norm"):
            shapes[f"batch_norms.{k}.weight"] = shapes[f"batch_norms.{k}.bias"] = (self.sizes[k + 1],)
        return shapes

    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{name: shape}`` of the non-trainable state (torch's buffers): ``batch_norms.{k}.running_mean``
        and ``batch_norms.{k}.running_var``, ``(sizes[k+1],)``."""
        return {f"batch_norms.{k}.{b}": (self.sizes[k + 1],)
                for k in self.layer_positions("batch_norm") for b in ("running_mean", "running_var")}

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every array of ``state_dict`` in its order: the parameters, then the buffers."""
        return {**self.parameter_shapes(), **self.buffer_shapes()}

    def layer_positions(self, name: str) -> list[int]:
        """The hidden layers ``k`` followed by a layer named ``name`` (``"batch_norm"``, ``"dropout"``)."""
        return [k for k, extras in enumerate(self.after_hidden) if any(e["name"] == name for e in extras)]

    @property
    def has_modes(self) -> bool:
        """Whether training and evaluation mode compute differently (a batch norm or a dropout)."""
        return any(self.after_hidden)

    @property
    def n_parameters(self) -> int:
        """Number of trainable scalars: ``Σ (sizes[k] + 1)·sizes[k+1]``, plus ``2·sizes[k+1]`` per batch norm."""
        return sum(math.prod(shape) for shape in self.parameter_shapes().values())

    @property
    def activations(self) -> tuple[dict[str, Any], ...]:
        """One activation spec per dense layer: the hidden ones, then the output."""
        return (*self.hidden, self.output)

    @property
    def fused(self) -> bool:
        """Whether the output activation and the loss form a stable fused pair."""
        return registry.is_fused(self.output["name"], self.loss["name"])

    def replace(self, **changes: Any) -> ModelSpec:
        """A copy with some fields changed (validated again)."""
        data = self.to_dict()
        data.update(changes)
        return ModelSpec.from_dict(data)

    def hidden_labels(self) -> list[str]:
        """One label per hidden layer: its activation, then any layers after it
        (``"relu+batch_norm+dropout(p=0.2)"``)."""
        after = self.after_hidden or ((),) * len(self.hidden)
        return ["+".join([registry.label(h), *(registry.label(e) for e in extras)])
                for h, extras in zip(self.hidden, after)]

    def describe(self) -> str:
        """``"4-16-3 relu→softmax+cross_entropy(mean) float64"``."""
        hidden = ",".join(self.hidden_labels()) or "-"
        return (f"{'-'.join(map(str, self.sizes))} {hidden}→{registry.label(self.output)}"
                f"+{registry.label(self.loss)}({self.reduction}) {self.dtype}")

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = json.loads(json.dumps(asdict(self)))
        if not self.after_hidden:       # dense only: the JSON of specs written before the field
            del data["after_hidden"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        if not isinstance(data, Mapping):
            raise TypeError(f"data must be a mapping of ModelSpec fields, got {type(data).__name__}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown ModelSpec fields {sorted(unknown)}; valid: "
                             f"{', '.join(cls.__dataclass_fields__)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        """Parse :meth:`to_json` output; ``text`` must be a JSON object of ModelSpec fields."""
        if not isinstance(text, (str, bytes, bytearray)):
            raise TypeError(f"text must be a JSON string, got {type(text).__name__}")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"text is not valid JSON for a ModelSpec: {exc} "
                             f"(text starts {str(text[:40])!r})") from None
        if not isinstance(data, dict):
            raise ValueError(f"text must hold a JSON object of ModelSpec fields, got {type(data).__name__}")
        return cls.from_dict(data)


def _is_layer(entry: Any) -> bool:
    return isinstance(entry, (str, Mapping))


def _normalize_after(after: Any, n_hidden: int) -> tuple[tuple[dict[str, Any], ...], ...]:
    """``after_hidden`` normalised: one tuple of full layer specs per hidden layer, or ``()``."""
    if after is None or (isinstance(after, Sequence) and not isinstance(after, (str, bytes)) and len(after) == 0):
        return ()
    what = ("after_hidden must be a layer (a name such as 'batch_norm' or a mapping with a 'name' key) or a "
            "list of layers, placed after every hidden layer, or a list with one entry per hidden layer, each "
            "None or a list of layers")
    if _is_layer(after):
        after = [after]
    if isinstance(after, (bytes, bytearray)) or not isinstance(after, Sequence):
        raise TypeError(f"{what}, got {after!r}")
    if n_hidden == 0:
        raise ValueError(f"after_hidden places layers after hidden layers, but the spec has none, got {after!r}")
    if all(_is_layer(e) for e in after):          # one stack, after every hidden layer
        per_layer: list[Any] = [list(after)] * n_hidden
    elif all(e is None or (isinstance(e, Sequence) and not isinstance(e, (str, bytes))) for e in after):
        per_layer = [[] if e is None else list(e) for e in after]
        if len(per_layer) != n_hidden:
            raise ValueError(f"after_hidden must have one entry per hidden layer: {n_hidden} hidden "
                             f"layer(s), got {len(per_layer)} entries {after!r}")
    else:
        raise TypeError(f"{what} (not a mix of the two), got {after!r}")
    out = []
    for k, entry in enumerate(per_layer):
        if not all(_is_layer(e) for e in entry):
            raise TypeError(f"after_hidden[{k}]: {what}, got {entry!r}")
        layers = tuple(registry.normalize(e, "layer") for e in entry)
        names = [e["name"] for e in layers]
        if len(set(names)) != len(names):
            raise ValueError(f"after_hidden[{k}] may hold each kind of layer once, got {names}")
        out.append(layers)
    return tuple(out) if any(out) else ()
