"""Op diagnosis: what exactly is wrong with a learner's op, in words, with the right formula.

Every op is checked on its own with torch's inputs (:mod:`.ops`), so each failing op is its own
root cause. For each, in this order, over *every* failing example (the worst one first — never only
a shrunk one):

1. **raised** — the function raised on some inputs.
2. **overflow for large inputs** — your output is NaN/±inf where torch's is finite, only on examples
   with ``|input| > LARGE`` (``exp(z)`` overflows beyond z ≈ 709; ``log(0)``); **large inputs only**
   — finite but wrong only there, every small example right.
3. **wrong only at kinks** — every wrong element sits exactly on a kink (``relu'(0)``: torch's is 0).
4. **a model of the error** — your output ``a`` is fitted as ``a ≈ k·m`` (least squares
   ``k = ⟨a, m⟩/⟨m, m⟩``, then checked elementwise to ``LOOSE`` × the tolerance) against torch's
   output (a pure factor; ``k = −1`` is a sign flip) and against each known mistake ``m``
   (:data:`MISTAKES`: softmax's ``s(1 − s)·g``, ``f'(a)`` for ``f'(z)``, a derivative applied twice
   or left out, ``p − y`` returned as ``∂L/∂p``, binary cross-entropy used as categorical, …).
   ``k`` is named as ``±N^i·C^j·2^l`` (i, j, l ∈ {−1, 0, 1}, N the batch, C the columns) that holds
   on *every* failing example, each with its own N and C — so ``N`` is never confused with 2 on a
   batch of two — and explained in the right direction: ``yours = k × torch's``. A mistake with
   ``k ≠ 1`` is a compound error taken apart: the factor divided out, the formula named.
5. otherwise **unrecognised**, with the worst element.

A loss gradient is also held against central differences of the learner's *own* loss value
(when it is given): "your loss is right, your gradient is not" vs "your gradient is the derivative
of your loss, and the loss itself is wrong". A loss and its gradient wrong by the same factor, the
gradient being the loss's derivative, are one root cause.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np

from ..core.root_causes import ELEMENTWISE_LOSSES
from .op_examples import LARGE, Example, UserOps, call_user
from .reference_ops import OPS, reference_op

__all__ = ["Finding", "diagnose", "render_findings", "MISTAKES", "LOOSE", "name_factor"]

#: a model of the error must fit to this many times the comparison's own tolerance
LOOSE = 10.0

#: kind -> (what is wrong, the formula that is right, how the evidence calls your output)
MISTAKES: dict[str, tuple[str, str, str]] = {
    "factor": ("off by a constant factor", "", "{k} × torch's"),
    "sign": ("the sign is flipped (y − p for p − y, or a minus sign too many or too few)", "", "−1 × torch's"),
    "softmax_s1s": ("softmax's derivative taken elementwise as s(1 − s) — the diagonal of the Jacobian only",
                    "dL/dz = s ⊙ (g − ⟨g, s⟩): the Jacobian is diag(s) − s sᵀ, so every output moves every input",
                    "s(1 − s)·g"),
    "log_softmax_diagonal": ("log_softmax's derivative taken elementwise as 1 − s — the diagonal only",
                             "dL/dz = g − s·Σ_j g_j (s = exp(a))", "(1 − s)·g"),
    "softmax_axis0": ("normalised over the batch (columns, axis 0) instead of over each row's classes",
                      "s_ij = exp(z_ij − max_j z_ij) / Σ_j exp(z_ij − max_j z_ij), over axis 1 (keepdims)",
                      "the same op over axis 0"),
    "derivative_at_output": ("{act}'s derivative evaluated at the output a instead of the input z: f'(a) for f'(z)",
                             "use f'(z) — e.g. σ'(z) = σ(z)(1 − σ(z)) = a(1 − a) from a, not σ'(a) = σ(a)(1 − σ(a))",
                             "f'(a)·g"),
    "derivative_twice": ("{act}'s derivative applied twice", "dL/dz = f'(z)·g, once", "f'(z)²·g"),
    "derivative_left_out": ("the upstream gradient g is returned unchanged: {act}'s derivative is left out",
                            "dL/dz = f'(z)·g", "g"),
    "upstream_ignored": ("the upstream gradient g is ignored: returns f'(z), not the vector–Jacobian product",
                         "dL/dz = f'(z)·g (elementwise; for softmax s ⊙ (g − ⟨g, s⟩))", "f'(z)·1"),
    "gelu_tanh": ("GELU computed with the tanh approximation where torch's default is exact",
                  "f(z) = z·Φ(z) with Φ(z) = ½(1 + erf(z/√2)); or declare PARAMS = "
                  "{'gelu': {'approximate': 'tanh'}}", "the tanh-approximate GELU"),
    "bce_as_categorical": ("binary cross-entropy used where categorical cross-entropy is meant: "
                           "−Σ [y log p + (1 − y) log(1 − p)] also penalises every wrong class",
                           "categorical: L = −Σ_ij y_ij log p_ij / N", "binary cross-entropy's"),
    "categorical_as_bce": ("categorical cross-entropy used where binary cross-entropy is meant: the (1 − y)·log(1 − p) "
                           "term is missing",
                           "L = −Σ [y log p + (1 − y) log(1 − p)] / (N·C); ∂L/∂p = (p − y)/(p(1 − p)) / (N·C)",
                           "categorical cross-entropy's"),
    "fused_delta_as_loss_grad": ("the fused ∂L/∂z = p − y returned as the loss gradient ∂L/∂p",
                                 "∂L/∂p = −y/p / N for cross-entropy on probabilities; p − y is the gradient with "
                                 "respect to the logits, after softmax's backward (use softmax_cross_entropy_grad)",
                                 "(p − y)/N"),
    "derivative_again_on_fused_delta": ("the activation's derivative applied again on top of the fused delta p − y",
                                        "for the fused pair the loss and activation derivatives cancel: "
                                        "∂L/∂z = (p − y)/n with nothing multiplied on", "f'(z)·(p − y)/n"),
    "ce_grad_through_s1s": ("the cross-entropy gradient −y/p is right, but it is pushed through softmax's diagonal "
                            "s(1 − s) instead of softmax's backward", "∂L/∂z = s ⊙ (g − ⟨g, s⟩) with g = −y/s/N, "
                            "which simplifies to (s − y)/N", "s(1 − s)·(−y/s)/N"),
    "loss_grad_as_logit_grad": ("∂L/∂p = −y/p returned as the gradient with respect to the logits: softmax's "
                                "backward is left out", "∂L/∂z = (s − y)/N", "−y/s / N"),
    "weight_transposed": ("the weight is used transposed", "out = x Wᵀ + b for W (out, in); dx = g W; dW = gᵀ x; "
                          "db = Σ_rows g (declare WEIGHT_LAYOUT = 'in_out' if your W is (in, out))",
                          "the transposed-weight result"),
    "overflow": ("overflow for large inputs: your output is NaN or ±inf where torch's is finite, and only on "
                 "inputs with |z| > {large:g} (exp overflows beyond z ≈ 709, log(0) = −inf)", "", ""),
    "large_inputs": ("wrong only for large inputs (|z| > {large:g}): precision is lost there, every small example is "
                     "right", "", ""),
    "kink": ("wrong only at kinks: at exactly {where} your {what} is {yours}, torch's is {torch}", "", ""),
    "raised": ("raised {error}", "", ""),
    "marginal": ("just past the tolerance (worst tol_ratio {ratio:.3g} ≤ {loose:g}): rounding, not a wrong formula",
                 "", ""),
    "unrecognised": ("wrong, in a way none of the known mistakes explains", "", ""),
}

#: the right formula per op base (what the finding tells the learner to compute)
RIGHT: dict[str, str] = {
    "softmax": "s = exp(z − max z) / Σ_j exp(z − max z) per row;  backward: s ⊙ (g − ⟨g, s⟩)",
    "log_softmax": "log s = z − m − log Σ_j exp(z_j − m), m = max z;  backward: g − s·Σ_j g_j",
    "sigmoid": "σ(z) = 1/(1 + exp(−z)) (exp(z)/(1 + exp(z)) for z < 0);  backward: σ(z)(1 − σ(z))·g = a(1 − a)·g",
    "tanh": "tanh(z);  backward: (1 − a²)·g",
    "relu": "max(z, 0);  backward: g·[z > 0] (0 at z = 0, as torch)",
    "leaky_relu": "z if z > 0 else s·z;  backward: g if z > 0 else s·g (s at z = 0, as torch)",
    "softplus": "log(1 + exp(βz))/β computed as max(z, 0) + log1p(exp(−|z|)) (z itself beyond the threshold)",
    "mse": "L = Σ(p − y)² / (N·C) (mean) or Σ(p − y)² (sum);  ∂L/∂p = 2(p − y)/(N·C)",
    "l1": "L = Σ|p − y| / (N·C);  ∂L/∂p = sign(p − y)/(N·C) (0 at p = y, as torch)",
    "cross_entropy": "L = −Σ_ij y_ij log p_ij / N (mean) or without /N (sum);  ∂L/∂p = −y/p / N",
    "nll": "L = −Σ_ij y_ij·(log p)_ij / N;  ∂L/∂(log p) = −y/N",
    "binary_cross_entropy": "L = −Σ [y log p + (1 − y) log(1 − p)] / (N·C);  ∂L/∂p = (p − y)/(p(1 − p)) / (N·C)",
    "softmax_cross_entropy": "L = Σ_i (m_i + log Σ_j exp(z_ij − m_i) − Σ_j y_ij z_ij) / N with m_i = max_j z_ij "
                             "(log-sum-exp);  ∂L/∂z = (softmax(z) − y)/N",
    "sigmoid_binary_cross_entropy": "ℓ = max(z, 0) − z·y + log1p(exp(−|z|)), mean over N·C;  ∂L/∂z = (σ(z) − y)/(N·C)",
    "log_softmax_nll": "L = −Σ_ij y_ij log_softmax(z)_ij / N;  ∂L/∂z = (softmax(z) − y)/N",
    "dense": "out = x Wᵀ + b (W (out, in));  dx = g W, dW = gᵀ x, db = Σ_rows g",
}


@dataclass
class Finding:
    """One root cause: ``op``, ``kind`` (a key of :data:`MISTAKES`), ``factor`` (``k`` in
    ``yours = k × model``; 1 for a pure mistake) and its name, the words, the evidence, the
    right formula and a reproducer to paste into a test."""

    op: str
    kind: str
    what: str
    evidence: str
    right: str
    factor: float = 1.0
    factor_name: str = "1"
    reproducer: str = ""
    checks: tuple[str, ...] = field(default_factory=tuple)
    #: for a loss gradient: whether finite differences of the learner's own loss agree with it
    own_loss_consistent: bool | None = None


# --------------------------------------------------------------------------------------------
# Factors
# --------------------------------------------------------------------------------------------

def _exprs() -> list[tuple[int, int, int, int]]:
    """(sign, i, j, l) for ±N^i·C^j·2^l, simplest first."""
    found = [(s, i, j, l) for s in (1, -1) for i, j, l in product((0, 1, -1), repeat=3)]
    return sorted(found, key=lambda e: (abs(e[1]) + abs(e[2]) + abs(e[3]), e[0] < 0))


def _value(expr: tuple[int, int, int, int], N: int, C: int) -> float:
    s, i, j, l = expr
    return s * float(N) ** i * float(C) ** j * 2.0 ** l


def name_factor(expr: tuple[int, int, int, int]) -> str:
    """``(1, 1, 1, -1)`` -> ``"N·C/2"``; ``(-1, 0, 0, 0)`` -> ``"−1"``."""
    s, i, j, l = expr
    up = [n for n, e in (("N", i), ("C", j), ("2", l)) if e == 1]
    down = [n for n, e in (("N", i), ("C", j), ("2", l)) if e == -1]
    text = "·".join(up) or "1"
    if down:
        text += "/" + ("·".join(down) if len(down) == 1 else f"({'·'.join(down)})")
    return ("−" if s < 0 else "") + text


def _factor_words(expr: tuple[int, int, int, int], base: Any, reduction: str, ex: Example) -> str:
    """Why ``yours = k × torch's``, in the right direction."""
    s, i, j, l = expr
    N, C = ex.N, ex.C
    loss = base[1] if isinstance(base, tuple) else base
    mean = reduction == "mean" and loss in (*ELEMENTWISE_LOSSES, "cross_entropy", "nll")
    elementwise = loss in ELEMENTWISE_LOSSES or base == ("sigmoid", "binary_cross_entropy")
    parts = []
    if mean and i == 1 and j == 1 and elementwise:
        parts.append(f"you sum over all N·C elements where torch's mean divides by N·C (= {N * C} here)")
    elif mean and i == 1 and j != -1:
        parts.append(f"yours is the sum over the batch: torch's mean divides by N (= {N} here)")
    elif i == 1:
        parts.append(f"yours is N times torch's (N = {N}, the batch size)")
    elif i == -1 and j == -1:
        parts.append(f"you divide by every element, N·C (= {N * C}), where torch does not")
    elif i == -1:
        parts.append(f"you divide by the batch size N (= {N}) where torch does not")
    if mean and j == 1 and not (i == 1 and elementwise) and elementwise:
        parts.append(f"you divide by N only, where torch's mean divides by every element, N·C (C = {C})")
    elif j == 1 and not (mean and i == 1 and elementwise):
        parts.append(f"yours is C times torch's (C = {C} columns)")
    elif j == -1 and mean and not elementwise and i == 1:
        parts[-1:] = [f"you divide by C (= {C}) where torch's mean divides by N (= {N}): yours = N/C × torch's"]
    elif j == -1 and mean and not elementwise and i == 0:
        parts.append(f"you divide by every element, N·C, where torch's mean for {loss} divides by N only (C = {C})")
    elif j == -1 and i != -1:
        parts.append(f"you divide by C (= {C} columns) where torch does not")
    if l == 1:
        parts.append("an extra factor 2")
    elif l == -1:
        parts.append("half of torch's: a ½ torch does not have (e.g. ½(p − y)² in the loss), or the 2 of "
                     "d(p − y)²/dp = 2(p − y) left out")
    if s < 0:
        parts.append("and the sign is flipped")
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------
# Models of known mistakes, computed from the example's own inputs
# --------------------------------------------------------------------------------------------

