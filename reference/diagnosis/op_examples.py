"""A learner's ops as the checker holds them, and one call of one op: what both
:mod:`scratchnet_reference.byo.ops` (drawing, checking) and :mod:`.ops` (naming what is wrong) work on."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.reference_ops import Op

__all__ = ["UserOps", "Example", "call_user", "raised_words", "CLASSIFICATION_LOSSES", "LARGE"]

#: losses whose targets are classes; the others (regression) get real targets shaped like p
CLASSIFICATION_LOSSES = ("cross_entropy", "nll", "binary_cross_entropy")
#: |input| beyond this makes an example "large" (extreme logits are drawn as ±50 and ±800)
LARGE = 30.0


@dataclass
class UserOps:
    """What the learner handed over: ``functions`` by op name and the declarations."""

    label: str
    functions: dict[str, Callable[..., Any]]
    targets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    layout: str = "out_in"
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    with_reduction: set[str] = field(default_factory=set)
    ignored: list[str] = field(default_factory=list)
    #: how the learner's functions were read (:mod:`.conventions`): the learner's name of each op,
    #: the assumptions stated before any result, the code defining each adapted op, names in SKIP
    sources: dict[str, str] = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)
    code: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    #: the layer ops (batch norm, dropout, conv2d, max pooling: ``byo.layer_ops``) by op name
    layers: dict[str, Callable[..., Any]] = field(default_factory=dict)
    #: ops whose function hung, exited or crashed while being validated: op -> the
    #: :class:`~scratchnet_reference.core.isolation.UserCodeFailure` (reported as that op's failure)
    failed: dict[str, Any] = field(default_factory=dict)

    def target_forms(self, op: Op) -> tuple[str, ...]:
        """The target forms to draw for a loss or fused op: declared under its own name (e.g.
        ``softmax_cross_entropy``), else under its loss's, else one-hot; ``real`` for regression."""
        loss = op.base[1] if op.family == "fused" else op.base
        if loss not in CLASSIFICATION_LOSSES:
            return ("real",)
        own = "_".join(op.base) if op.family == "fused" else loss
        return self.targets.get(own) or self.targets.get(loss, ("one_hot",))

    def params_of(self, op: Op) -> dict[str, Any]:
        if op.family == "dense":
            return {"layout": self.layout}
        base = op.base[1] if op.family == "fused" else op.base
        return dict(self.params.get(base, {}))


@dataclass(eq=False)
class Example:
    """One call of one op on one drawn input: the learner's output against torch's.

    ``ratios`` is the elementwise ``|a − b| / (atol + rtol·|b|)``; ``component`` names the output
    for ``dense_backward`` (dx, dW, db); ``large``/``kinks`` say how the input was drawn."""

    op: str
    check: str
    inputs: dict[str, np.ndarray]
    kwargs: dict[str, Any]
    expected: np.ndarray
    actual: np.ndarray | None
    ratios: np.ndarray
    tol: tuple[float, float]
    component: str = ""
    error: str = ""
    warnings: tuple[str, ...] = ()
    large: bool = False
    kinks: np.ndarray | None = None

    @property
    def tol_ratio(self) -> float:
        return float(self.ratios.max()) if self.ratios.size else 0.0

    @property
    def failed(self) -> bool:
        return self.tol_ratio > 1.0

    @property
    def N(self) -> int:
        return next(iter(self.inputs.values())).shape[0]

    @property
    def C(self) -> int:
        first = next(iter(self.inputs.values()))
        return first.shape[1] if first.ndim > 1 else 1

    @property
    def size(self) -> int:
        return sum(v.size for v in self.inputs.values())


def call_user(fn: Callable[..., Any], inputs: Mapping[str, np.ndarray], kwargs: Mapping[str, Any]) \
        -> tuple[Any, tuple[str, ...]]:
    """Call the learner's function on copies of the inputs; NumPy's floating-point warnings are
    recorded (returned), never raised, whatever the warning filters around us say."""
    with warnings.catch_warnings(record=True) as caught, \
            np.errstate(divide="warn", over="warn", invalid="warn", under="ignore"):
        warnings.simplefilter("always")
        out = fn(*(v.copy() for v in inputs.values()), **kwargs)
    return out, tuple(sorted({f"{w.category.__name__}: {w.message}" for w in caught}))


def raised_words(exc: BaseException, limit: int = 200) -> str:
    """What the learner's function raised, as one line of text to quote to them: ``Type: message``,
    whitespace runs (newlines too) made one space, any other unprintable character as its escape
    (``\x1b``), cut to ``limit`` characters with ``…``."""
    message = " ".join(str(exc).split())
    message = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in message)
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
