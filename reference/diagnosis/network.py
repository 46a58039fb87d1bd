"""Diagnosis: when an implementation disagrees with torch, its independent root causes — which op of
which layer is wrong, how, and the right formula — in words a learner can act on.

:func:`annotate` fills :attr:`Record.diagnosis <scratchnet_reference.core.records.Record.diagnosis>` of
the failing records of one compared problem (one model, one batch, every flavour) with the
:class:`~.causes.RootCause` values that explain them (:func:`~.causes.encode`;
:func:`~.causes.group` gathers a run's). Every expected value comes from torch
(:mod:`.reference_net`), never from scratchnet's numerics. How each root
cause is found, strongest evidence first:

* **by substitution** — when the implementation exposes its ops (:mod:`.substitution`), the ops
  whose swap for torch's makes the failure vanish, each then named by the analysis below on the
  network in which only it is the implementation's.
* **wrong forward** — the output differs from torch's: each activation in turn is replaced in the
  spec (same weights) by one that is hard to get wrong; the one whose replacement makes the
  output agree is the wrong forward (a known wrong form, e.g. GELU's tanh approximation, is named
  when torch's output with it equals yours). The gradients are then examined on that variant, so
  an independent backward mistake is still found.
* **only for large logits** — the output is wrong only while ``max |logit|`` > 20 (scaling the
  output layer down makes every check pass).
* **the backward walk** — from the output layer down, each layer's gradients are compared with a
  torch network carrying the mistakes found so far: a constant factor ``yours = k × torch's``
  (least squares over the layer, accepted when the residual is within 10× the tolerance; named
  over products of N, C, 2 and their inverses) is divided out, then the classic mistakes that
  can enter at this layer are tried (the catalogue's entries for the layer's site,
  :func:`.reference_net.candidate_mistakes`: softmax's ``s(1 − s)``, the output derivative
  applied again on the fused ``p − y`` or left out, ``f'(a)`` for ``f'(z)``, ``f'`` left out,
  wrong only at a kink, …), then a factor on this layer's δ alone. A weight-only or
  bias-only error (transposed, ``∂L/∂W``, ``∂L/∂b``) stays in its parameter — unless the kink
  explains it (at a kink made by a zero input row only the bias gradient sees the wrong
  derivative, so the kink is tried first). An error none of
  these explains is its own root cause; the implementation's own per-sample δ there (the bias
  gradient of one-sample batches) is carried down by torch's backward, so a layer below
  *inherits* it only if that explains its gradients — otherwise it has a root cause of its own.
* **marginal** — only when no cause is found and every failure is within 10× the tolerance.

Each cause carries a reproducer: the first 1, 2 or 4 rows of the batch that still show it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from scratchnet import ModelSpec

from ..core.boundary import INPUTS_CHECK
from ..core.records import Record, measure
from .catalogue import BY_KEY, EPSILONS, Mistake, Site, derivative_at_zero, kinked, mistakes_at
from .causes import RootCause, encode
from .factors import LOOSE, fit_factor, least_squares, mean_divisor, name_factor
from .reference_net import candidate_mistakes, reference_pass

__all__ = ["Problem", "annotate", "annotate_training", "diagnose", "LARGE_LOGIT"]

#: logits beyond this are "large" (exp(20) ≈ 5e8: well inside float range, but a sign of trouble ahead)
LARGE_LOGIT = 20.0
#: the output layer is scaled to this largest |logit| in the small-logit variant
SMALL_LOGIT = 2.0
#: activations used as stand-ins when a layer's own is suspected (hard to get wrong), in order
STAND_INS = ("identity", "tanh", "sigmoid", "relu")


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
            zs = reference_pass(self.spec, self.state, xs, target).zs
            parts.append(f"max |logit| {float(np.max(np.abs(zs[-1]), initial=0.0)):.3g}")
            kinks = sum(int(np.sum(zs[k] == 0)) for k, a in enumerate(self.spec.activations) if kinked(a))
            if kinks:
                parts.append(f"{kinks} pre-activations exactly at a kink")
        except Exception:  # noqa: BLE001 - a description never fails
            pass
        return ", ".join(parts)

    def reproducer(self) -> str:
        """A snippet that rebuilds this problem exactly (x, y and any weight not the spec's initial one
        at full precision)."""
        from ..core.protocol import initial_state

        xs, _ = self.prepared()
        init = initial_state(self.spec)
        lines = [f"spec = ModelSpec.from_json({self.spec.to_json()!r})", "state = initial_state(spec)"]
        lines += [f"state[{k!r}] = np.array({np.asarray(v).tolist()!r})" for k, v in self.state.items()
                  if not np.array_equal(init[k], np.asarray(v))]
        return "\n".join([*lines, f"x = np.array({xs.tolist()!r})", f"y = np.array({np.asarray(self.y).tolist()!r})",
                          "records = compare_model(impl, spec, x, y, state=state)"])

    def head(self, m: int) -> Problem:
        return Problem(self.spec, self.state, np.asarray(self.x)[:m], np.asarray(self.y)[:m], self.device)


# --------------------------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------------------------

def _close(actual: Any, expected: Any, rec: Record, scale: float = 1.0, loose: float = LOOSE) -> bool:
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape or not np.all(np.isfinite(actual)) or not np.all(np.isfinite(expected)):
        return False
    atol = loose * (rec.atol + rec.noise_floor) * max(1.0, abs(scale))
    return measure(actual, expected, loose * rec.rtol, atol)["tol_ratio"] <= 1


def _tensor(v: Any) -> Any:
    from ..core.torch_import import torch_module

    return torch_module().as_tensor(np.asarray(v, dtype=np.float64))


def _layer(param: str) -> int:
    try:
        return int(param.split(".")[1])
    except (IndexError, ValueError):
        return -1


def _act(spec: ModelSpec, layer: int) -> str:
    return spec.activations[layer]["name"]


def _loss_formula(spec: ModelSpec) -> str:
    """torch's loss of ``spec`` and what it divides by."""
    loss, reduction = spec.loss["name"], spec.reduction
    if reduction == "sum":
        return f"torch: {loss}(reduction='sum') adds the losses up and divides by nothing, nor does its gradient"
    return (f"torch: {loss}(reduction={reduction!r}) divides the summed loss, and so every gradient, by "
            f"{mean_divisor(loss)}")