def _dense_targets(ex: Example) -> np.ndarray:
    y = ex.inputs["y"]
    return np.eye(ex.C)[y] if y.dtype.kind in "iu" else y.astype(np.float64)


def _models(ops: UserOps, ex: Example) -> dict[str, np.ndarray]:
    """kind -> what the learner's op would return with that mistake (torch's reduction scaling
    kept, so a mistake with an extra factor still fits as ``k × model``)."""
    op = OPS[ex.op]
    params = ops.params_of(op)
    inputs = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in ex.inputs.items()}
    reduction = ex.kwargs.get("reduction", "mean")
    out: dict[str, np.ndarray] = {}
    with np.errstate(all="ignore"):
        if op.family == "activation":
            f, z = op.base, inputs["z"]
            if op.role == "forward":
                if f == "gelu" and params.get("approximate", "none") == "none":
                    out["gelu_tanh"] = reference_op("gelu", approximate="tanh")(z)
                if f in ("softmax", "log_softmax"):
                    out["softmax_axis0"] = reference_op(f)(z.T).T
                return out
            a, g = inputs["a"], inputs["g"]
            fwd, bwd = reference_op(f, **params), reference_op(f"{f}_backward", **params)
            if f == "softmax":
                out["softmax_s1s"] = a * (1 - a) * g
            elif f == "log_softmax":
                out["log_softmax_diagonal"] = (1 - np.exp(a)) * g
            else:
                out["derivative_at_output"] = bwd(a, fwd(a), g)
                out["derivative_twice"] = bwd(z, a, bwd(z, a, g))
            if f == "gelu" and params.get("approximate", "none") == "none":
                out["gelu_tanh"] = reference_op("gelu_backward", approximate="tanh")(z, a, g)
            out["derivative_left_out"] = g.copy()
            out["upstream_ignored"] = bwd(z, a, np.ones_like(g))
            return out
        if op.family == "dense":
            x, W, b = inputs["x"], inputs["W"], inputs["b"]
            if W.shape[0] != W.shape[1]:
                return out
            Wt = W.T if ops.layout == "out_in" else W  # the (out, in) weight
            if op.role == "forward":
                out["weight_transposed"] = x @ Wt + b
            elif ex.component == "dx":
                out["weight_transposed"] = inputs["g"] @ Wt.T
            elif ex.component == "dW":
                out["weight_transposed"] = ex.expected.T
            return out
        y = _dense_targets(ex)
        N, C = ex.N, ex.C
        if op.family == "loss":
            p = inputs["p"]
            if op.base == "cross_entropy":
                other = "binary_cross_entropy" + ("_grad" if op.role == "backward" else "")
                out["bce_as_categorical"] = np.asarray(reference_op(other)(p, y, reduction=reduction))
                if op.role == "backward":
                    out["fused_delta_as_loss_grad"] = (p - y) / (N if reduction == "mean" else 1)
            elif op.base == "binary_cross_entropy":
                other = "cross_entropy" + ("_grad" if op.role == "backward" else "")
                out["categorical_as_bce"] = np.asarray(reference_op(other)(p, y, reduction=reduction))
            return out
        z = inputs["z"]
        out_name, loss = op.base
        n = {"mean": N * C if loss == "binary_cross_entropy" else N, "sum": 1}[reduction]
        if (out_name, loss) == ("softmax", "cross_entropy"):
            s = reference_op("softmax")(z)
            if op.role == "forward":
                out["bce_as_categorical"] = np.asarray(reference_op("binary_cross_entropy")(s, y, reduction=reduction))
            else:
                out["derivative_again_on_fused_delta"] = s * (1 - s) * (s - y) / n
                out["ce_grad_through_s1s"] = -y * (1 - s) / n
                out["loss_grad_as_logit_grad"] = -y / s / n
                out["bce_as_categorical"] = reference_op("sigmoid_binary_cross_entropy_grad")(z, y, reduction=reduction)
        elif (out_name, loss) == ("sigmoid", "binary_cross_entropy") and op.role == "backward":
            s = reference_op("sigmoid")(z)
            out["derivative_again_on_fused_delta"] = s * (1 - s) * (s - y) / n
            out["categorical_as_bce"] = reference_op("softmax_cross_entropy_grad")(z, y, reduction=reduction)
        elif out_name == "log_softmax" and op.role == "backward":
            s = reference_op("softmax")(z)
            out["derivative_again_on_fused_delta"] = (1 - s) * (s - y) / n
    return out


