"""Diagnosis by substitution: which of the ops a network exposes makes its failure vanish when
swapped for torch's.

An implementation that exposes the ops its network uses — ``impl.ops``, a dict in the op names of
:mod:`~scratchnet_reference.core.reference_ops` (``relu``/``relu_backward``, ``mse``/``mse_grad``,
``softmax_cross_entropy_grad``, ``dense_forward``/``dense_backward``, …) — and rebuilds a model
with some of them replaced, ``impl.build(spec, state, ops={name: function})``, is localised by
substitution (see ``Diagnosis by isolation`` in DESIGN.md):

1. the ops the spec uses are grouped by what they compute (an activation's forward and backward,
   a loss's value and gradient, a fused pair, the dense layer);
2. with *every* group swapped for torch's the checks must pass (else the failure lies outside the
   exposed ops, and the whole-network analysis takes over);
3. a group is a culprit when swapping all *but* it still fails — so several wrong ops are found
   at once, each an independent root cause; when no single group is, pairs are tried;
4. each culprit is then named by the whole-network analysis on the network in which every *other*
   culprit is torch's, so its mistake is seen alone (a factor, ``s(1 − s)``, a wrong form, …).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from itertools import combinations
from typing import Any

from scratchnet import ModelSpec

from ..core.reference_ops import OPS, reference_op

__all__ = ["exposed_ops", "op_groups", "reference_ops_for", "Swapped", "culprits"]


def exposed_ops(impl: Any) -> dict[str, Callable[..., Any]]:
    """The ops ``impl`` exposes for substitution (``{}``: none, or ``build`` takes no ``ops``)."""
    ops = getattr(impl, "ops", None)
    build = getattr(impl, "build", None)
    if not isinstance(ops, dict) or build is None:
        return {}
    try:
        if "ops" not in inspect.signature(build).parameters:
            return {}
    except (TypeError, ValueError):
        return {}
    return {name: f for name, f in ops.items() if name in OPS and callable(f)}


def _used(spec: ModelSpec, base: Any) -> bool:
    acts = {a["name"] for a in spec.activations}
    if isinstance(base, tuple):
        return base == (spec.output["name"], spec.loss["name"])
    return base == "dense" or base in acts or base == spec.loss["name"]


def op_groups(ops: Iterable[str], spec: ModelSpec) -> list[tuple[str, ...]]:
    """The exposed op names the spec uses, grouped by what they compute (forward + backward)."""
    groups: dict[Any, list[str]] = {}
    for name in ops:
        if _used(spec, OPS[name].base):
            groups.setdefault(OPS[name].base, []).append(name)
    return [tuple(names) for names in groups.values()]


def reference_ops_for(names: Iterable[str], spec: ModelSpec) -> dict[str, Callable[..., Any]]:
    """torch's version of each op, with the spec's parameters and reduction."""
    out = {}
    for name in names:
        op = OPS[name]
        if op.family == "activation":
            params = next((dict(a) for a in spec.activations if a["name"] == op.base), {"name": op.base})
            params.pop("name")
            out[name] = reference_op(name, **params)
        elif op.family in ("loss", "fused"):
            params = {k: v for k, v in spec.loss.items() if k != "name"}
            out[name] = functools.partial(reference_op(name, **params), reduction=spec.reduction)
        else:
            out[name] = reference_op(name)
    return out


class Swapped:
    """``impl`` with the ops ``names`` replaced by torch's in every model it builds."""

    def __init__(self, impl: Any, names: Iterable[str]):
        self.impl, self.names = impl, tuple(names)
        self.name = getattr(impl, "name", "implementation")

    def build(self, spec: ModelSpec, state: Any) -> Any:
        return self.impl.build(spec, state, ops=reference_ops_for(self.names, spec))


def culprits(impl: Any, fails: Callable[[Any], bool],
             groups: list[tuple[str, ...]]) -> list[tuple[str, ...]] | None:
    """The groups whose swap the failure needs (leave one out; pairs when no single group), or
    ``None`` when swapping every group does not clear it. ``fails(implementation) -> bool``."""
    everything = [n for g in groups for n in g]
    if fails(Swapped(impl, everything)):
        return None
    found = [g for g in groups if fails(Swapped(impl, [n for n in everything if n not in g]))]
    if found:
        return found
    for g, h in combinations(groups, 2):
        if fails(Swapped(impl, [n for n in everything if n not in g + h])):
            return [g + h]
    return []