def _loss_value_words(loss: Record | None, k: float) -> str:
    """What the user's loss value says of a gradient factor ``k``: it agrees with torch's (only the
    gradient code carries the factor), carries the factor too (the loss is defined with it), or is
    off by another factor."""
    if loss is None:
        return ""
    if loss.status == "pass":
        return "your loss value agrees with torch's: only the gradient code carries the factor"
    ratio = loss.actual_value / loss.expected_value
    if abs(ratio / k - 1) < 1e-3:
        return f"your loss value is {ratio:.4g} × torch's too: the loss itself is defined with this factor"
    return f"your loss value is {ratio:.4g} × torch's, a different factor: the value and the gradient disagree"


# --------------------------------------------------------------------------------------------
# The analysis of one problem
# --------------------------------------------------------------------------------------------

class _Analysis:
    """The implementation and torch on one problem (``spec`` may be a variant of the problem's)."""

    def __init__(self, impl: Any, problem: Problem, records: list[Record], spec: ModelSpec | None = None):
        self.impl, self.problem, self.records = impl, problem, records
        self.spec = spec or problem.spec
        self.xs, self.target = problem.prepared()
        self.n, self.c = int(self.xs.shape[0]), int(self.spec.sizes[-1])
        self.tols = {r.param: r for r in records if r.check == "gradient"}
        self.forward_tol = next(r for r in records if r.check == "forward")
        self.causes: list[RootCause] = []

    def run(self, spec: ModelSpec, xs: np.ndarray | None = None, target: np.ndarray | None = None):
        """``(output, grads)`` of the implementation on ``spec`` (same weights), float64."""
        model = self.impl.build(spec, self.problem.state)
        xs = self.xs if xs is None else xs
        out = np.asarray(model.forward(xs), dtype=np.float64)
        _, grads = model.loss_and_grads(xs, self.target if target is None else target)
        return out, {k: np.asarray(v, dtype=np.float64) for k, v in grads.items()}

    def ref(self, changes: Mapping[int, Any] | None = None, spec: ModelSpec | None = None, acts: Any = None):
        return reference_pass(spec or self.spec, self.problem.state, self.xs, self.target, changes, acts)

    def cause(self, kind: str, what: str, evidence: str = "", right: str = "", **where: Any) -> None:
        """Record a root cause; ``where``: the :class:`~.causes.RootCause` fields that place it."""
        self.causes.append(RootCause(kind, what, evidence, right, **where))

    def at(self, spec: ModelSpec, layers: Iterable[int], part: str = "") -> dict[str, Any]:
        """The place ``layers.L (act part)``."""
        layers = tuple(layers)
        return {"op": _act(spec, layers[0]), "part": part, "layers": layers}

    # -- the forward pass --------------------------------------------------------------------

    def _forward_agrees(self, spec: ModelSpec) -> bool | None:
        try:
            out, _ = self.run(spec)
        except Exception:  # noqa: BLE001 - the implementation cannot run this variant
            return None
        return _close(out, self.ref(spec=spec).acts[-1], self.forward_tol, loose=1.0)

    def _replaced(self, layers: Iterable[int], spec: ModelSpec | None = None) -> ModelSpec | None:
        """The spec with ``layers``' activations replaced by a stand-in, or None."""
        spec = spec or self.spec
        acts = [dict(a) for a in spec.activations]
        for sub in STAND_INS:
            for k in layers:
                acts[k] = {"name": sub} if acts[k]["name"] != sub else acts[k]
            try:
                return spec.replace(hidden=acts[:-1], output=acts[-1])
            except (ValueError, TypeError, KeyError):
                continue
        return None

    def wrong_forward(self) -> ModelSpec | None:
        """Root causes of a wrong output, by substitution; the spec with the culprits replaced."""
        names = list(dict.fromkeys(_act(self.spec, k) for k in range(self.spec.n_layers)))
        groups = [[k for k in range(self.spec.n_layers) if _act(self.spec, k) == name] for name in names]
        tries = [[g] for g in groups] + [[g, h] for i, g in enumerate(groups) for h in groups[i + 1:]]
        for culprits in tries:
            layers = sorted(k for g in culprits for k in g)
            variant = self._replaced(layers)
            if variant is None or layers == list(range(self.spec.n_layers)) and len(culprits) > 1:
                continue
            if self._forward_agrees(variant):
                for g in culprits:
                    self._name_forward(g, variant)
                return variant
        return None

    def _name_forward(self, layers: list[int], variant: ModelSpec) -> None:
        name = _act(self.spec, layers[0])
        out, _ = self.run(self.spec)
        stand_in = _act(variant, layers[0])
        evidence = (f"with {name} in layers {', '.join(map(str, layers))} replaced by {stand_in} (same weights) your "
                    f"output equals torch's; with it, it differs by up to "
                    f"{float(np.max(np.abs(out - self.ref().acts[-1]))):.3g}")
        for form in (m for m in mistakes_at("activation_forward", self.spec.activations[layers[0]], network=True)
                     if m.form is not None):
            if _close(out, self.ref(acts={k: form.form for k in layers}).acts[-1], self.forward_tol, loose=1.0):
                return self.cause(form.key, form.what(name), evidence + "; that form reproduces your output",
                                  form.right_for(name), **self.at(self.spec, layers))
        self.cause("wrong_forward", f"{name}'s forward differs from torch's", evidence,
                   f"torch.nn.functional.{name} (see torch.nn.modules.activation)",
                   **self.at(self.spec, layers, "forward"))

    def loss_convention(self, spec: ModelSpec, loss: Record) -> bool:
        """Whether the failing loss value is torch's loss with an ε inside the log
        (:data:`~.catalogue.EPSILONS`), from torch's output; if so, named — as a convention with its
        effect, never as a factor."""
        name = spec.loss["name"]
        if not math.isfinite(loss.actual_value) or not self.records or \
                any(r.check == "forward" and r.status == "fail" for r in self.records):
            return False
        p = np.asarray(self.ref(spec=spec).acts[-1], dtype=np.float64)
        y = self.target if self.target.ndim == 2 else np.eye(p.shape[1])[self.target]
        n = 1.0 if spec.reduction == "sum" else float(p.size if name == "binary_cross_entropy" else p.shape[0])
        for mistake in mistakes_at("loss_value", loss=name):
            if "eps" not in mistake.words:
                continue
            for eps in EPSILONS:
                where = Site(p=_tensor(p), y=_tensor(np.asarray(y, dtype=np.float64)), n=n, loss=spec.loss,
                             reduction=spec.reduction, eps=eps)
                value = mistake.plant("loss_value", where)
                v = float(value) if value is not None else math.nan
                if math.isfinite(v) and abs(v - loss.actual_value) <= LOOSE * (loss.atol + loss.rtol * abs(v)):
                    self.cause(mistake.key, mistake.what(eps=eps),
                               f"your loss {loss.actual_value:.10g}, torch's {loss.expected_value:.10g}: torch's "
                               f"loss of your output with this convention gives {v:.10g}",
                               mistake.right_for(), area=f"loss ({name}, {spec.reduction})")
                    return True
        return False

    def large_logits(self, spec: ModelSpec) -> bool:
        zs = self.ref(spec=spec).zs
        m = float(np.max(np.abs(zs[-1]), initial=0.0))
        if not (math.isfinite(m) and m > LARGE_LOGIT):
            return False
        last = spec.n_layers - 1
        state = {k: np.array(v, copy=True) for k, v in self.problem.state.items()}
        for p in ("weight", "bias"):
            state[f"layers.{last}.{p}"] = state[f"layers.{last}.{p}"] * (SMALL_LOGIT / m)
        if not _passes(self.impl, self.problem, spec, state):
            return False
        self.cause("large_logits", f"wrong only when logits are large (max |logit| = {m:.3g})",
                   f"with the output layer scaled down to |logit| ≤ {SMALL_LOGIT:g} every check passes",
                   "exp overflows or a probability rounds to 0 before a log: subtract each row's max before exp "
                   "(log-sum-exp) and take ∂L/∂z = p − y from the logits", **self.at(spec, [last]))
        return True

    # -- the backward walk -------------------------------------------------------------------

    def _fits(self, grads: Mapping[str, np.ndarray], ref: Mapping[str, np.ndarray], layer: int,
              k: float) -> tuple[bool, bool]:
        return tuple(_close(grads[n], k * ref[n], self.tols[n], k)
                     for n in (f"layers.{layer}.weight", f"layers.{layer}.bias"))

    def _factor(self, k: float, spec: ModelSpec, layers: str) -> None:
        loss = self._loss_record(spec)
        value_agrees = loss is not None and loss.status == "pass"
        formula, why = name_factor(k, self.n, self.c, spec.loss["name"], spec.reduction, value_agrees=value_agrees)
        sign = "sign flipped" if k < 0 else "off by a constant factor"
        what = f"{sign}: yours = {k:.4g} × torch's" + (f" = {formula}" if formula else "")
        if abs(k + 1) < 1e-3:
            what, why = "sign flipped: yours = −1 × torch's", "y − p where p − y is meant, or a minus sign lost"
        evidence = f"least squares over {layers}: every element equals {k:.6g} × torch's to 10× the tolerance"
        self.cause("factor", what + (f" — {why}" if why else ""),
                   "; ".join(filter(None, [evidence, _loss_value_words(loss, k)])), _loss_formula(spec),
                   area="loss gradient (every layer)", factor=k)

    def _loss_record(self, spec: ModelSpec) -> Record | None:
        """The problem's own loss check, when ``spec`` is the problem's (not a variant of it)."""
        loss = next((r for r in self.records if r.check == "loss"), None)
        return loss if spec == self.problem.spec and loss is not None and loss.expected_value else None

    def walk(self, spec: ModelSpec, grads: Mapping[str, np.ndarray]) -> None:
        """The backward walk on ``spec`` (see the module docstring)."""
        grads = dict(grads)
        for name, ref in self.ref(spec=spec).grads.items():
            got = grads.get(name)
            if got is None:
                return self.cause("shape", "no gradient returned", right="one gradient per parameter, keyed like the "
                                  "state", parameter=name)
            if np.shape(got) != ref.shape:
                # a learner's bug (a bias summed over no axis or the wrong one, a transposed weight): named
                # when a catalogue mistake of the dense layer gives exactly this, else by its shape; the
                # walk goes on with torch's gradient in its place, so the other layers are diagnosed too
                layer, which = _layer(name), name.rsplit(".", 1)[-1]
                if not self._dense_mistake(spec, layer, which, got, 1.0,
                                           evidence=f"your {name} has shape {np.shape(got)}, torch's {ref.shape}; it "
                                                    "equals, on every element, what a torch network with this "
                                                    "mistake computes"):
                    self.cause("shape", f"gradient of shape {np.shape(got)}, torch's is {ref.shape}",
                               right="∂L/∂W has the weight's shape (out, in), ∂L/∂b (out,), like torch.nn.Linear",
                               parameter=name)
                grads[name] = ref
                continue
            if not np.all(np.isfinite(got)):
                return self.cause("nonfinite", f"non-finite values in {int(np.sum(~np.isfinite(got)))} of "
                                  f"{got.size} entries", parameter=name)
        changes: dict[int, Any] = {}
        k: float | None = None
        factor_named = False
        ref = self.ref(changes, spec).grads
        for layer in range(spec.n_layers - 1, -1, -1):
            names = [f"layers.{layer}.weight", f"layers.{layer}.bias"]
            if k is None:
                k0 = least_squares([grads[n] for n in names], [ref[n] for n in names])
                if all(self._fits(grads, ref, layer, 1.0)):
                    k = 1.0
                elif k0 and all(self._fits(grads, ref, layer, k0)):
                    k = k0
                    if not factor_named:
                        self._factor(k, spec, f"layers.{layer}")
                        factor_named = True
                elif any(self._fits(grads, ref, layer, 1.0)):  # one parameter agrees: δ is right, the other's own
                    k = 1.0
            if k is not None:
                w_ok, b_ok = self._fits(grads, ref, layer, k)
                if w_ok and b_ok:
                    continue
                if w_ok != b_ok:  # at a kink only the rows on it differ: one parameter's may still agree
                    if self._mistake(spec, layer, grads, changes, k, factor_named, only=("kink",)):
                        ref = self.ref(changes, spec).grads
                    else:
                        self._parameter(spec, layer, "weight" if b_ok else "bias", grads, ref, k)
                    continue
            if self._mistake(spec, layer, grads, changes, k, factor_named) or self._scaled(spec, layer, grads,
                                                                                              changes, k):
                k = k if k is not None else self._k
                factor_named = factor_named or self._k != 1.0
                ref = self.ref(changes, spec).grads
                continue
            self.cause("unexplained",
                       f"the step δ_{layer} = ∂L/∂z_{layer} is wrong in a way no known mistake explains — "
                       f"check {_act(spec, layer)}'s derivative" + (" and the loss's gradient"
                                                                    if layer == spec.n_layers - 1 else ""),
                       f"layers.{layer}'s weight and bias gradients differ from torch's"
                       + (f" (after dividing out ×{k:.4g})" if k not in (None, 1.0) else "")
                       + self._substituted(spec, layer, k if k is not None else 1.0),
                       "δ_K = f'(z_K)ᵀ ∂L/∂a_K at the output; δ_k = (δ_{k+1} W_{k+1}) ⊙ f'(z_k) below",
                       **self.at(spec, [layer], "backward"))
            deltas = self._own_deltas(spec, layer)
            if deltas is None:
                return None
            changes[layer], k = ("given", deltas), None
            factor_named = True  # a factor below is relative to your own δ, not a new cause
            ref = self.ref(changes, spec).grads
        return None

    def _mistake(self, spec, layer, grads, changes, k, factor_named, only: tuple[str, ...] | None = None) -> bool:
        """Whether one of the catalogue's mistakes for this layer (or only those named ``only``)
        explains ``layer``'s gradients; if so it is recorded as a cause and planted in ``changes``."""
        for mistake in candidate_mistakes(spec, layer):
            if only is not None and mistake.key not in only:
                continue
            planted = self.ref({**changes, layer: mistake.key}, spec).grads
            names = [f"layers.{layer}.weight", f"layers.{layer}.bias"]
            km = k if k is not None else fit_factor([grads[n] for n in names], [planted[n] for n in names])
            if not km or not all(self._fits(grads, planted, layer, km)):
                continue
            new_factor = not factor_named and k is None and abs(km - 1) > 1e-6
            if new_factor and not all(self._fits(grads, planted, layer, 1.0)):
                self._factor(km, spec, f"layers.{layer}")
            self._k = km if k is None else k
            changes[layer] = mistake.key
            self._name_mistake(mistake, spec, layer, grads)
            return True
        return False

    def _name_mistake(self, mistake: Mistake, spec: ModelSpec, layer: int, grads) -> None:
        act = _act(spec, layer)
        if mistake.form is not None:
            return self.cause(mistake.key, mistake.what(act),
                              f"your gradients of layers.{layer} equal those of a torch network with that form",
                              mistake.right_for(act), **self.at(spec, [layer]))
        names = [f"layers.{layer}.weight", f"layers.{layer}.bias"]
        at_zero = derivative_at_zero(spec.activations[layer])[1] if mistake.key == "kink" else 0.0
        size = sum(np.size(grads[n]) for n in names)
        zeros = int(np.sum(self.ref(spec=spec).zs[layer] == 0)) if mistake.key == "kink" else 0
        evidence = (f"your gradients of layers.{layer} equal, on {size} of {size} elements, those of a torch "
                    "network with this mistake" + (f" ({zeros} pre-activations are exactly 0 there)" if zeros else ""))
        self.cause(mistake.key, mistake.what(act), evidence, mistake.right_for(act, at_zero),
                   **self.at(spec, [layer], "backward"))

    def _scaled(self, spec, layer, grads, changes, k) -> bool:
        if k is None:
            return False
        names = [f"layers.{layer}.weight", f"layers.{layer}.bias"]
        ref = self.ref(changes, spec).grads
        kl = least_squares([grads[n] for n in names], [k * ref[n] for n in names])
        if not kl or abs(kl - 1) < 1e-6 or not all(self._fits(grads, ref, layer, k * kl)):
            return False
        self._k = k
        changes[layer] = ("scaled", kl)
        formula, _ = name_factor(kl, self.n, self.c, spec.loss["name"], spec.reduction)
        self.cause("scaled_delta",
                   f"this layer's δ is {kl:.4g} × torch's" + (f" = {formula}" if formula else "")
                   + f" — a constant too many in {_act(spec, layer)}'s derivative or this layer's backward",
                   f"least squares over layers.{layer}: every element equals {kl:.6g} × torch's, the layers above "
                   "agree", "δ_k = (δ_{k+1} W_{k+1}) ⊙ f'(z_k)", factor=kl, **self.at(spec, [layer], "backward"))
        return True

    def _parameter(self, spec, layer, which, grads, ref, k) -> None:
        name = f"layers.{layer}.{which}"
        got = grads[name]
        if self._dense_mistake(spec, layer, which, got, k):
            return
        if which == "weight":  # (transposed is the catalogue's weight_transposed, tried above)
            what, right = ("only the weight gradient is wrong (its bias gradient, hence δ, is right)",
                           "∂L/∂W = δᵀ·a_prev")
        else:
            what, right = ("only the bias gradient is wrong (the weight gradient, hence δ, is right)",
                           "∂L/∂b = Σ of δ over the batch rows (axis 0)")
        self.cause("parameter", what, f"{name} differs from torch's; the other gradients of layers.{layer} "
                   "agree", right, parameter=name)

    def _dense_mistake(self, spec: ModelSpec, layer: int, which: str, got: np.ndarray, k: float,
                       evidence: str = "") -> bool:
        """Whether a catalogue mistake of the dense layer's ``which`` gradient (sites ``dense_dW``,
        ``dense_db``: planted on torch's δ and input of this layer) explains ``got`` — also one of
        another shape with as many elements as the mistake's (a scalar returned as ``(1,)``); if so it
        is recorded as a cause of that parameter."""
        site = {"weight": "dense_dW", "bias": "dense_db"}[which]
        candidates = mistakes_at(site, network=True)
        if not candidates:
            return False
        name = f"layers.{layer}.{which}"
        torch_pass = self.ref(spec=spec)
        x = self.xs if layer == 0 else torch_pass.acts[layer - 1]
        where = Site(g=_tensor(torch_pass.deltas[layer]), x=_tensor(x), expected=_tensor(torch_pass.grads[name]))
        for mistake in candidates:
            model = mistake.plant(site, where)
            if model is None:
                continue
            model = np.asarray(model.detach() if hasattr(model, "detach") else model)
            mine = np.reshape(got, model.shape) if np.size(got) == model.size else got
            if _close(mine, k * model, self.tols[name], k):
                self.cause(mistake.key, mistake.what(), evidence or f"{name} equals, on every element, what a torch "
                           f"network with this mistake computes; the other gradient of layers.{layer} agrees",
                           mistake.right_for(), parameter=name)
                return True
        return False

    def _substituted(self, spec: ModelSpec, layer: int, k: float) -> str:
        """Evidence by substitution: does this layer agree once its activation is a stand-in?"""
        variant = self._replaced([layer], spec)
        try:
            _, grads = self.run(variant)
        except Exception:  # noqa: BLE001 - the implementation cannot run the variant
            return ""
        agrees = all(self._fits(grads, self.ref(spec=variant).grads, layer, k))
        return (f"; with {_act(spec, layer)} in layers.{layer} replaced by {_act(variant, layer)} (same weights) "
                + ("this layer's gradients agree" if agrees else "they still differ (the error is elsewhere in the "
                                                                   "step: the dense backward or the loss)"))

    def _own_deltas(self, spec: ModelSpec, layer: int) -> np.ndarray | None:
        """Your δ at ``layer`` per sample: the bias gradient of one-sample batches."""
        try:
            rows = [self.run(spec, self.xs[i:i + 1], self.target[i:i + 1])[1][f"layers.{layer}.bias"]
                    for i in range(self.n)]
        except Exception:  # noqa: BLE001 - the implementation refuses one-sample batches
            return None
        return np.stack([np.ravel(r) for r in rows])