def _fits(actual: np.ndarray, model: np.ndarray, k: float, ex: Example) -> np.ndarray:
    """Elementwise: does ``actual ≈ k·model`` to LOOSE × the example's tolerance?"""
    rtol, atol = ex.tol
    with np.errstate(all="ignore"):
        km = k * model
        return np.isfinite(actual) & (np.abs(actual - km) <= LOOSE * (atol + rtol * np.abs(km)))


def _least_squares(actual: np.ndarray, model: np.ndarray) -> float | None:
    ok = np.isfinite(actual) & np.isfinite(model)
    mm = float(np.sum(model[ok] ** 2))
    if not ok.all() or mm == 0.0:
        return None
    return float(np.sum(actual[ok] * model[ok]) / mm)


def _match(ops: UserOps, failing: list[Example]) -> tuple[str, tuple[int, int, int, int], int, int] | None:
    """The first (kind, factor) under which *every* failing example is ``k·model``; returns it with
    the count of matching elements and the total."""
    worst = max(failing, key=lambda e: e.tol_ratio)
    models_of = {id(ex): {"reference": ex.expected, **_models(ops, ex)} for ex in failing}
    for kind, model in models_of[id(worst)].items():
        k = _least_squares(worst.actual, model)
        if k is None:
            continue
        for expr in _exprs():
            if abs(_value(expr, worst.N, worst.C) - k) > 1e-3 * abs(k):
                continue
            if kind == "reference" and expr == (1, 0, 0, 0):
                continue
            hits = [_fits(ex.actual, models_of[id(ex)][kind], _value(expr, ex.N, ex.C), ex)
                    for ex in failing if kind in models_of[id(ex)]]
            if len(hits) == len(failing) and all(h.all() for h in hits):
                return kind, expr, sum(int(h.sum()) for h in hits), sum(h.size for h in hits)
    return None


