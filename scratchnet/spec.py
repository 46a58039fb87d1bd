"""``ModelSpec``: the one JSON-serialisable description of a model.

Both scratchnet and the PyTorch reference build their model from it, so "the identical model"
means "the same spec and the same state dict".
"""

from __future__ import annotations

import json
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
    (:mod:`scratchnet.initializers`), optionally with parameters; ``seed`` seeds it.

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
        registry.check_pair(self.output["name"], self.loss["name"])

    def __hash__(self) -> int:
        return hash(self.to_json())

    # -- convenience ---------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{name: shape}`` of every parameter in ``state_dict`` order: ``layers.{k}.weight``
        ``(sizes[k+1], sizes[k])`` and ``layers.{k}.bias`` ``(sizes[k+1],)``."""
        shapes: dict[str, tuple[int, ...]] = {}
        for k in range(self.n_layers):
            shapes[f"layers.{k}.weight"] = (self.sizes[k + 1], self.sizes[k])
            shapes[f"layers.{k}.bias"] = (self.sizes[k + 1],)
        return shapes

    @property
    def n_parameters(self) -> int:
        """Number of trainable scalars: ``Σ (sizes[k] + 1)·sizes[k+1]``."""
        return sum((n_in + 1) * n_out for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]))

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

    def describe(self) -> str:
        """``"4-16-3 relu→softmax+cross_entropy(mean) float64"``."""
        hidden = ",".join(registry.label(h) for h in self.hidden) or "-"
        return (f"{'-'.join(map(str, self.sizes))} {hidden}→{registry.label(self.output)}"
                f"+{registry.label(self.loss)}({self.reduction}) {self.dtype}")

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

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