def _passes(impl: Any, problem: Problem, spec: ModelSpec, state: Mapping[str, np.ndarray]) -> bool | None:
    """Whether every check passes on the variant (``None``: it could not be run)."""
    from ..core.compare import compare_model

    try:
        records = compare_model(impl, spec, problem.x, problem.y, state=state, device=problem.device, fd="never")
    except Exception:  # noqa: BLE001 - NotImplementedError, or the implementation crashing on the variant
        return None
    return not any(r.status == "fail" for r in records)


# --------------------------------------------------------------------------------------------
# Putting it together
# --------------------------------------------------------------------------------------------

def diagnose(records: list[Record], impl: Any = None, problem: Problem | None = None,
             reproduce: bool = True) -> list[RootCause]:
    """The root causes of the failing records of one problem (every flavour). With ``impl`` and
    ``problem`` by substitution and the backward walk, each with a reproducer (``reproduce``): the
    first 1, 2 or 4 rows of the batch when they show the same cause, else the whole batch; with
    the records alone, the constant factor or sign readable from cosine and norm ratio."""
    causes = _merged(_diagnose(records, impl, problem))
    if not (reproduce and problem):
        return causes
    return [_reproduced(c, getattr(impl, "unguarded", impl), problem, records) for c in causes]


def _merged(causes: list[RootCause]) -> list[RootCause]:
    """One cause per mistake of one activation, whichever layers it enters at (the same function, twice);
    one per catalogue mistake of the dense layers' gradients, whichever parameters it is in (the bias
    summed over no axis in every layer is one mistake)."""
    out: dict[tuple, RootCause] = {}
    for c in causes:
        if c.parameter and c.kind in BY_KEY and (c.kind, "parameters") in out:
            first = out[c.kind, "parameters"]
            out[c.kind, "parameters"] = replace(first, parameter=f"{first.parameter}, {c.parameter}")
            continue
        if c.parameter and c.kind in BY_KEY:
            out[c.kind, "parameters"] = c
            continue
        key = (c.kind, c.place, c.swapped) if c.layers and c.kind != "parameter" else (c.kind, c.where)
        if key in out:
            c = replace(out[key], layers=tuple(sorted(set(out[key].layers) | set(c.layers))),
                        evidence=f"{out[key].evidence}; likewise at layers.{', '.join(map(str, c.layers))}")
        out[key] = c
    return list(out.values())