# --------------------------------------------------------------------------------------------
# Finite differences of the learner's own loss
# --------------------------------------------------------------------------------------------

def _fd_verdict(ops: UserOps, ex: Example) -> tuple[str, bool | None]:
    """(sentence, whether the learner's gradient is the derivative of their own loss)."""
    op = OPS[ex.op]
    if op.role != "backward" or op.family not in ("loss", "fused") or op.partner not in ops.functions:
        return "", None
    loss = ops.functions[op.partner]
    first, rest = list(ex.inputs)[0], list(ex.inputs)[1:]
    x = ex.inputs[first].astype(np.float64)
    fd = np.zeros_like(x)
    try:
        for idx in np.ndindex(x.shape):  # one perturbation per element: the function is a black box
            h = 1e-6 * max(1.0, abs(x[idx]))
            values = []
            for sign in (1, -1):
                xs = x.copy()
                xs[idx] += sign * h
                value, _ = call_user(loss, {first: xs, **{k: ex.inputs[k] for k in rest}}, ex.kwargs)
                values.append(float(value))
            fd[idx] = (values[0] - values[1]) / (2 * h)
    except Exception as exc:  # noqa: BLE001
        return f"(finite differences of your {op.partner} raised {type(exc).__name__})", None
    scale = max(1e-12, float(np.max(np.abs(ex.expected))))
    if np.all(np.isfinite(ex.actual)) and np.max(np.abs(fd - ex.actual)) <= 1e-5 * max(scale, np.max(np.abs(fd))):
        return (f"your gradient is the exact derivative of your own {op.partner} (finite differences agree), so "
                f"the error is already in your loss value", True)
    if np.max(np.abs(fd - ex.expected)) <= 1e-5 * scale:
        return (f"finite differences of your own {op.partner} agree with torch's gradient: your loss is right, "
                f"your gradient is not", False)
    return f"finite differences of your own {op.partner} agree with neither", False


