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
   (the entries of :data:`~.catalogue.CATALOGUE` for the op's site, planted on the example's own
   inputs: softmax's ``s(1 − s)·g``, ``f'(a)`` for ``f'(z)``, a derivative applied twice or left
   out, ``p − y`` returned as ``∂L/∂p``, binary cross-entropy used as categorical, …).
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
from dataclasses import replace
from typing import Any

import numpy as np

from ..core.compare import central_differences, fd_verdict
from ..core.reference_ops import OPS, reference_op
from ..core.torch_import import torch_module
from .catalogue import BY_KEY, Site, mistakes_at
from .causes import RootCause
from .factors import EXPRESSIONS, LOOSE, expression_value, expression_words, fit_factor, name_expression
from .op_examples import LARGE, Example, UserOps, call_user

__all__ = ["diagnose", "PATTERNS"]

#: what is read off the numbers rather than modelled: kind -> (what is wrong, the right formula, evidence's name)
PATTERNS: dict[str, tuple[str, str, str]] = {
    "factor": ("off by a constant factor", "", "{k} × torch's"),
    "sign": ("the sign is flipped (y − p for p − y, or a minus sign too many or too few)", "", "−1 × torch's"),
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
#: the dense layer's right formula in a learner's other weight layout (``UserOps.layout == "in_out"``:
#: ``W`` stored (in, out), ``x W + b``); ``RIGHT["dense"]`` is the (out, in) one
DENSE_RIGHT_IN_OUT = "out = x W + b (W (in, out));  dx = g Wᵀ, dW = xᵀ g, db = Σ_rows g"


# --------------------------------------------------------------------------------------------
# Models of known mistakes, computed from the example's own inputs
# --------------------------------------------------------------------------------------------

def _dense_targets(ex: Example) -> np.ndarray:
    y = ex.inputs["y"]
    return np.eye(ex.C)[y] if y.dtype.kind in "iu" else y.astype(np.float64)


def _t(v: Any) -> Any:
    return None if v is None else torch_module().as_tensor(np.asarray(v, dtype=np.float64))


def _site(ops: UserOps, ex: Example) -> tuple[str, Site, dict[str, Any] | None, Any] | None:
    """The catalogue site of ``ex``'s op, what torch has there, and the activation / loss it is of."""
    op = OPS[ex.op]
    params = ops.params_of(op)
    inputs = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in ex.inputs.items()}
    reduction = ex.kwargs.get("reduction", "mean")
    if op.family == "activation":
        act = {"name": op.base, **params}
        z = inputs["z"]
        if op.role == "forward":
            return "activation_forward", Site(act=act, z=_t(z)), act, None
        return "activation_backward", Site(act=act, z=_t(z), a=_t(inputs["a"]), g=_t(inputs["g"])), act, None
    if op.family == "dense":
        x, W, b = inputs["x"], inputs["W"], inputs["b"]
        w = W if ops.layout == "out_in" else W.T  # the (out, in) weight, like torch.nn.Linear's
        site = {"forward": "dense_forward"}.get(op.role) or {"dx": "dense_dx", "dW": "dense_dW",
                                                            "db": "dense_db"}.get(ex.component)
        if site is None:
            return None
        return site, Site(x=_t(x), W=_t(w), b=_t(b), g=_t(inputs.get("g")), expected=_t(ex.expected)), None, None
    y = _dense_targets(ex)
    N, C = ex.N, ex.C
    if op.family == "loss":
        n = {"mean": N * C if op.base != "cross_entropy" else N, "sum": 1}[reduction]
        site = "loss_value" if op.role == "forward" else "loss_gradient"
        return site, Site(p=_t(inputs["p"]), y=_t(y), n=n, reduction=reduction), None, op.base
    out_name, loss = op.base
    n = {"mean": N * C if loss == "binary_cross_entropy" else N, "sum": 1}[reduction]
    z = inputs["z"]
    act = {"name": out_name}
    a = reference_op(out_name)(z)
    delta = reference_op(f"{out_name}_{loss}_grad")(z, y, reduction=reduction)
    site = "fused_value" if op.role == "forward" else "fused_gradient"
    return site, Site(act=act, z=_t(z), a=_t(a), y=_t(y), delta=_t(delta), n=n, reduction=reduction), act, op.base


def _models(ops: UserOps, ex: Example) -> dict[str, np.ndarray]:
    """kind -> what the learner's op would return with that mistake (the catalogue's plant at the
    op's site, on the example's own inputs; torch's reduction scaling kept, so a mistake with an
    extra factor still fits as ``k × model``)."""
    found = _site(ops, ex)
    if found is None:
        return {}
    site, where, act, loss = found
    out: dict[str, np.ndarray] = {}
    with np.errstate(all="ignore"):
        for mistake in mistakes_at(site, act, loss):
            model = mistake.plant(site, where)
            if model is None:
                continue
            model = np.asarray(model.detach().numpy() if hasattr(model, "detach") else model, dtype=np.float64)
            if model.shape == np.shape(ex.expected):  # a mistake of another shape (a bias summed over no
                out[mistake.key] = model              # axis) is the network walk's; here shapes are refused
    return out