def _reproduced(cause: RootCause, impl: Any, problem: Problem, records: list[Record]) -> RootCause:
    """``cause`` with a reproducer that runs (:func:`~scratchnet_reference.core.reproducer.reproducer`):
    on the first 1, 2 or 4 rows of the batch when they show the same cause, else the whole batch — the
    user's call on one tensor the cause explains, torch's values, the record's own assertion."""
    from ..core.compare import compare_model
    from ..core.reproducer import ref_of, reproducer

    def snippet(p: Problem, recs: list[Record]) -> str:
        rec = next((r for r in recs if r.status == "fail" and _explains(cause, r)), None)
        if rec is None:
            return p.reproducer()
        return reproducer(rec, p.spec, p.state, p.x, p.y, impl=ref_of(impl))

    for m in (1, 2, 4):
        if m >= len(problem.x):
            break
        small = problem.head(m)
        try:
            found = compare_model(impl, small.spec, small.x, small.y, state=small.state, device=small.device,
                                  fd="never")
            if any(c.kind == cause.kind and c.where == cause.where for c in diagnose(found, impl, small, False)):
                return replace(cause, reproducer=snippet(small, found))
        except Exception:  # noqa: BLE001 - the implementation refuses a smaller batch: the whole one it is
            break
    return replace(cause, reproducer=snippet(problem, records))


