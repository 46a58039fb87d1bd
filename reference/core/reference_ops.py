"""The reference for every op a learner can hand the suite: NumPy in, NumPy out, computed by torch.

Each op has a name (the table :data:`OPS`) and the signature the learner's own function must have;
:func:`reference_op` returns torch's version with *that same signature*, so a checker (or a
network-level substitution) can call either one on the same arrays::

    from scratchnet_reference.core.reference_ops import reference_op
    softmax_backward = reference_op("softmax_backward")
    dz = softmax_backward(z, a, g)                      # s ⊙ (g − ⟨g, s⟩), by torch's autograd

Batches are rows. Every value is computed in float64 on the CPU with torch's own functions
(``torch.softmax``, ``F.cross_entropy``, ``F.binary_cross_entropy``, … through
:mod:`scratchnet_reference.core.mapping`), and every derivative by torch's autograd: an
activation's backward is the vector–Jacobian product ``gᵀ·∂a/∂z`` for the *given* upstream
gradient ``g``; a loss gradient is ``∂L/∂p`` of the loss value. Nothing here uses scratchnet's
numerics (an oracle must not lean on the code under test); :mod:`scratchnet.registry` supplies
names and parameters only. Results come back in float64 whatever dtype came in.

The ops (``NAME`` ranges over :data:`scratchnet.registry.ACTIVATIONS`, ``LOSS`` over ``LOSSES``,
``OUT_LOSS`` over the fused pairs: ``softmax_cross_entropy``, ``log_softmax_nll``,
``sigmoid_binary_cross_entropy``, ``sigmoid_cross_entropy``)::

    NAME(z) -> a                                    (N, C) -> (N, C)
    NAME_backward(z, a, g) -> dL/dz                 g = dL/da, all (N, C)
    LOSS(p, y, reduction="mean") -> float           p (N, C) the output activation's values
    LOSS_grad(p, y, reduction="mean") -> dL/dp      (N, C)
    OUT_LOSS(z, y, reduction="mean") -> float       z (N, C) the logits
    OUT_LOSS_grad(z, y, reduction="mean") -> dL/dz  (N, C)
    dense_forward(x, W, b) -> x Wᵀ + b              x (N, in), W (out, in), b (out,)
    dense_backward(x, W, b, g) -> (dx, dW, db)      g = dL/d(out) (N, out)

Targets ``y`` may be class indices (an integer vector of length N), one-hot rows or probability
rows (N, C); ``reduction`` is torch's: ``mean`` (MSE, L1, Huber, BCE divide by N·C, cross-entropy
and NLL by N) or ``sum``. Parameters of an op (``negative_slope``, ``label_smoothing``,
``delta``, the dense weight ``layout``) are keyword arguments of :func:`reference_op`; for the
dense layer ``layout="in_out"`` takes and returns ``W`` as ``(in, out)`` (``x W + b``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from scratchnet import registry

from .mapping import ACTIVATION_MODULES, FUSED_LOSSES, MODULAR_LOSSES
from .torch_import import torch_module

__all__ = ["Op", "OPS", "reference_op", "op_names", "DENSE_LAYOUTS", "REDUCTIONS"]

DENSE_LAYOUTS = ("out_in", "in_out")
REDUCTIONS = ("mean", "sum")


@dataclass(frozen=True)
class Op:
    """One entry of :data:`OPS`.

    ``family`` is ``activation``, ``loss``, ``fused`` or ``dense``; ``base`` the registry name
    (``"softmax"``, ``"cross_entropy"``, ``("softmax", "cross_entropy")`` for a fused pair, or
    ``"dense"``); ``role`` is ``forward`` (a value) or ``backward`` (a derivative); ``args`` the
    positional arguments the learner's function takes, ``returns`` what it gives back."""

    name: str
    family: str
    base: Any
    role: str
    args: tuple[str, ...]
    returns: str

    @property
    def signature(self) -> str:
        extra = ", reduction='mean'" if self.family in ("loss", "fused") else ""
        return f"{self.name}({', '.join(self.args)}{extra}) -> {self.returns}"

    @property
    def partner(self) -> str:
        """The other half of the pair: ``softmax`` ↔ ``softmax_backward``, ``mse`` ↔ ``mse_grad``."""
        if self.family == "dense":
            return "dense_backward" if self.role == "forward" else "dense_forward"
        suffix = "_backward" if self.family == "activation" else "_grad"
        return self.name + suffix if self.role == "forward" else self.name[: -len(suffix)]


