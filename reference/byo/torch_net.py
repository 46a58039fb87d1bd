"""The reference network of the diagnosis, in torch, with classic mistakes planted on request.

:func:`reference_pass` runs the model described by a spec on one batch in float64 torch — forward
``z_k = a_{k−1} W_kᵀ + b_k``, ``a_k = f_k(z_k)`` with torch's own activation modules — and
back-propagates by hand, layer by layer, so that one layer's step can be replaced by what a
network *with a mistake* computes:

* the output layer's ``δ_K = ∂L/∂z_K`` is torch's autograd of the fused stable loss on ``z_K``
  where torch fuses the pair, else the VJP of ``f_K`` applied to autograd's ``∂L/∂a_K``;
* a hidden layer's ``δ_k = f_k'(z_k)ᵀ g`` with ``g = δ_{k+1} W_{k+1}`` is torch's autograd VJP;
* ``∂L/∂W_k = δ_kᵀ a_{k−1}``, ``∂L/∂b_k = Σ_rows δ_k``.

A change is ``{layer: mistake}`` (see :data:`MISTAKES`), or ``{layer: ("scaled", k)}`` (δ_k × k) or
``{layer: ("given", D)}`` (δ_k = D, the implementation's own, to see what it does further down).
Nothing here calls scratchnet's numerical code: the spec and the weights are all it takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from scratchnet import ModelSpec

from ..core.mapping import fused_loss, modular_loss, torch_activation
from ..core.torch_import import torch_module

__all__ = ["WRONG_FORMS", "MISTAKES", "Pass", "reference_pass", "derivative_at_zero", "kinked", "candidate_mistakes"]

#: mistake -> (what a network with it does, what is right); ``{act}`` is the layer's activation
MISTAKES: dict[str, tuple[str, str]] = {
    "softmax_s1s": ("softmax's derivative taken elementwise: δ = g ⊙ s(1 − s)",
                    "the softmax Jacobian is diag(s) − s sᵀ: δ = s ⊙ (g − ⟨g, s⟩) (with cross-entropy: p − y)"),
    "again_on_fused": ("{act}'s derivative applied again on top of the fused δ = p − y",
                       "for {act} + the loss the two derivatives cancel: p − y (÷ the reduction's n) is already ∂L/∂z"),
    "output_left_out": ("∂L/∂a used as ∂L/∂z: {act}'s derivative left out at the output",
                        "δ_K = f'(z_K)ᵀ ∂L/∂a_K; only the fused pairs (softmax + cross_entropy, sigmoid + "
                        "binary_cross_entropy, log_softmax + nll) cancel it"),
    "at_activation": ("{act}'s derivative evaluated at the activation a instead of the pre-activation z",
                      "use f'(z): e.g. σ'(z) = σ(z)(1 − σ(z)) = a(1 − a), not σ'(a)"),
    "left_out": ("{act}'s derivative f'(z) left out: δ_k = δ_{{k+1}} W_{{k+1}}",
                 "δ_k = (δ_{{k+1}} W_{{k+1}}) ⊙ f'(z_k)"),
    "kink": ("{act}'s derivative wrong only at its kink z = 0 (the right-hand slope used there)",
             "torch's subgradient at 0: {act}'(0) = {at_zero:g} (ReLU: z > 0, not z >= 0)"),
}


#: known wrong forms of an activation: (torch spec of the wrong form, what it is)
WRONG_FORMS: dict[str, list[tuple[dict[str, Any], str]]] = {
    "gelu": [({"name": "gelu", "approximate": "tanh"},
              "the tanh approximation 0.5·z·(1 + tanh(√(2/π)(z + 0.044715 z³))) is used instead of the exact "
              "GELU z·Φ(z) (torch.nn.GELU(approximate='tanh') reproduces yours)")],
}


@dataclass
class Pass:
    """Pre-activations, activations and parameter gradients of one reference pass (float64)."""

    zs: list[np.ndarray]
    acts: list[np.ndarray]
    grads: dict[str, np.ndarray]


def _vjp(act_spec: Mapping[str, Any], z: Any, g: Any) -> Any:
    """``f'(z)ᵀ g`` by torch's autograd."""
    torch = torch_module()
    zz = z.detach().clone().requires_grad_(True)
    return torch.autograd.grad(torch_activation(act_spec)(zz), zz, g)[0]


def derivative_at_zero(act_spec: Mapping[str, Any]) -> tuple[float, float, float]:
    """torch's ``(f'(0⁻), f'(0), f'(0⁺))`` of an elementwise activation."""
    torch = torch_module()
    z = torch.tensor([[-1e-9, 0.0, 1e-9]], dtype=torch.float64)
    return tuple(float(v) for v in _vjp(act_spec, z, torch.ones_like(z))[0])


def kinked(act_spec: Mapping[str, Any]) -> bool:
    """Whether the activation's left and right derivatives differ at 0 (ReLU, leaky ReLU, ELU α ≠ 1)."""
    if act_spec["name"] in ("softmax", "log_softmax"):
        return False
    left, _, right = derivative_at_zero(act_spec)
    return abs(left - right) > 1e-6