def _fits(actual: np.ndarray, model: np.ndarray, k: float, ex: Example) -> np.ndarray:
    """Elementwise: does ``actual ≈ k·model`` to LOOSE × the example's tolerance?"""
    rtol, atol = ex.tol
    with np.errstate(all="ignore"):
        km = k * model
        return np.isfinite(actual) & (np.abs(actual - km) <= LOOSE * (atol + rtol * np.abs(km)))


def _match(ops: UserOps, failing: list[Example]) -> tuple[str, tuple[int, int, int, int], int, int] | None:
    """The first (kind, factor) under which *every* failing example is ``k·model``; returns it with
    the count of matching elements and the total."""
    worst = max(failing, key=lambda e: e.tol_ratio)
    models_of = {id(ex): {"reference": ex.expected, **_models(ops, ex)} for ex in failing}
    for kind, model in models_of[id(worst)].items():
        k = fit_factor(worst.actual, model)
        if k is None:
            continue
        for expr in EXPRESSIONS:
            if abs(expression_value(expr, worst.N, worst.C) - k) > 1e-3 * abs(k):
                continue
            if kind == "reference" and expr == (1, 0, 0, 0):
                continue
            hits = [_fits(ex.actual, models_of[id(ex)][kind], expression_value(expr, ex.N, ex.C), ex)
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

    def value(x: np.ndarray) -> float:
        return float(call_user(loss, {first: x, **{k: ex.inputs[k] for k in rest}}, ex.kwargs)[0])

    try:
        fd = central_differences(value, ex.inputs[first])
    except Exception as exc:  # noqa: BLE001
        return f"(finite differences of your {op.partner} raised {type(exc).__name__})", None
    # 1e-5 of the gradient's scale: central differences with h = 1e-6 in float64 are good to ~1e-8
    scale = max(1e-12, float(np.max(np.abs(ex.expected))), float(np.max(np.abs(fd), initial=0.0)))
    verdict = fd_verdict(fd, ex.actual, ex.expected, 0.0, 1e-5 * scale)
    if verdict in ("impl", "both"):
        return (f"your gradient is the exact derivative of your own {op.partner} (finite differences agree), so "
                f"the error is already in your loss value", True)
    if verdict == "torch":
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


def _right(op_name: str, layout: str = "out_in") -> str:
    """The right formula of ``op_name``; a dense op's in the learner's weight ``layout``."""
    op = OPS[op_name]
    base = "_".join(op.base) if isinstance(op.base, tuple) else op.base
    if base == "dense" and layout == "in_out":
        return DENSE_RIGHT_IN_OUT
    return RIGHT.get(base, f"torch's {base} (scratchnet_reference.core.reference_ops.reference_op({op_name!r}))")


def _act_of(op_name: str) -> str:
    """The activation an op is of: its own, a fused pair's output activation, or none."""
    op = OPS[op_name]
    return op.base if op.family == "activation" else op.base[0] if op.family == "fused" else ""


def _what(kind: str, op_name: str, **fill: Any) -> str:
    act = _act_of(op_name)
    if kind in BY_KEY:
        return BY_KEY[kind].what(act)
    return PATTERNS[kind][0].format(act=act, large=LARGE, loose=LOOSE, **fill)


def _cause(op: str, kind: str, what: str, evidence: str, right: str, reproducer: str = "",
           checks: tuple[str, ...] = (), factor: float = 1.0, factor_name: str = "1",
           own_loss_consistent: bool | None = None) -> RootCause:
    """An op-level root cause: the learner's ``op`` (with the output it concerns) is its place."""
    return RootCause(kind, what, evidence, right, reproducer, op=op, checks=checks, factor=factor,
                     factor_name=factor_name, own_loss_consistent=own_loss_consistent)


def _count(exs: list[Example]) -> str:
    return f"{len(exs)} example{'s' if len(exs) > 1 else ''}"


def _diagnose_group(ops: UserOps, name: str, exs: list[Example]) -> list[RootCause]:
    failing = [e for e in exs if e.failed]
    if not failing:
        return []
    findings = []
    checks = tuple(dict.fromkeys(e.check for e in failing))
    label = name + (f" ({failing[0].component})" if failing[0].component else "")
    right_formula = _right(name, ops.layout)  # in the learner's weight layout for a dense op
    raised = [e for e in failing if e.error]
    if raised:
        smallest = min(raised, key=_plainest)
        findings.append(_cause(label, "raised", _what("raised", name, error=raised[0].error),
                                f"on {_count(raised)} of {len(exs)}", right_formula, reproducer=reproducer(smallest),
                                checks=checks))
        failing = [e for e in failing if not e.error]
    nonfinite = [e for e in failing if not np.all(np.isfinite(e.actual)) and np.all(np.isfinite(e.expected))]
    small = [e for e in exs if not e.large and not e.error]
    if nonfinite and all(e.large for e in nonfinite) and all(np.all(np.isfinite(e.actual)) for e in small):
        smallest = min(nonfinite, key=_plainest)
        bad = sum(int((~np.isfinite(e.actual)).sum()) for e in nonfinite)
        findings.append(_cause(label, "overflow", _what("overflow", name),
                                f"NaN/inf in {bad} elements of {_count(nonfinite)}, every one with |input| > "
                                f"{LARGE:g}; finite on all {len(small)} examples without large inputs", right_formula,
                                reproducer=reproducer(smallest), checks=checks))
        failing = [e for e in failing if e not in nonfinite]
    if failing and all(e.large for e in failing) and small and not any(e.failed for e in small):
        findings.append(_cause(label, "large_inputs", _what("large_inputs", name),
                                f"{_count(failing)} with |input| > {LARGE:g} fail (worst tol_ratio "
                                f"{max(e.tol_ratio for e in failing):.3g}); all {len(small)} without pass",
                                right_formula, reproducer=reproducer(min(failing, key=_plainest)),
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
        findings.append(_cause(label, "kink", _what("kink", name, where=where, yours=f"{yours:.6g}",
                                                     what="gradient" if is_loss else "derivative",
                                                     torch=f"{torch_:.6g}"),
                                f"{n_bad} wrong elements in {_count(failing)}, every one at exactly {where}; "
                                f"everything off the kink agrees", right_formula,
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
        findings.append(_cause(label, kind, what, "; ".join(filter(None, (evidence, fd_text))), right_formula,
                                reproducer=reproducer(min(failing, key=_plainest)), checks=checks))
        return findings
    kind, expr, hits, total = matched
    k_name = name_expression(expr)
    base = OPS[name].base
    if kind == "reference":
        kind = "sign" if expr == (-1, 0, 0, 0) else "factor"
        what = PATTERNS["sign"][0] if kind == "sign" else \
            f"yours = {k_name} × torch's: {expression_words(expr, base, reduction, worst.N, worst.C)}"
        formula = f"{k_name} × torch's"
    else:
        what = _what(kind, name)
        if expr != (1, 0, 0, 0):
            what += f"; and yours = {k_name} × that: {expression_words(expr, base, reduction, worst.N, worst.C)}"
        formula = BY_KEY[kind].model + ("" if expr == (1, 0, 0, 0) else f" × {k_name}")
    output = {"backward": "dL/dz" if OPS[name].family != "loss" else "dL/dp", "forward": "output"}[OPS[name].role]
    if OPS[name].family in ("loss", "fused") and OPS[name].role == "forward":
        output = "loss"
    if worst.component:
        output = worst.component
    evidence = (f"your {output} equals {formula} on {hits} of {total} elements "
                f"({_count(failing)} that fail, of {len(exs)})")
    right = (BY_KEY[kind].right_for(_act_of(name)) if kind in BY_KEY else "") or right_formula
    # the smallest failing example this explanation covers
    smallest = min(failing, key=_plainest)
    findings.append(_cause(label, kind, what, "; ".join(filter(None, (evidence, fd_text))), right,
                            reproducer(smallest), checks, expression_value(expr, worst.N, worst.C), k_name,
                            consistent))
    return findings


def diagnose(ops: UserOps, examples: dict[str, list[Example]]) -> list[RootCause]:
    """The root causes behind every failing op, one or more per op (see the module docstring).

    Each output (``dense_backward``'s dx, dW, db) and each reduction is diagnosed on its own — an op
    that ignores ``reduction=`` is right for one and off by N for the other — and a finding that is
    the same for both reductions is reported once."""
    findings: list[RootCause] = []
    for name, exs in examples.items():
        for key in dict.fromkeys((e.component, e.kwargs.get("reduction")) for e in exs):
            group = [e for e in exs if (e.component, e.kwargs.get("reduction")) == key]
            for found in _diagnose_group(ops, name, group):
                same = [i for i, f in enumerate(findings)
                        if (f.op, f.kind, f.factor_name) == (found.op, found.kind, found.factor_name)]
                if same:
                    findings[same[0]] = replace(findings[same[0]], checks=findings[same[0]].checks + found.checks)
                    continue
                if key[1] == "sum" and any(f.op == found.op for f in findings):
                    found = replace(found, op=found.op + " (reduction='sum')")
                findings.append(found)
    return _merge_loss_pairs(findings)


def _merge_loss_pairs(findings: list[RootCause]) -> list[RootCause]:
    """A loss and its gradient wrong by the same factor, the gradient being the exact derivative of
    the learner's loss, are one root cause (e.g. ½‖p − y‖²: both are ×½)."""
    by_op = {f.op: i for i, f in enumerate(findings)}
    merged = list(findings)
    dropped = set()
    for i, f in enumerate(findings):
        op = OPS.get(f.op)
        j = by_op.get(op.partner) if op is not None and op.role == "backward" else None
        if j is not None and f.own_loss_consistent and \
                (merged[j].kind, merged[j].factor_name) == (f.kind, f.factor_name):
            merged[j] = replace(merged[j], op=f"{merged[j].op} and {f.op}",
                                evidence=f"{merged[j].evidence}; {f.op}: {f.evidence}")
            dropped.add(i)
    return [f for i, f in enumerate(merged) if i not in dropped]