# --------------------------------------------------------------------------------------------
# Reproducer
# --------------------------------------------------------------------------------------------

def _array(arr: np.ndarray) -> str:
    text = np.array2string(np.asarray(arr), separator=", ", floatmode="unique", max_line_width=110,
                           threshold=sys.maxsize, suppress_small=False)
    dtype = {np.dtype(np.float32): ", dtype=np.float32"}.get(np.asarray(arr).dtype, "")
    if np.asarray(arr).dtype.kind in "iu":
        dtype = ""
    return f"np.array({text}{dtype})"


def reproducer(ex: Example) -> str:
    """Paste-able: the inputs, torch's output and yours, and the assertion that fails."""
    lines = [f"# {ex.op} — {ex.check}: N = {ex.N}, C = {ex.C}"]
    lines += [f"{k} = {_array(v)}" for k, v in ex.inputs.items()]
    call = f"{ex.op}({', '.join(ex.inputs)}{''.join(f', {k}={v!r}' for k, v in ex.kwargs.items())})"
    if ex.component:
        call += f"[{('dx', 'dW', 'db').index(ex.component)}]  # {ex.component}"
    lines.append(f"expected = {_array(ex.expected)}  # torch")
    lines.append(f"yours = {_array(ex.actual) if ex.actual is not None else ex.error}")
    lines.append(f"np.testing.assert_allclose({call.split('  #')[0]}, expected, "
                 f"rtol={ex.tol[0]!r}, atol={ex.tol[1]!r})")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Diagnosis