def _diagnose(records: list[Record], impl: Any, problem: Problem | None) -> list[RootCause]:
    failing = [r for r in records if r.status == "fail"]
    if not failing:
        return []
    impl = getattr(impl, "unguarded", impl)  # pytest's guard would turn NotImplementedError into a skip
    if impl is None or problem is None or not any(r.check == "forward" for r in records):
        return _from_records(records)
    by_ops = _by_substitution(impl, problem)
    if by_ops:
        return by_ops
    analysis = _Analysis(impl, problem, records)
    spec = problem.spec
    if any(r.check == "forward" for r in failing):
        if analysis.large_logits(spec):
            return analysis.causes
        spec = analysis.wrong_forward()
        if spec is None:
            analysis.cause("wrong_forward", "the output differs from torch's and replacing no "
                           "activation makes it agree: check the dense layers (z = x Wᵀ + b) and the output "
                           "activation", right="z_k = a_{k−1} W_kᵀ + b_k, a_k = f_k(z_k)", area="forward pass")
            return analysis.causes
    found = len(analysis.causes)
    try:
        _, grads = analysis.run(spec)
    except Exception as exc:  # noqa: BLE001 - the variant cannot be run: what was found stands
        return analysis.causes or [RootCause("other", f"(no diagnosis: {type(exc).__name__}: {exc})")]
    analysis.walk(spec, grads)
    loss = next((r for r in failing if r.check == "loss"), None) if spec is problem.spec else None
    if loss is not None and analysis.loss_convention(spec, loss):
        pass  # the loss value is named by its convention, whatever else the gradients show
    elif len(analysis.causes) == found and spec is problem.spec:
        near_one = loss is not None and bool(loss.expected_value) and \
            abs(loss.actual_value / loss.expected_value - 1) < 1e-3
        if near_one:  # a ratio within 1e-3 of 1 is no factor: say it differs, not "1 × torch's"
            analysis.cause("loss_value", "the loss value differs from torch's, but by no constant factor",
                           f"yours {loss.actual_value:.10g}, torch's {loss.expected_value:.10g} (relative "
                           f"difference {abs(loss.actual_value / loss.expected_value - 1):.2g}); the output agrees",
                           f"torch.nn.functional: {spec.loss['name']}(reduction={spec.reduction!r})",
                           area=f"loss ({spec.loss['name']}, {spec.reduction})")
        elif loss is not None:
            k = loss.actual_value / loss.expected_value if loss.expected_value else 0.0
            formula, why = name_factor(k, analysis.n, analysis.c, spec.loss["name"], spec.reduction, of="loss")
            analysis.cause("loss_value",
                           f"the loss value is {k:.4g} × torch's" + (f" = {formula} — {why}" if formula else ""),
                           f"yours {loss.actual_value:.6g}, torch's {loss.expected_value:.6g}; the output agrees",
                           f"torch.nn.functional: {spec.loss['name']}(reduction={spec.reduction!r})",
                           area=f"loss ({spec.loss['name']}, {spec.reduction})", factor=k)
        elif all(math.isfinite(r.tol_ratio) and r.tol_ratio < LOOSE for r in failing):
            worst = max(r.tol_ratio for r in failing)
            analysis.cause("marginal", f"just past the tolerance (worst tol_ratio "
                           f"{worst:.3g}): a small drift (rounding, summation order, cancellation in float32) "
                           "rather than a wrong formula", "no known mistake, factor or substitution explains it",
                           area="every failing tensor")
    return analysis.causes


