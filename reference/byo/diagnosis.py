"""Diagnosis: when a gradient disagrees with torch, which derivative of which layer is wrong,
and the pattern of the error where one is recognisable — in words a learner can act on.

:func:`annotate` fills :attr:`Record.diagnosis <scratchnet_reference.core.records.Record.diagnosis>` of the
failing records of one compared problem (one model, one batch, every flavour). What each
finding relies on:

* **known mistakes** — the gradients a network *with* a classic mistake would produce are
  computed in NumPy from the same weights and batch (softmax's derivative taken elementwise as
  ``s(1−s)``, ``σ'`` multiplied onto the fused ``σ − y``, ``f'(a)`` instead of ``f'(z)``, an
  activation derivative left out); when every one of the implementation's gradients equals one
  mistake's (to 10× the comparison's tolerance), that mistake is named.
* **constant factor** — ``actual ≈ k·expected`` (least-squares ``k``, checked elementwise to
  10× the tolerance; without the arrays: cosine ≈ 1 and ``k`` = norm ratio), and ``k`` is named
  when it is the batch size ``N``, ``1/N``, the number of outputs ``C``, ``N·C``, 2 or their inverses.
* **sign flipped** — the same with ``k ≈ −1`` (cosine ≈ −1).
* **transposed** — a square weight whose gradient equals torch's transposed.
* **only at kinks** — some pre-activation of a kinked activation (ReLU, leaky ReLU, ELU) is
  exactly 0; moving those units' biases off the kink makes every check pass.
* **only for large logits** — ``max |logit|`` > 20; scaling the output layer down to
  ``|logit| ≤ 2`` makes every check pass.
* **softmax alone wrong, fused softmax + cross-entropy right** — softmax used outside the fused
  pair (hidden, or before MSE/BCE/…); with those softmaxes replaced every check passes, and
  softmax + cross_entropy passes on the same network.
* **where** — walking back from the output, the first layer whose gradients fail is where the
  error enters (both weight and bias: its δ; only the weight: ``δᵀ·a_prev``; only the bias: the
  sum over the batch); layers below it inherit it. The finite-difference verdict says whether
  the implementation's own loss agrees with its gradient.

Variants re-run :func:`scratchnet_reference.core.compare.compare_model` (no finite differences) on modified
copies of the problem; nothing here changes how records pass or fail.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scratchnet import ModelSpec, registry
from scratchnet.fused import fused_loss_and_grad

from ..core.records import Record, measure

__all__ = ["Problem", "annotate", "annotate_training", "diagnose", "summary_lines", "MISTAKES", "LOOSE",
           "LARGE_LOGIT"]

#: pattern matches use this many times the comparison's own tolerance
LOOSE = 10.0
#: logits beyond this are "large" (exp(20) ≈ 5e8: well inside float range, but a sign of trouble ahead)
LARGE_LOGIT = 20.0
#: the output layer is scaled to this largest |logit| in the small-logit variant
SMALL_LOGIT = 2.0
#: elementwise losses whose ``mean`` divides by every element (N·C), not by N
_ELEMENTWISE_LOSSES = ("mse", "l1", "huber", "smooth_l1", "binary_cross_entropy")

_SOFTMAX_VJP = "softmax's backward must be the vector–Jacobian product s ⊙ (g − ⟨g, s⟩) (Jacobian diag(s) − s sᵀ)"

#: key -> (what the mistake is, what is right); ``{act}``, ``{output}`` and ``{loss}`` are filled in.
#: Keys ending in ``[act]`` are tried for each hidden activation of the model on its own.
MISTAKES: dict[str, tuple[str, str]] = {
    "softmax_s1s": ("softmax's derivative taken elementwise as s(1 − s)",
                    "the softmax Jacobian is diag(s) − s sᵀ: with cross-entropy it cancels and ∂L/∂z = p − y with "
                    "nothing multiplied on, and softmax on its own back-propagates s ⊙ (g − ⟨g, s⟩)"),
    "derivative_again_on_fused_delta": (
        "{output}'s derivative applied again on top of the fused delta ∂L/∂z = p − y",
        "for {output} + {loss} the loss derivative and the activation derivative cancel: p − y (divided by the "
        "reduction's n) is already ∂L/∂z"),
    "output_derivative_left_out": ("∂L/∂a used as ∂L/∂z: {output}'s derivative left out",
                                   "only the fused pairs (softmax + cross_entropy, sigmoid + binary_cross_entropy, "
                                   "log_softmax + nll) cancel it, and {output} + {loss} is not one"),
    "derivative_at_activation[act]": ("{act}'s derivative evaluated at the activation a instead of the "
                                      "pre-activation z", "use f'(z) — e.g. σ'(z) = σ(z)(1 − σ(z)) = a(1 − a), "
                                      "not σ'(a)"),
    "hidden_derivative_left_out[act]": ("{act}'s derivative f'(z) left out in the hidden layer",
                                        "δ_k = (δ_{k+1} W_{k+1}) ⊙ f'(z_k)"),
}


@dataclass
class Problem:
    """One compared problem: the model, its weights and the batch (as given to ``compare_model``)."""

    spec: ModelSpec
    state: Mapping[str, np.ndarray]
    x: Any
    y: Any
    device: str = "cpu"

    def prepared(self) -> tuple[np.ndarray, np.ndarray]:
        from ..core.compare import prepare_batch

        return prepare_batch(self.spec, self.x, self.y)

    def describe(self) -> str:
        """``"3-4-5 relu→softmax+cross_entropy(mean) float64, x (6, 3), y (6,) labels, max |logit| 1.2e+04,
        2 pre-activations exactly at a kink"``."""
        xs, target = self.prepared()
        parts = [self.spec.describe(), f"x {xs.shape}",
                 f"y {target.shape} {'labels' if target.ndim == 1 else 'rows'}"]
        try:
            zs, _ = _mlp(self.spec, self.state, xs, target)
            parts.append(f"max |logit| {float(np.max(np.abs(zs[-1]), initial=0.0)):.3g}")
            kinks = sum(int(np.sum(zs[k] == 0)) for k, _ in _kinked_layers(self.spec))
            if kinks:
                parts.append(f"{kinks} pre-activations exactly at a kink")
        except Exception:  # noqa: BLE001 - a description never fails
            pass
        return ", ".join(parts)