# --------------------------------------------------------------------------------------------

def _plainest(ex: Example) -> tuple[bool, int, bool]:
    """The reproducer: the smallest example, without extreme inputs where there is one, and where
    torch's answer is not all zeros (a wrong nonzero against a right zero convinces less)."""
    return ex.large, ex.size, not np.any(ex.expected)


def _right(op_name: str) -> str:
    op = OPS[op_name]
    base = "_".join(op.base) if isinstance(op.base, tuple) else op.base
    return RIGHT.get(base, f"torch's {base} (scratchnet_reference.byo.reference_ops.reference_op({op_name!r}))")


def _what(kind: str, op_name: str, **fill: Any) -> str:
    op = OPS[op_name]
    act = op.base if op.family == "activation" else ""
    return MISTAKES[kind][0].format(act=act, large=LARGE, loose=LOOSE, **fill)


def _count(exs: list[Example]) -> str:
    return f"{len(exs)} example{'s' if len(exs) > 1 else ''}"


def _diagnose_group(ops: UserOps, name: str, exs: list[Example]) -> list[Finding]:
    failing = [e for e in exs if e.failed]
    if not failing:
        return []
    findings = []
    checks = tuple(dict.fromkeys(e.check for e in failing))
    label = name + (f" ({failing[0].component})" if failing[0].component else "")
    raised = [e for e in failing if e.error]
    if raised:
        smallest = min(raised, key=_plainest)
        findings.append(Finding(label, "raised", _what("raised", name, error=raised[0].error),
                                f"on {_count(raised)} of {len(exs)}", _right(name), reproducer=reproducer(smallest),
                                checks=checks))
        failing = [e for e in failing if not e.error]
    nonfinite = [e for e in failing if not np.all(np.isfinite(e.actual)) and np.all(np.isfinite(e.expected))]
    small = [e for e in exs if not e.large and not e.error]
    if nonfinite and all(e.large for e in nonfinite) and all(np.all(np.isfinite(e.actual)) for e in small):
        smallest = min(nonfinite, key=_plainest)
        bad = sum(int((~np.isfinite(e.actual)).sum()) for e in nonfinite)
        findings.append(Finding(label, "overflow", _what("overflow", name),
                                f"NaN/inf in {bad} elements of {_count(nonfinite)}, every one with |input| > "
                                f"{LARGE:g}; finite on all {len(small)} examples without large inputs", _right(name),
                                reproducer=reproducer(smallest), checks=checks))
        failing = [e for e in failing if e not in nonfinite]
    if failing and all(e.large for e in failing) and small and not any(e.failed for e in small):
        findings.append(Finding(label, "large_inputs", _what("large_inputs", name),
                                f"{_count(failing)} with |input| > {LARGE:g} fail (worst tol_ratio "
                                f"{max(e.tol_ratio for e in failing):.3g}); all {len(small)} without pass",
                                _right(name), reproducer=reproducer(min(failing, key=_plainest)),
                                checks=checks))
        failing = []
    if failing and all(e.kinks is not None for e in failing) and \
            all(np.all(e.kinks[e.ratios > 1]) for e in failing if e.ratios.shape == e.kinks.shape):
        ex = max(failing, key=lambda e: e.tol_ratio)
        at = np.argwhere((ex.ratios > 1) & ex.kinks)[0]
        is_loss = OPS[name].base == "l1"  # the loss gradient itself; an activation's: per unit of g
        g = 1.0 if is_loss else ex.inputs["g"][tuple(at)]
        yours, torch_ = ex.actual[tuple(at)] / g, ex.expected[tuple(at)] / g
        where = "p = y" if is_loss else "z = 0"
        n_bad = sum(int((e.ratios > 1).sum()) for e in failing)
        findings.append(Finding(label, "kink", _what("kink", name, where=where, yours=f"{yours:.6g}",
                                                     what="gradient" if is_loss else "derivative",
                                                     torch=f"{torch_:.6g}"),
                                f"{n_bad} wrong elements in {_count(failing)}, every one at exactly {where}; "
                                f"everything off the kink agrees", _right(name),
                                reproducer=reproducer(min(failing, key=_plainest)), checks=checks))
        failing = []
    if not failing:
        return findings
    worst = max(failing, key=lambda e: e.tol_ratio)
    fd_text, consistent = _fd_verdict(ops, worst)
    matched = _match(ops, failing)
    reduction = worst.kwargs.get("reduction", "mean")
    if matched is None:
        if worst.tol_ratio <= LOOSE:
            kind, what = "marginal", _what("marginal", name, ratio=worst.tol_ratio)
        else:
            kind, what = "unrecognised", _what("unrecognised", name)
        idx = np.unravel_index(int(np.argmax(worst.ratios)), worst.ratios.shape)
        evidence = (f"{sum(int((e.ratios > 1).sum()) for e in failing)} wrong elements in {_count(failing)} of "
                    f"{len(exs)}; worst at {tuple(int(i) for i in idx)}: yours {float(worst.actual[idx])!r}, torch's "
                    f"{float(worst.expected[idx])!r} (tol_ratio {worst.tol_ratio:.3g})")
        findings.append(Finding(label, kind, what, "; ".join(filter(None, (evidence, fd_text))), _right(name),
                                reproducer=reproducer(min(failing, key=_plainest)), checks=checks))
        return findings
    kind, expr, hits, total = matched
    k_name = name_factor(expr)
    base = OPS[name].base
    if kind == "reference":
        kind = "sign" if expr == (-1, 0, 0, 0) else "factor"
        what = MISTAKES["sign"][0] if kind == "sign" else \
            f"yours = {k_name} × torch's: {_factor_words(expr, base, reduction, worst)}"
        formula = f"{k_name} × torch's"
    else:
        what = _what(kind, name)
        if expr != (1, 0, 0, 0):
            what += f"; and yours = {k_name} × that: {_factor_words(expr, base, reduction, worst)}"
        formula = MISTAKES[kind][2] + ("" if expr == (1, 0, 0, 0) else f" × {k_name}")
    output = {"backward": "dL/dz" if OPS[name].family != "loss" else "dL/dp", "forward": "output"}[OPS[name].role]
    if OPS[name].family in ("loss", "fused") and OPS[name].role == "forward":
        output = "loss"
    if worst.component:
        output = worst.component
    evidence = (f"your {output} equals {formula} on {hits} of {total} elements "
                f"({_count(failing)} that fail, of {len(exs)})")
    right = MISTAKES[kind][1] or _right(name)
    # the smallest failing example this explanation covers
    smallest = min(failing, key=_plainest)
    findings.append(Finding(label, kind, what, "; ".join(filter(None, (evidence, fd_text))), right,
                            _value(expr, worst.N, worst.C), k_name, reproducer(smallest), checks, consistent))
    return findings