def _by_substitution(impl: Any, problem: Problem) -> list[RootCause] | None:
    """Root causes by swapping the ops the implementation exposes (:mod:`.substitution`), each
    named by the analysis of the network in which only it is yours; ``None`` when no op is exposed
    or no swap clears the failure."""
    from ..core.compare import compare_model
    from .substitution import Swapped, culprits, exposed_ops, op_groups

    ops = exposed_ops(impl)
    if not ops:
        return None

    def run(variant: Any) -> list[Record]:
        return compare_model(variant, problem.spec, problem.x, problem.y, state=problem.state, device=problem.device,
                             fd="never")

    def fails(variant: Any) -> bool:
        try:
            return any(r.status == "fail" for r in run(variant))
        except Exception:  # noqa: BLE001 - a model that cannot be built with torch's op fails
            return True

    found = culprits(impl, fails, op_groups(ops, problem.spec))
    out = []
    for mine in found or []:
        others = [n for g in found if g is not mine for n in g]
        alone = Swapped(impl, others)
        names = ", ".join(mine)
        evidence = (f"with your {names} swapped for torch's" + (" (and the other culprits)" if others else "")
                    + " every check passes; with every other op swapped instead the failure remains")
        for c in _diagnose(run(alone), alone, problem) or [RootCause("op", "differs from torch's")]:
            out.append(replace(c, swapped=tuple(mine),
                               evidence=f"{evidence}; {c.evidence}" if c.evidence else evidence))
    return out or None