def _given(deltas: Any) -> Any:
    return torch_module().as_tensor(np.asarray(deltas, dtype=np.float64))


def _step(act_spec: Mapping[str, Any], z: Any, a: Any, g: Any, change: Any) -> Any:
    if isinstance(change, tuple):
        if change[0] == "form":
            return _vjp(change[1], z, g)
        return change[1] * _vjp(act_spec, z, g) if change[0] == "scaled" else _given(change[1])
    if change == "softmax_s1s":
        return g * a * (1 - a)
    if change in ("left_out", "output_left_out"):
        return g
    if change == "at_activation":
        return _vjp(act_spec, a, g)
    if change == "kink":
        return _vjp(act_spec, z.masked_fill(z == 0, 1e-300), g)
    return _vjp(act_spec, z, g)


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
    change = changes.get(last)
    on_fused = (None, "again_on_fused") + (("softmax_s1s",) if spec.fused else ())
    if fused is not None and (change in on_fused or isinstance(change, tuple) and change[0] != "form"):
        z = zs[-1].clone().requires_grad_(True)
        delta = torch.autograd.grad(fused(z, t, params, spec.reduction), z)[0]
        if change == "softmax_s1s":  # s(1 − s) multiplied onto p − y
            delta = delta * outs[-1] * (1 - outs[-1])
        elif change == "again_on_fused":
            delta = _vjp(out_spec, zs[-1], delta)
        elif isinstance(change, tuple):
            delta = delta * change[1] if change[0] == "scaled" else _given(change[1])
    else:
        p = outs[-1].clone().requires_grad_(True)
        g = torch.autograd.grad(modular_loss(spec.loss)(p, t, params, spec.reduction), p)[0]
        delta = _step(out_spec, zs[-1], outs[-1], g, change)
    grads: dict[str, np.ndarray] = {}
    for k in range(last, -1, -1):
        grads[f"layers.{k}.weight"] = (delta.T @ inputs[k]).numpy()
        grads[f"layers.{k}.bias"] = delta.sum(dim=0).numpy()
        if k:
            g = delta @ weights[k]
            delta = _step(act_specs[k - 1], zs[k - 1], outs[k - 1], g, changes.get(k - 1))
    return Pass([z.numpy() for z in zs], [o.numpy() for o in outs], grads)


def candidate_mistakes(spec: ModelSpec, layer: int) -> list[Any]:
    """The classic mistakes that can enter at ``layer``'s backward step (a wrong form of the
    activation as ``("form", torch spec, words)``)."""
    act = spec.activations[layer]
    out: list[Any] = [("form", form, words) for form, words in WRONG_FORMS.get(act["name"], [])]
    if layer == spec.n_layers - 1:
        out += ["again_on_fused"] if spec.fused else ["output_left_out"]
    if act["name"] == "softmax":
        out.append("softmax_s1s")
    elif act["name"] not in ("identity", "log_softmax"):
        out += ["at_activation"] + (["left_out"] if layer < spec.n_layers - 1 else [])
        out += ["kink"] if kinked(act) else []
    return out
