"""The reference network of the diagnosis, in torch, with mistakes of the catalogue planted on request.

:func:`reference_pass` runs the model described by a spec on one batch in float64 torch — forward
``z_k = a_{k−1} W_kᵀ + b_k``, ``a_k = f_k(z_k)`` with torch's own activation modules — and
back-propagates by hand, layer by layer, so that one layer's step can be replaced by what a
network *with a mistake* computes:

* the output layer's ``δ_K = ∂L/∂z_K`` is torch's autograd of the fused stable loss on ``z_K``
  where torch fuses the pair (site ``fused_gradient``), else the VJP of ``f_K`` applied to
  autograd's ``∂L/∂a_K`` (site ``output_backward``);
* a hidden layer's ``δ_k = f_k'(z_k)ᵀ g`` with ``g = δ_{k+1} W_{k+1}`` is torch's autograd VJP
  (site ``activation_backward``);
* ``∂L/∂W_k = δ_kᵀ a_{k−1}``, ``∂L/∂b_k = Σ_rows δ_k``.

A change is ``{layer: key}`` (a key of :data:`~.catalogue.CATALOGUE`, planted at the layer's
site), ``{layer: ("scaled", k)}`` (δ_k × k) or ``{layer: ("given", D)}`` (δ_k = D, the
implementation's own, to see what it does further down). Nothing here calls scratchnet's
numerical code: the spec and the weights are all it takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from scratchnet import ModelSpec

from ..core.mapping import fused_loss, modular_loss, torch_activation
from ..core.torch_import import torch_module
from .catalogue import BY_KEY, Mistake, Site, kinked, mistakes_at, vjp

__all__ = ["Pass", "reference_pass", "candidate_mistakes", "site_of", "kinked"]


@dataclass
class Pass:
    """Pre-activations, activations, each layer's δ = ∂L/∂z and the parameter gradients of one
    reference pass (float64)."""

    zs: list[np.ndarray]
    acts: list[np.ndarray]
    grads: dict[str, np.ndarray]
    deltas: list[np.ndarray]


def site_of(spec: ModelSpec, layer: int) -> str:
    """The catalogue site of ``layer``'s backward step in ``spec``."""
    if layer < spec.n_layers - 1:
        return "activation_backward"
    return "fused_gradient" if fused_loss(spec.activations[-1]["name"], spec.loss) is not None and spec.fused \
        else "output_backward"


def _given(deltas: Any) -> Any:
    return torch_module().as_tensor(np.asarray(deltas, dtype=np.float64))


def _planted(change: Any, site: str, where: Site, right: Any) -> Any:
    """δ with ``change`` planted at ``site`` (``right``: torch's δ there)."""
    if change is None:
        return right
    if isinstance(change, tuple):
        return change[1] * right if change[0] == "scaled" else _given(change[1])
    return BY_KEY[change].plant(site, where)


def reference_pass(spec: ModelSpec, state: Mapping[str, np.ndarray], xs: np.ndarray, target: np.ndarray,
                   changes: Mapping[int, Any] | None = None,
                   acts: Mapping[int, Mapping[str, Any]] | None = None) -> Pass:
    """One forward/backward in float64 torch with ``changes`` planted (see the module docstring);
    ``acts`` replaces layers' activation specs (e.g. ``{0: {"name": "gelu", "approximate": "tanh"}}``)."""
    torch = torch_module()
    changes = changes or {}
    act_specs = [dict((acts or {}).get(k, a)) for k, a in enumerate(spec.activations)]
    f64 = torch.float64
    weights, biases = ([torch.as_tensor(np.asarray(state[f"layers.{k}.{p}"], dtype=np.float64))
                        for k in range(spec.n_layers)] for p in ("weight", "bias"))
    a = torch.as_tensor(np.asarray(xs, dtype=np.float64))
    t = torch.as_tensor(np.asarray(target))
    t = t.to(f64) if t.is_floating_point() else t.to(torch.int64)
    inputs, zs, outs = [], [], []
    with torch.no_grad():
        for k, act_spec in enumerate(act_specs):
            inputs.append(a)
            z = a @ weights[k].T + biases[k]
            a = torch_activation(act_spec)(z)
            zs.append(z)
            outs.append(a)
    params = {k: v for k, v in spec.loss.items() if k != "name"}
    last, out_spec = spec.n_layers - 1, act_specs[-1]
    fused = fused_loss(out_spec["name"], spec.loss)
    site = site_of(spec, last)
    change = changes.get(last)
    if fused is not None and (change is None or isinstance(change, tuple) or site == "fused_gradient"):
        z = zs[-1].clone().requires_grad_(True)
        delta = torch.autograd.grad(fused(z, t, params, spec.reduction), z)[0]
        delta = _planted(change, "fused_gradient", Site(act=out_spec, z=zs[-1], a=outs[-1], delta=delta), delta)
    else:
        p = outs[-1].clone().requires_grad_(True)
        g = torch.autograd.grad(modular_loss(spec.loss)(p, t, params, spec.reduction), p)[0]
        right = vjp(out_spec, zs[-1], g) if change is None or isinstance(change, tuple) else None
        delta = _planted(change, "output_backward", Site(act=out_spec, z=zs[-1], a=outs[-1], g=g), right)
    grads: dict[str, np.ndarray] = {}
    deltas: list[Any] = [None] * spec.n_layers
    for k in range(last, -1, -1):
        deltas[k] = delta.numpy()
        grads[f"layers.{k}.weight"] = (delta.T @ inputs[k]).numpy()
        grads[f"layers.{k}.bias"] = delta.sum(dim=0).numpy()
        if k:
            g = delta @ weights[k]
            below, change = act_specs[k - 1], changes.get(k - 1)
            right = vjp(below, zs[k - 1], g) if change is None or isinstance(change, tuple) else None
            delta = _planted(change, "activation_backward", Site(act=below, z=zs[k - 1], a=outs[k - 1], g=g), right)
    return Pass([z.numpy() for z in zs], [o.numpy() for o in outs], grads, deltas)


def candidate_mistakes(spec: ModelSpec, layer: int) -> list[Mistake]:
    """The catalogue's mistakes that can enter at ``layer``'s backward step, in catalogue order."""
    site = site_of(spec, layer)
    loss = (spec.activations[-1]["name"], spec.loss["name"]) if site == "fused_gradient" else spec.loss["name"]
    return mistakes_at(site, spec.activations[layer], loss, network=True,
                       layer="hidden" if layer < spec.n_layers - 1 else "output")