def _from_records(records: list[Record]) -> list[RootCause]:
    """Factor or sign from each failing gradient's cosine and norm ratio (no arrays at hand)."""
    out: dict[tuple, RootCause] = {}
    for r in records:
        if r.status != "fail" or r.check != "gradient" or not (math.isfinite(r.cosine) and math.isfinite(r.norm_ratio)):
            continue
        if abs(abs(r.cosine) - 1) > 1e-6 or abs(r.norm_ratio - 1) < 1e-6 and r.cosine > 0:
            continue
        k = math.copysign(r.norm_ratio, r.cosine)
        n = _batch_size(records)
        c = int(r.sizes.split("-")[-1]) if r.sizes else 1
        formula, why = name_factor(k, n, c, r.loss, r.reduction)
        what = f"yours = {k:.4g} × torch's" + (f" = {formula} — {why}" if formula else "")
        cause = RootCause("factor", ("sign flipped: " if k < 0 else "off by a constant factor: ") + what,
                          f"cosine {r.cosine:.6g} with torch's, norm ratio {r.norm_ratio:.6g}", area="gradients",
                          factor=k)
        out.setdefault(cause.key, cause)
    return list(out.values())


def _batch_size(records: list[Record]) -> int:
    forward = next((r for r in records if r.check == "forward"), None)
    try:
        return int(forward.shape.strip("()").split(",")[0])
    except (AttributeError, ValueError):
        return 1


#: the causes of a wrong loss value alone (the output agrees)
LOSS_VALUE_KINDS = ("loss_value", "log_epsilon")


def _explains(cause: RootCause, rec: Record) -> bool:
    """Whether ``cause`` explains the failing record ``rec``: a wrong forward or large logits explain
    everything, a factor every gradient, a layer's mistake its own and the lower layers' gradients."""
    if cause.kind in ("wrong_forward", "large_logits", "other", "marginal"):
        return True
    if cause.kind in LOSS_VALUE_KINDS or rec.check != "gradient":
        return cause.kind in LOSS_VALUE_KINDS and rec.check == "loss"
    if cause.parameter:  # a cause in named parameters (one mistake may be in several: "layers.0.bias, …")
        return rec.param in cause.parameter.split(", ")
    if cause.kind in ("factor", "shape", "nonfinite", "parameter"):
        return cause.kind == "factor"
    return not cause.layers or _layer(rec.param) <= max(cause.layers)