# --------------------------------------------------------------------------------------------
# A plain NumPy MLP: the forward pass, and the gradients with or without a classic mistake
# --------------------------------------------------------------------------------------------

def _vjp(act: Any, z: np.ndarray, a: np.ndarray, g: np.ndarray, mistake: str, only: str = "") -> np.ndarray:
    if mistake == "softmax_s1s" and act.name == "softmax":
        return g * a * (1 - a)
    if only and act.name != only:
        return act.backward(z, a, g)
    if mistake == "derivative_at_activation" and act.name not in ("softmax", "log_softmax"):
        return act.backward(a, act.forward(a), g)
    if mistake == "hidden_derivative_left_out":
        return g
    return act.backward(z, a, g)


def _mlp(spec: ModelSpec, state: Mapping[str, np.ndarray], xs: np.ndarray, target: np.ndarray,
         mistake: str = "", only: str = "") -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Pre-activations of every layer and every parameter gradient (``mistake`` planted, in the
    hidden layers whose activation is ``only`` when given)."""
    dtype = np.dtype(spec.dtype)
    acts = [registry.make_activation(a) for a in spec.activations]
    loss = registry.make_loss(spec.loss, spec.reduction)
    n_layers = len(acts)
    weights = [np.asarray(state[f"layers.{k}.weight"], dtype=dtype) for k in range(n_layers)]
    biases = [np.asarray(state[f"layers.{k}.bias"], dtype=dtype) for k in range(n_layers)]
    inputs, zs, outs = [], [], []
    a = xs
    with np.errstate(all="ignore"):
        for k in range(n_layers):
            inputs.append(a)
            z = a @ weights[k].T + biases[k]
            a = acts[k].forward(z)
            zs.append(z)
            outs.append(a)
        out_name = spec.output["name"]
        if spec.fused:
            _, delta = fused_loss_and_grad(out_name, loss, zs[-1], outs[-1], target)
            if mistake == "softmax_s1s" and out_name == "softmax":
                delta = delta * outs[-1] * (1 - outs[-1])
            elif mistake == "derivative_again_on_fused_delta":
                delta = acts[-1].backward(zs[-1], outs[-1], delta)
        else:
            g = loss.gradient(outs[-1], target)
            if mistake == "output_derivative_left_out":
                delta = g
            elif mistake in ("softmax_s1s", "derivative_at_activation"):
                delta = _vjp(acts[-1], zs[-1], outs[-1], g, mistake, only)
            else:
                delta = acts[-1].backward(zs[-1], outs[-1], g)
        grads: dict[str, np.ndarray] = {}
        for k in range(n_layers - 1, -1, -1):
            grads[f"layers.{k}.weight"] = delta.T @ inputs[k]
            grads[f"layers.{k}.bias"] = delta.sum(axis=0)
            if k:
                g = delta @ weights[k]
                delta = _vjp(acts[k - 1], zs[k - 1], outs[k - 1], g, mistake, only)
    return zs, {name: grads[name] for name in state}


def _kinked_layers(spec: ModelSpec) -> list[tuple[int, float]]:
    """``(layer, torch's derivative at 0)`` for the layers whose activation has a kink at 0
    (left and right derivatives differ there: ReLU, leaky ReLU, ELU with α ≠ 1)."""
    out = []
    for k, act_spec in enumerate(spec.activations):
        if act_spec["name"] in ("softmax", "log_softmax"):
            continue
        act = registry.make_activation(act_spec)
        z = np.array([[-1e-7, 0.0, 1e-7]])
        g = act.backward(z, act.forward(z), np.ones_like(z))
        if abs(g[0, 0] - g[0, 2]) > 1e-3:
            out.append((k, float(g[0, 1])))
    return out


# --------------------------------------------------------------------------------------------
# Patterns of one gradient
# --------------------------------------------------------------------------------------------

def _fmt(k: float) -> str:
    return f"{k:.4g}"


def _name_factor(k: float, n: int, c: int, loss: str, reduction: str) -> str:
    """``×k`` in words, when ``k`` is a recognisable constant."""
    elementwise = loss in _ELEMENTWISE_LOSSES
    candidates = [
        (n, f"N = {n}, the batch size: the 1/N of reduction='mean' is missing"
            if reduction == "mean" else f"N = {n}, the batch size"),
        (1 / n, f"1/N, N = {n} the batch size: divided by N " + ("although the reduction is 'sum'"
                                                                 if reduction == "sum" else "once too often")),
        (c, f"C = {c}, the number of outputs: " + (f"torch's 'mean' for {loss} divides by every element, N·C, "
                                                   "not by N only" if elementwise else "summed over the outputs")),
        (1 / c, f"1/C, C = {c} the number of outputs: divided by C " + ("although the loss averages over the "
                                                                        "batch only" if not elementwise else "twice")),
        (n * c, f"N·C = {n * c}, the number of elements: the 1/(N·C) of reduction='mean' is missing"),
        (1 / (n * c), f"1/(N·C), N·C = {n * c}: divided by the number of elements once too often"),
        (2.0, "2" + (": the 1/2 of ½(p − y)² is not in torch's MSE" if loss == "mse" else "")),
        (0.5, "1/2" + (": the 2 of d(p − y)²/dp = 2(p − y) is missing" if loss == "mse" else "")),
    ]
    for value, words in candidates:
        if value > 0 and abs(k / value - 1) < 1e-3:
            return f"×{_fmt(k)} = {words}"
    return f"×{_fmt(k)}"


def _close(actual: np.ndarray, expected: np.ndarray, rec: Record, scale: float = 1.0) -> bool:
    if actual.shape != expected.shape or not np.all(np.isfinite(actual)) or not np.all(np.isfinite(expected)):
        return False
    atol = LOOSE * (rec.atol + rec.noise_floor) * max(1.0, abs(scale))
    return measure(actual, expected, LOOSE * rec.rtol, atol)["tol_ratio"] <= 1


def _array_pattern(actual: np.ndarray, expected: np.ndarray, rec: Record, n: int, c: int, loss: str,
                   reduction: str) -> str:
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    if a.shape != b.shape:
        return f"wrong shape {a.shape}, expected {b.shape}"
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))
        at = tuple(int(i) for i in bad[0])
        return f"non-finite values (NaN/inf) in {len(bad)} of {a.size} entries, first at {at}"
    if a.ndim == 2 and a.shape[0] == a.shape[1] and a.shape[0] > 1 and _close(a, b.T, rec):
        return ("transposed: it equals torch's gradient transposed — ∂L/∂W = δᵀ·a_prev has shape (out, in) like "
                "torch.nn.Linear's weight (a_prevᵀ·δ is its transpose; a square layer hides the shape)")
    bb = float(b.ravel() @ b.ravel())
    if bb > 0:
        k = float(a.ravel() @ b.ravel()) / bb
        if k != 0 and abs(k - 1) > 1e-6 and _close(a, k * b, rec, k):
            return _factor_words(k, n, c, loss, reduction)
    return ""


def _factor_words(k: float, n: int, c: int, loss: str, reduction: str) -> str:
    if abs(k + 1) < 1e-3:
        return "sign flipped: it is −1 × torch's gradient (y − p where p − y is meant, or a minus sign lost)"
    if k < 0:
        return f"sign flipped and off by a constant factor: {_name_factor(k, n, c, loss, reduction)} (cosine −1)"
    return f"off by a constant factor, direction right: {_name_factor(k, n, c, loss, reduction)}"


def _record_pattern(rec: Record, n: int, c: int, loss: str, reduction: str) -> str:
    """The pattern from the record alone (cosine and norm ratio), when the arrays are not at hand."""
    cos, ratio = rec.cosine, rec.norm_ratio
    if not (math.isfinite(cos) and math.isfinite(ratio)):
        return ""
    if cos > 1 - 1e-6 and abs(ratio - 1) > 1e-6:
        return _factor_words(ratio, n, c, loss, reduction)
    if cos < -1 + 1e-6:
        return _factor_words(-ratio, n, c, loss, reduction)
    shape = rec.shape.strip("()").split(",")
    if abs(ratio - 1) < 1e-3 and cos < 0.999 and len(shape) == 2 and shape[0].strip() == shape[1].strip():
        return (f"right size, wrong direction (cosine {cos:.3g}): on a square layer this is what a transposed "
                "gradient looks like")
    return ""


# --------------------------------------------------------------------------------------------
# Where: the first wrong layer walking back from the output
# --------------------------------------------------------------------------------------------

def _layer(param: str) -> int:
    try:
        return int(param.split(".")[1])
    except (IndexError, ValueError):
        return -1


def _location(rec: Record, failing: set[str], n_layers: int, activations: Sequence[str], loss: str) -> str:
    k = _layer(rec.param)
    if k < 0:
        return ""
    first = max(_layer(p) for p in failing)
    last = n_layers - 1
    weight, bias = f"layers.{first}.weight" in failing, f"layers.{first}.bias" in failing
    if k < first:
        return (f"inherits the error of layers.{first}, the first wrong layer walking back from the output "
                f"(δ carries it down): fix layers.{first} first")
    if weight and not bias:
        return ("only the weight gradient of this layer is wrong — its bias gradient, hence δ, is right: "
                "∂L/∂W = δᵀ·a_prev")
    if bias and not weight:
        return ("only the bias gradient of this layer is wrong — the weight gradient, hence δ, is right: "
                "∂L/∂b = Σ of δ over the batch rows (axis 0)")
    if k == last:
        return (f"first wrong layer is the output layer: δ = ∂L/∂z there ({activations[-1]} + {loss}: the loss "
                "and output-activation derivative) is wrong")
    act = activations[k] if k < len(activations) else "?"
    return (f"first wrong layer walking back from the output (layers above it are right): the step "
            f"δ_{k} = (δ_{k + 1} W_{k + 1}) ⊙ {act}'(z_{k}) is wrong — check {act}'s derivative")


def _fd_words(rec: Record) -> str:
    if rec.fd_verdict == "torch":
        return "finite differences of your own loss agree with torch: the loss is right, its backward is not"
    if rec.fd_verdict == "impl":
        return ("finite differences of your own loss agree with your gradient: the backward matches your loss, "
                "so the loss (or the forward pass) itself differs from torch's")
    return ""


# --------------------------------------------------------------------------------------------
# Variants: the same problem with one thing changed
# --------------------------------------------------------------------------------------------

def _passes(impl: Any, problem: Problem, flavour: str, spec: ModelSpec | None = None,
            state: Mapping[str, np.ndarray] | None = None, y: Any = None) -> bool | None:
    """Whether every check passes on the variant (``None``: it could not be run)."""
    from ..core.compare import compare_model, flavours_for

    spec = spec or problem.spec
    flavours = [flavour] if flavour in flavours_for(spec) else None
    try:
        records = compare_model(impl, spec, problem.x, problem.y if y is None else y,
                                state=problem.state if state is None else state, device=problem.device,
                                flavours=flavours, fd="never")
    except Exception:  # noqa: BLE001 - NotImplementedError, or the implementation crashing on the variant
        return None
    return not any(r.status == "fail" for r in records)


def _large_logits(impl: Any, problem: Problem, flavour: str, zs: list[np.ndarray]) -> str:
    m = float(np.max(np.abs(zs[-1]), initial=0.0))
    if not (math.isfinite(m) and m > LARGE_LOGIT):
        return ""
    last = problem.spec.n_layers - 1
    s = SMALL_LOGIT / m
    state = {k: np.array(v, copy=True) for k, v in problem.state.items()}
    state[f"layers.{last}.weight"] = state[f"layers.{last}.weight"] * s
    state[f"layers.{last}.bias"] = state[f"layers.{last}.bias"] * s
    if not _passes(impl, problem, flavour, state=state):
        return ""
    return (f"wrong only when logits are large: max |logit| = {m:.3g} here, and with the output layer scaled down "
            f"to |logit| ≤ {SMALL_LOGIT:g} every check passes — exp overflows or a probability rounds to 0 before "
            "a log: subtract each row's max before exp (log-sum-exp) and take ∂L/∂z = p − y from the logits")


def _kinks(impl: Any, problem: Problem, flavour: str, zs: list[np.ndarray]) -> str:
    hits = [(k, d, np.any(zs[k] == 0, axis=0)) for k, d in _kinked_layers(problem.spec)]
    hits = [(k, d, units) for k, d, units in hits if units.any()]
    if not hits:
        return ""
    state = {k: np.array(v, copy=True) for k, v in problem.state.items()}
    for k, _, units in hits:
        eps = 1e-3 * max(1.0, float(np.max(np.abs(zs[k]), initial=0.0)))
        bias = state[f"layers.{k}.bias"]
        state[f"layers.{k}.bias"] = bias + np.where(units, eps, 0).astype(bias.dtype)
    if not _passes(impl, problem, flavour, state=state):
        return ""
    where = " and ".join(f"{int(np.sum(zs[k] == 0))} pre-activations of layer {k} "
                      f"({problem.spec.activations[k]['name']}) are exactly 0, where torch's derivative is "
                      f"{problem.spec.activations[k]['name']}'(0) = {d:g}" for k, d, _ in hits)
    return (f"wrong only at kinks: {where}; with those units moved off the kink every check passes — use torch's "
            "subgradient at 0 (ReLU: z > 0, not z >= 0)")


def _softmax_alone(impl: Any, problem: Problem, flavour: str, capabilities: Any) -> str:
    spec = problem.spec
    hidden = [h["name"] for h in spec.hidden]
    out, loss = spec.output["name"], spec.loss["name"]
    alone_out = out == "softmax" and loss != "cross_entropy"
    if "softmax" not in hidden and not alone_out:
        return ""

    def ok(variant: ModelSpec) -> bool:
        return capabilities is None or not capabilities.missing_for_spec(variant)

    hidden_sub = next((h for h in ("tanh", "sigmoid", "relu", "identity")
                       if capabilities is None or h in capabilities.hidden), None)
    new_hidden = [h if h["name"] != "softmax" else hidden_sub for h in spec.hidden] if hidden_sub else None
    where = [w for w, used in (("the hidden softmax", "softmax" in hidden), (f"the softmax before {loss}", alone_out))
             if used]
    # V2: the same network without softmax on its own
    without = None
    if new_hidden is not None:
        out_sub = next((o for o in ("sigmoid", "identity") if o in registry.outputs_for(loss)), None)
        try:
            v2 = spec.replace(hidden=new_hidden, output=out_sub if alone_out else spec.output)
            without = _passes(impl, problem, flavour, spec=v2) if ok(v2) else None
        except ValueError:
            without = None
    # V1: softmax + cross_entropy (fused) on the same weights and inputs
    fused = None
    if new_hidden is not None:
        try:
            v1 = spec.replace(hidden=new_hidden, output="softmax", loss="cross_entropy")
            _, target = problem.prepared()
            labels = np.argmax(target, axis=1) if target.ndim == 2 else target
            fused = _passes(impl, problem, "fused", spec=v1, y=labels) if ok(v1) else None
        except ValueError:
            fused = None
    if without and fused:
        return (f"softmax on its own is wrong: with {' and '.join(where)} replaced every check passes, and softmax "
                f"+ cross_entropy (fused: ∂L/∂z = p − y) passes on the same network — {_SOFTMAX_VJP}, not "
                "g ⊙ s(1 − s)")
    if without:
        return (f"softmax on its own is wrong: with {' and '.join(where)} replaced every check passes — "
                f"{_SOFTMAX_VJP}")
    if fused and alone_out:
        return (f"softmax + cross_entropy (fused: ∂L/∂z = p − y) passes on the same network, softmax + {loss} "
                f"does not: {_SOFTMAX_VJP}")
    return ""


# --------------------------------------------------------------------------------------------
# Putting it together
# --------------------------------------------------------------------------------------------

def _known_mistake(problem: Problem, impl_grads: Mapping[str, np.ndarray], tols: Mapping[str, Record],
                   xs: np.ndarray, target: np.ndarray) -> str:
    spec = problem.spec
    _, correct = _mlp(spec, problem.state, xs, target)
    hidden = list(dict.fromkeys(h["name"] for h in spec.hidden))
    words = {"output": spec.output["name"], "loss": spec.loss["name"]}
    for key, (what, right) in MISTAKES.items():
        name, per_act = key.removesuffix("[act]"), key.endswith("[act]")
        if name == "derivative_again_on_fused_delta" and not spec.fused:
            continue
        for only in (hidden + ([""] if len(hidden) > 1 else [])) if per_act else [""]:
            _, planted = _mlp(spec, problem.state, xs, target, mistake=name, only=only)
            if all(_close(planted[n], correct[n], tols[n]) for n in correct if n in tols):
                continue  # the mistake changes nothing on this model
            if all(n in impl_grads and _close(np.asarray(impl_grads[n]), planted[n], tols[n]) for n in tols):
                act = only or "every hidden activation"
                return f"matches a known mistake — {what}: {right}".format(act=act, **words)
    return ""


def diagnose(records: Sequence[Record], impl: Any = None, problem: Problem | None = None,
             capabilities: Any = None) -> dict[int, str]:
    """``{id(record): diagnosis}`` for the failing records of one problem (every flavour).

    With ``impl`` and ``problem`` the arrays are recomputed (known mistakes, transposed, exact
    factors) and variants re-run (kinks, large logits, softmax alone); with the records alone,
    the patterns readable from cosine and norm ratio, and the location."""
    failing = [r for r in records if r.status == "fail"]
    if not failing:
        return {}
    impl = getattr(impl, "unguarded", impl)  # pytest's guard would turn NotImplementedError into a skip
    first = failing[0]
    if problem is not None:
        spec = problem.spec
        n_layers, activations = spec.n_layers, [a["name"] for a in spec.activations]
        loss, reduction, c = spec.loss["name"], spec.reduction, spec.sizes[-1]
        n = int(np.shape(problem.x)[0])
    else:
        n_layers = max(_layer(r.param) for r in records) + 1 if any(_layer(r.param) >= 0 for r in records) else 1
        hidden = [h for h in first.hidden.split(",") if h and h != "-"]
        activations = [*hidden, first.output]
        loss, reduction = first.loss, first.reduction
        c = int(first.sizes.split("-")[-1]) if first.sizes else 1
        forward = next((r for r in records if r.check == "forward"), None)
        n = int(forward.shape.strip("()").split(",")[0]) if forward and forward.shape not in ("()", "") else 1

    impl_grads: Mapping[str, np.ndarray] = {}
    torch_grads: dict[str, dict[str, np.ndarray]] = {}
    mistake = ""
    zs: list[np.ndarray] = []
    tols = {r.param: r for r in records if r.check == "gradient"}
    if impl is not None and problem is not None:
        xs, target = problem.prepared()
        try:
            _, impl_grads = impl.build(spec, problem.state).loss_and_grads(xs, target)
            impl_grads = {k: np.asarray(v) for k, v in impl_grads.items()}
        except Exception:  # noqa: BLE001 - the records already say it failed
            impl_grads = {}
        torch_grads = _torch_grads(problem, {r.flavour for r in failing}, xs, target)
        zs, _ = _mlp(spec, problem.state, xs, target)
        if impl_grads and all(np.shape(impl_grads.get(k)) == np.shape(v) for k, v in problem.state.items()):
            mistake = _known_mistake(problem, impl_grads, tols, xs, target)

    out: dict[int, str] = {}
    for flavour in dict.fromkeys(r.flavour for r in failing):
        mine = [r for r in failing if r.flavour == flavour]
        grads = [r for r in mine if r.check == "gradient"]
        findings: dict[int, str] = {}
        variant = ""
        if not mistake and impl is not None and problem is not None and zs:
            # causal before correlational: a variant that makes every check pass explains the failure
            # better than a pattern fitted to the numbers
            caps = capabilities
            if caps is None:
                from .adapter import capabilities_of

                caps = capabilities_of(impl)
            variant = (_large_logits(impl, problem, flavour, zs) or _kinks(impl, problem, flavour, zs)
                       or _softmax_alone(impl, problem, flavour, caps))
        for r in mine:
            if mistake:
                findings[id(r)] = mistake if r.check == "gradient" else ""
                continue
            pattern = ""
            if r.check == "gradient" and math.isfinite(r.tol_ratio) and r.tol_ratio < LOOSE:
                pattern = (f"marginal: just past the tolerance (tol_ratio {r.tol_ratio:.3g}) — a small drift "
                           "(rounding, summation order, cancellation in float32) rather than a wrong formula")
            elif r.check == "gradient" and r.param in impl_grads and r.param in torch_grads.get(flavour, {}):
                pattern = _array_pattern(impl_grads[r.param], torch_grads[flavour][r.param], r, n, c, loss,
                                         reduction)
            elif r.check == "gradient":
                pattern = _record_pattern(r, n, c, loss, reduction)
            if variant:
                nan = pattern if pattern.startswith("non-finite") else ""
                findings[id(r)] = f"{variant} ({nan})" if nan else variant
            else:
                findings[id(r)] = pattern
        failing_params = {r.param for r in grads}
        for r in mine:
            if r.check == "gradient":
                parts = [findings.get(id(r), ""), _location(r, failing_params, n_layers, activations, loss),
                         _fd_words(r)]
            elif r.check == "forward":
                parts = [findings.get(id(r), ""), "the forward output differs from torch's: fix the forward pass "
                                                  "first (every gradient depends on it)"]
            elif r.check == "loss":
                parts = [findings.get(id(r), ""), "the loss value differs from torch's"
                         + ("" if any(x.check == "forward" for x in mine) else " although the output agrees: "
                            f"check the {loss} formula and its reduction ({reduction})")]
            else:
                parts = [findings.get(id(r), "")]
            out[id(r)] = "; ".join(p for p in parts if p)
    return out


def _torch_grads(problem: Problem, flavours: Iterable[str], xs: np.ndarray,
                 target: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    from ..core.compare import flavours_for, torch_forward_backward
    from ..core.mapping import to_tensor
    from ..core.torch_model import build_torch_model

    out = {}
    try:
        model = build_torch_model(problem.spec, problem.state, problem.device)
        xt = to_tensor(xs, problem.device, model.layers[0].weight.dtype)
        tt = to_tensor(target, problem.device, xt.dtype)
        for flavour in flavours:
            if flavour in flavours_for(problem.spec):
                out[flavour] = torch_forward_backward(model, problem.spec, flavour, xt, tt).grads
    except Exception:  # noqa: BLE001 - fall back to the records' cosine and norm ratio
        return {}
    return out


def annotate(records: list[Record], impl: Any = None, problem: Problem | None = None,
             capabilities: Any = None) -> list[Record]:
    """Fill ``diagnosis`` on the failing records of one problem (see :func:`diagnose`) and
    return ``records``. Never raises: a diagnosis that breaks says so in the field."""
    failing = [r for r in records if r.status == "fail"]
    if not failing:
        return records
    try:
        texts = diagnose(records, impl, problem, capabilities)
    except Exception as exc:  # noqa: BLE001 - a diagnosis must never turn a failure into a crash
        texts = {id(r): f"(no diagnosis: {type(exc).__name__}: {exc})" for r in failing}
    for r in failing:
        if texts.get(id(r)):
            r.diagnosis = texts[id(r)]
    return records


def annotate_training(records: list[Record], gradients_ok: bool | None = None) -> list[Record]:
    """Fill ``diagnosis`` on the failing records of lockstep training runs: whether the loss
    before the first broken step still agreed, and — ``gradients_ok``, from a gradient check of
    the trained model — whether the gradients or the update rule are to blame."""
    curves: dict[tuple, list[Record]] = {}
    for r in records:
        if r.check in ("training_step", "final_params"):
            key = (r.hidden, r.output, r.loss, r.reduction, r.flavour, r.dtype, r.device, r.optimizer, r.gd_mode)
            curves.setdefault(key, []).append(r)
    for curve in curves.values():
        steps = sorted((r for r in curve if r.check == "training_step"), key=lambda r: r.step)
        broken = next((r for r in steps if r.status == "fail"), None)
        if broken is None:
            continue
        with np.errstate(all="ignore"):
            loss_ratio = broken.max_abs_err / (broken.atol + broken.rtol * abs(broken.expected_value))
        first = "the very first update" if broken.step == 0 else f"step {broken.step}"
        update = f"the update rule ({broken.optimizer}: configure_optimizer/step)"
        if loss_ratio <= 1 and gradients_ok is False:
            text = (f"breaks at {first}: the loss before it agrees with torch, the parameters after it do not — and "
                    f"the gradients of this model are wrong (see its gradient checks): fix those first, then {update}"
                    " can be judged")
        elif loss_ratio <= 1:
            known = "the gradients of this model agree with torch, so " if gradients_ok else ""
            text = (f"breaks at {first}: the loss before it agrees with torch, the parameters after it do not — "
                    f"{known}{update} is wrong" + ("" if gradients_ok else " (or the gradients: see the gradient "
                                                                          "checks of this model)"))
        else:
            text = (f"breaks at {first}: the loss before the update already differs — the forward pass or the loss "
                    "is wrong (see the gradient checks of this model)")
        for r in curve:
            if r.status == "fail":
                r.diagnosis = text if (r is broken or r.check == "final_params") else f"follows from step {broken.step}"
    return records


# --------------------------------------------------------------------------------------------
# Summaries for the terminal
# --------------------------------------------------------------------------------------------

def _params(names: list[str]) -> str:
    """``layers.1.weight, layers.1.bias`` → ``layers.1 weight+bias``."""
    out, done = [], set()
    for name in names:
        k = _layer(name)
        pair = {f"layers.{k}.weight", f"layers.{k}.bias"}
        if k >= 0 and pair <= set(names):
            if k not in done:
                out.append(f"layers.{k} weight+bias")
                done.add(k)
        else:
            out.append(name)
    return ", ".join(out)


def _wrapped(head: str, text: str, width: int) -> list[str]:
    return textwrap.wrap(head + text, width=width, initial_indent="  ", subsequent_indent="      ")


def _combo_label(r: Record) -> str:
    model = f"{r.hidden} → {r.output} + {r.loss} ({r.reduction})"
    if r.optimizer:
        return f"training {r.optimizer} {r.gd_mode} {r.dtype} {r.device} on {model}"
    return f"{model} {r.dtype} {r.device}"


def summary_lines(records: Iterable[Record], limit: int = 8, width: int = 118) -> list[str]:
    """The diagnoses of the failing records, grouped: combinations with the same diagnoses are
    listed once (``"… and 21 more like it"``), parameters from the output layer down."""
    by_combo: dict[str, dict[str, str]] = {}
    for r in records:
        if r.status != "fail" or not r.diagnosis or r.check == "training_step" and r.diagnosis.startswith("follows"):
            continue
        what = r.param if r.check in ("gradient", "final_params") else r.check
        by_combo.setdefault(_combo_label(r), {}).setdefault(what, r.diagnosis)
    groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for label, diagnoses in by_combo.items():
        order = sorted(diagnoses.items(), key=lambda kv: (-_layer(kv[0]), kv[0]))
        groups.setdefault(tuple(order), []).append(label)
    lines: list[str] = []
    ordered = sorted(groups.items(), key=lambda g: (-len(g[1]), g[1][0].startswith("training"), g[1][0]))
    for diagnoses, labels in ordered[:limit]:
        more = f"  (and {len(labels) - 1} more combinations like it)" if len(labels) > 1 else ""
        lines.append(f"{labels[0]}{more}")
        parts = {what: text.split("; ") for what, text in diagnoses}
        common = [p for p in next(iter(parts.values())) if all(p in ps for ps in parts.values())] \
            if len(parts) > 1 else []
        if common:
            lines += _wrapped(f"all {len(parts)} failing: ", "; ".join(common), width)
        rest: dict[str, list[str]] = {}
        for what, ps in parts.items():
            rest.setdefault("; ".join(p for p in ps if p not in common), []).append(what)
        for text, whats in rest.items():
            if text:
                lines += _wrapped(f"{_params(whats)}: ", text, width)
    if len(groups) > limit:
        lines.append(f"… {len(groups) - limit} more groups of diagnoses (see the diagnosis column of gradients.csv)")
    return lines