def _build_ops() -> dict[str, Op]:
    ops: dict[str, Op] = {}
    for name in registry.ACTIVATIONS:
        ops[name] = Op(name, "activation", name, "forward", ("z",), "a (N, C)")
        ops[f"{name}_backward"] = Op(f"{name}_backward", "activation", name, "backward", ("z", "a", "g"),
                                     "dL/dz (N, C)")
    for name in registry.LOSSES:
        ops[name] = Op(name, "loss", name, "forward", ("p", "y"), "float")
        ops[f"{name}_grad"] = Op(f"{name}_grad", "loss", name, "backward", ("p", "y"), "dL/dp (N, C)")
    for out, loss in FUSED_LOSSES:
        name = f"{out}_{loss}"
        ops[name] = Op(name, "fused", (out, loss), "forward", ("z", "y"), "float")
        ops[f"{name}_grad"] = Op(f"{name}_grad", "fused", (out, loss), "backward", ("z", "y"), "dL/dz (N, C)")
    ops["dense_forward"] = Op("dense_forward", "dense", "dense", "forward", ("x", "W", "b"), "out (N, out)")
    ops["dense_backward"] = Op("dense_backward", "dense", "dense", "backward", ("x", "W", "b", "g"),
                               "(dx (N, in), dW like W, db (out,))")
    return ops


#: every op name the suite knows -> :class:`Op` (signature, family, registry name)
OPS: dict[str, Op] = _build_ops()


def op_names() -> list[str]:
    return list(OPS)


# --------------------------------------------------------------------------------------------

def _tensor(array: Any, grad: bool = False) -> Any:
    torch = torch_module()
    t = torch.from_numpy(np.array(array, dtype=np.float64, copy=True))
    return t.requires_grad_(grad)


def _target(y: Any) -> Any:
    """Class indices (integer vector) -> int64 tensor; one-hot / probability rows -> float64."""
    torch = torch_module()
    y = np.asarray(y)
    if y.dtype.kind in "iub":
        return torch.from_numpy(y.astype(np.int64))
    return _tensor(y)


def _numpy(t: Any) -> np.ndarray:
    return t.detach().numpy().copy()


def _activation(name: str, params: dict[str, Any], role: str) -> Callable[..., Any]:
    module = ACTIVATION_MODULES[name](**params)

    def forward(z):
        return _numpy(module(_tensor(z)))

    def backward(z, a, g):
        torch = torch_module()
        zt = _tensor(z, grad=True)
        (dz,) = torch.autograd.grad(module(zt), zt, grad_outputs=_tensor(g))
        return _numpy(dz)

    return forward if role == "forward" else backward


def _loss(fn: Callable[..., Any], params: dict[str, Any], role: str) -> Callable[..., Any]:
    def value(p, y, reduction="mean"):
        return float(fn(_tensor(p), _target(y), params, _reduction(reduction)))

    def grad(p, y, reduction="mean"):
        torch = torch_module()
        pt = _tensor(p, grad=True)
        (dp,) = torch.autograd.grad(fn(pt, _target(y), params, _reduction(reduction)), pt)
        return _numpy(dp)

    return value if role == "forward" else grad


def _reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def _dense(layout: str, role: str) -> Callable[..., Any]:
    if layout not in DENSE_LAYOUTS:
        raise ValueError(f"layout must be one of {DENSE_LAYOUTS}, got {layout!r}")
    flip = layout == "in_out"

    def forward(x, W, b):
        F = torch_module().nn.functional
        w = _tensor(W)
        return _numpy(F.linear(_tensor(x), w.T if flip else w, _tensor(b)))

    def backward(x, W, b, g):
        torch = torch_module()
        xt, wt, bt = _tensor(x, True), _tensor(W, True), _tensor(b, True)
        out = torch.nn.functional.linear(xt, wt.T if flip else wt, bt)
        dx, dW, db = torch.autograd.grad(out, (xt, wt, bt), grad_outputs=_tensor(g))
        return _numpy(dx), _numpy(dW), _numpy(db)

    return forward if role == "forward" else backward


def reference_op(name: str, **params: Any) -> Callable[..., Any]:
    """torch's version of op ``name`` with the learner's signature (see the module docstring).

    ``params`` are the registry parameters of the activation or loss (``negative_slope=0.1``,
    ``approximate="tanh"``, ``label_smoothing=0.1``; defaults filled in by the registry), or
    ``layout="out_in"|"in_out"`` for the dense layer. Raises ``ValueError`` for an unknown name
    (with the closest known ones) or parameter."""
    if name not in OPS:
        import difflib

        close = difflib.get_close_matches(name, OPS, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(OPS)}"
        raise ValueError(f"unknown op {name!r}{hint}")
    op = OPS[name]
    if op.family == "dense":
        unknown = set(params) - {"layout"}
        if unknown:
            raise ValueError(f"bad parameters {sorted(unknown)} for {name!r}: only layout= is accepted")
        return _dense(params.get("layout", "out_in"), op.role)
    if op.family == "activation":
        spec = registry.normalize({"name": op.base, **params}, "activation")
        spec.pop("name")
        return _activation(op.base, spec, op.role)
    loss_name = op.base if op.family == "loss" else op.base[1]
    spec = registry.normalize({"name": loss_name, **params}, "loss")
    spec.pop("name")
    spec.pop("reduction", None)
    fn = MODULAR_LOSSES[loss_name] if op.family == "loss" else FUSED_LOSSES[op.base]
    return _loss(fn, spec, op.role)