def inputs_cause(record: Record) -> RootCause:
    """The root cause of a failing ``inputs`` record (:mod:`~scratchnet_reference.core.boundary`): which
    call wrote into which argument, in words that do not depend on by how much (one mistake, one cause)."""
    calls = [re.sub(r" \(largest change [^)]*\)", "", part) for part in record.note.split("; ") if part]
    return RootCause("input_modified", "your " + "; your ".join(calls or ["code modified its inputs in place"]),
                     f"{record.note}; the harness handed it a copy, so its verdict stands — but your own caller's "
                     "arrays change under it (the next forward sees other inputs)",
                     "leave your arguments alone: x = x / m makes a new array, x /= m writes into the caller's",
                     area="your forward / loss_and_grads (its arguments)")


def annotate(records: list[Record], impl: Any = None, problem: Problem | None = None,
             capabilities: Any = None) -> list[Record]:
    """Fill ``diagnosis`` on the failing records of one problem with the root causes that explain
    each (see :func:`diagnose`) and return ``records``. Never raises: a diagnosis that breaks says so."""
    for i, r in enumerate(records):  # a call that wrote into its inputs: named from the record itself
        if r.check == INPUTS_CHECK and r.status == "fail":
            records[i] = replace(r, diagnosis=encode([inputs_cause(r)]))
    failing = [r for r in records if r.status == "fail" and r.check != INPUTS_CHECK]
    if not failing:
        return records
    try:
        causes = diagnose([r for r in records if r.check != INPUTS_CHECK], impl, problem)
    except Exception as exc:  # noqa: BLE001 - a diagnosis must never turn a failure into a crash
        causes = [RootCause("other", f"(no diagnosis: {type(exc).__name__}: {exc})")]
    for i, r in enumerate(records):  # records are frozen: the list is updated in place
        if r.check == INPUTS_CHECK:
            continue
        mine = ([c for c in causes if _explains(c, r)] or causes) if r.status == "fail" else []
        if mine:
            records[i] = replace(r, diagnosis=encode(mine))
    return records


def annotate_training(records: list[Record], gradients_ok: bool | None = None,
                      repeat: float | None = None) -> list[Record]:
    """Fill ``diagnosis`` on the failing records of lockstep training runs: whether the loss
    before the first broken step still agreed, and — ``gradients_ok``, from a gradient check of
    the trained model — whether the gradients or the update rule are to blame; ``repeat``
    (:func:`~scratchnet_reference.core.boundary.second_call_ratio`): a second ``loss_and_grads``
    on the same batch gave ``repeat ×`` the first's gradients (``+=``: 2). Where every final
    parameter still agrees with torch's, the weights never left torch's: only the logged loss
    differs, and training is not said to break."""
    curves: dict[tuple, list[Record]] = {}
    diagnosis: dict[int, str] = {}  # id(record) -> its diagnosis (records are frozen: replaced in the list)
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
        weights_ok = all(r.status != "fail" for r in curve if r.check == "final_params")
        evidence, right = f"first at {first}", ""
        if repeat is not None:
            doubled = math.isfinite(repeat) and abs(repeat - 2) < 1e-6
            text = ("your gradients are added to those of the previous call (+=), not replaced" if doubled else
                    "your gradients depend on the calls before: a second call on the same batch gives others")
            evidence = (f"a second loss_and_grads on the same batch and weights gives {repeat:.6g} × the first's "
                        f"gradients; training breaks at {first}")
            right = ("compute each call's gradients afresh (self.dW = …, not self.dW += …), or set them to zero at "
                     "the start of every backward pass")
        elif weights_ok and loss_ratio > 1:
            text = ("the logged loss differs from torch's while the weights stay with torch's: the loss value's own "
                    "cause, not the training")
        elif loss_ratio <= 1 and gradients_ok is False:
            text = ("training breaks: the loss before an update agrees with torch, the parameters after it do not — "
                    f"and the gradients of this model are wrong (see its gradient checks): fix those first, then "
                    f"{update} can be judged")
        elif loss_ratio <= 1:
            known = "the gradients of this model agree with torch, so " if gradients_ok else ""
            text = ("training breaks: the loss before an update agrees with torch, the parameters after it do not — "
                    f"{known}{update} is wrong" + ("" if gradients_ok else " (or the gradients: see the gradient "
                                                                          "checks of this model)"))
        else:
            text = ("training breaks: the loss before an update already differs — the forward pass or the loss "
                    "is wrong (see the gradient checks of this model)")
        kind = ("accumulated" if repeat is not None else "training_loss_only" if weights_ok and loss_ratio > 1
                else "training_gradients" if gradients_ok is False else "update_rule" if loss_ratio <= 1
                else "training_forward")
        area = ("your loss_and_grads (between calls)" if kind == "accumulated"
                else f"training: {broken.optimizer} {broken.gd_mode}")
        cause = encode([RootCause(kind, text, evidence, right, area=area)])
        for r in (r for r in curve if r.status == "fail"):
            diagnosis[id(r)] = (cause if (r is broken or r.check == "final_params")
                                else f"follows from step {broken.step}")
    records[:] = [replace(r, diagnosis=diagnosis[id(r)]) if id(r) in diagnosis else r for r in records]
    return records