def diagnose(ops: UserOps, examples: dict[str, list[Example]]) -> list[Finding]:
    """The root causes behind every failing op, one or more per op (see the module docstring).

    Each output (``dense_backward``'s dx, dW, db) and each reduction is diagnosed on its own — an op
    that ignores ``reduction=`` is right for one and off by N for the other — and a finding that is
    the same for both reductions is reported once."""
    findings: list[Finding] = []
    for name, exs in examples.items():
        for key in dict.fromkeys((e.component, e.kwargs.get("reduction")) for e in exs):
            group = [e for e in exs if (e.component, e.kwargs.get("reduction")) == key]
            for found in _diagnose_group(ops, name, group):
                same = [f for f in findings if (f.op, f.kind, f.factor_name) == (found.op, found.kind,
                                                                               found.factor_name)]
                if same:
                    same[0].checks += found.checks
                    continue
                if key[1] == "sum" and any(f.op == found.op for f in findings):
                    found.op += " (reduction='sum')"
                findings.append(found)
    return _merge_loss_pairs(findings)


def _merge_loss_pairs(findings: list[Finding]) -> list[Finding]:
    """A loss and its gradient wrong by the same factor, the gradient being the exact derivative of
    the learner's loss, are one root cause (e.g. ½‖p − y‖²: both are ×½)."""
    by_op = {f.op: f for f in findings}
    merged = []
    for f in findings:
        op = OPS.get(f.op)
        loss = by_op.get(op.partner) if op is not None and op.role == "backward" else None
        if loss is not None and f.own_loss_consistent and \
                (loss.kind, loss.factor_name) == (f.kind, f.factor_name):
            loss.op = f"{loss.op} and {f.op}"
            loss.evidence += f"; {f.op}: {f.evidence}"
            continue
        merged.append(f)
    return merged


def render_findings(findings: list[Finding]) -> str:
    """Numbered root causes: where, what, evidence, the right formula, a reproducer."""
    blocks = []
    for i, f in enumerate(findings, 1):
        lines = [f"{i}. {f.op}: {f.what}", f"   fails in: {', '.join(dict.fromkeys(f.checks))}",
                 f"   evidence: {f.evidence}"]
        if f.right:
            lines.append(f"   right: {f.right}")
        if f.reproducer:
            lines.append("   reproducer:")
            lines += [f"     {line}" for line in f.reproducer.splitlines()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)

