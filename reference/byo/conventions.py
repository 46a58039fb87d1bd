"""A learner's function, as they wrote it, turned into the suite's op — and what was assumed to do so.

:mod:`.learner_names` says which op a name claims (``sigmoid_prime`` → ``sigmoid_backward``); this
module lines up the arguments and results with the op's signature (:mod:`.reference_ops`) by
*probing*: the function is called on a small batch (N = 3, C = 4) under each reading its signature
allows, and the reading whose result agrees with torch is taken. Where none agrees (the function
has a bug — the reason the learner is here) the reading is chosen from the argument names, then a
stated default, and the diagnosis names the mistake under that reading. Every reading is stated
(:attr:`Adapted.assumed`) before any result, with how it was decided (probed, declared, by name).

The readings (``g = dL/da`` the upstream gradient, ``a = f(z)``):

=====================================  ====================================================
your function                          checked as
=====================================  ====================================================
``f_prime(x)`` elementwise             ``f_backward(z, a, g) = g ⊙ f_prime(z or a)``
``softmax_derivative(s)`` → (N, C, C)  ``dL/dz_n = g_n · J_n`` (``J_n[i, j] = ∂a_i/∂z_j``)
``softmax_derivative(s)`` → (C, C)     the same, one sample at a time (``s`` a row or a column)
``f_backward(dout, cache)``            ``cache`` from your ``f_forward(z) -> (out, cache)``,
                                       else ``z`` or ``a`` (``relu_backward(dA, Z)``)
``f_forward(x) -> (out, cache)``       ``f(z) = out``
``loss(y, p)`` / ``loss(p, y)``        the order probed (or from names like ``y_true``)
``softmax_loss(x, y) -> (loss, dx)``   ``softmax_cross_entropy`` and its ``_grad``
``affine_forward(x, w, b) -> (out,     ``dense_forward``; ``w`` as ``(in, out)`` or ``(out, in)``,
cache)``                               probed
``affine_backward(dout, cache)``       ``dense_backward(x, W, b, g)`` with your forward's cache
=====================================  ====================================================

Declarations (beside the functions): ``DERIVATIVE_OF = "z" | "a" | {name: "z" | "a"}`` fixes
what an elementwise derivative takes instead of probing.

Every call made here gets copies of the arrays (:func:`.op_examples.call_user`); an exception
raised by the learner's function while probing rules that reading out, never the load — and when
no reading is left, the refusal quotes what it raised (:func:`.op_examples.raised_words`).
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.reference_ops import OPS, Op, reference_op
from ..diagnosis.op_examples import CLASSIFICATION_LOSSES, call_user, raised_words
from .learner_names import Reading

__all__ = ["Adapted", "adapt", "Probe", "ARGUMENT_OF"]

#: what an elementwise derivative may take
ARGUMENT_OF = ("z", "a")
_Z_NAMES = {"z", "x", "zs", "logits", "logit", "inputs", "input", "pre", "preactivation", "net", "h_in", "scores",
            "u", "v"}
_A_NAMES = {"a", "s", "out", "output", "outputs", "activation", "activations", "sig", "sm", "softmax", "probs", "p",
            "y", "h", "fx", "f", "sigmoid", "o", "act", "t", "tanh", "al"}
_Y_NAMES = {"y", "y_true", "ytrue", "target", "targets", "label", "labels", "truth", "t", "y_train", "expected",
            "desired", "gt", "one_hot", "onehot", "y_onehot", "actual", "true"}
_G_NAMES = {"g", "dout", "grad", "grad_output", "upstream", "delta", "d_out", "dy", "da", "dl_da", "dldy", "dldа",
            "dvalues", "dz_next", "dh", "grad_out", "error", "err", "d"}
_CACHE_NAMES = {"cache", "activation_cache", "linear_cache", "ctx", "saved"}
_TOL = (1e-6, 1e-9)  # rtol, atol: the probe tells readings apart; a float64 reading agrees to ~1e-15


@dataclass
class Adapted:
    """The learner's ``source`` function read as op ``op``: ``fn`` has the op's signature,
    ``assumed`` says how (empty when the function has the op's own name and signature), ``code``
    defines the op from the learner's function (it opens each reproducer), ``targets`` and
    ``layout`` what the probe found for a loss or a dense layer."""

    op: str
    fn: Callable[..., Any]
    source: str
    assumed: str = ""
    code: str = ""
    targets: tuple[str, ...] | None = None
    layout: str | None = None


@dataclass
class Probe:
    """The small batch every reading is tried on, and what the learner declared."""

    params: Mapping[str, Mapping[str, Any]]
    declared_of: Any = None           # DERIVATIVE_OF
    declared_targets: Mapping[str, tuple[str, ...]] | None = None
    declared_layout: str | None = None
    N: int = 3
    C: int = 4

    def __post_init__(self) -> None:
        rng = np.random.default_rng(1)
        self.z = rng.uniform(-2, 2, (self.N, self.C))
        self.z[np.abs(self.z) < 0.1] = 0.5  # away from kinks: the probe reads conventions, not subgradients
        self.g = rng.uniform(0.25, 2, (self.N, self.C)) * rng.choice((-1, 1), (self.N, self.C))
        self.labels = np.array([1, 3, 0])[: self.N] % self.C

    def params_of(self, base: str) -> dict[str, Any]:
        return dict(self.params.get(base, {}))


# --------------------------------------------------------------------------------------------

def _parameters(fn: Callable[..., Any]) -> list[str] | None:
    """The positional parameters without a default, or None without a signature (a builtin)."""
    try:
        ps = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    return [p.name for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]


#: runs a probe elsewhere (:class:`.isolated_ops.Prober`: in a killable worker); None: in this process
PROBER: contextvars.ContextVar[Any] = contextvars.ContextVar("scratchnet_prober", default=None)


@dataclass(frozen=True)
class _Raised:
    """The answer of a probe on which the learner's function raised: what it raised, in words
    (a value, so it comes back from the prober's worker)."""

    words: str


#: what the learner's functions raised while :func:`adapt` read one of them (distinct, in order)
_RAISED: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("scratchnet_raised", default=None)


def _try(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on copies, or None when it raises (a reading it does not take; what it raised
    is kept for the refusal, should no reading be left)."""
    prober = PROBER.get()
    out = prober(_try_here, fn, args) if prober is not None else _try_here(fn, *args)
    if isinstance(out, _Raised):
        raised = _RAISED.get()
        if raised is not None and out.words not in raised:
            raised.append(out.words)
        return None
    return out


def _try_here(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        out, _ = call_user(fn, {str(i): np.asarray(a) for i, a in enumerate(args)}, {})
    except Exception as exc:  # noqa: BLE001 - the learner's function raising rules this reading out
        return _Raised(raised_words(exc))
    return out


def _agrees(got: Any, want: Any) -> bool:
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    want = np.asarray(want, dtype=np.float64)
    return got.shape == want.shape and bool(np.all(np.isfinite(got))) and \
        bool(np.allclose(got, want, rtol=_TOL[0], atol=_TOL[1] * max(1.0, float(np.abs(want).max(initial=0)))))


def _pair(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2


def _named(names: list[str], index: int, group: set[str]) -> bool:
    return len(names) > index and names[index].lower() in group


# --------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------

def _jacobian_form(fn: Callable[..., Any], x: np.ndarray) -> str | None:
    """How ``fn`` answers for a batch ``x`` (N, C): ``elementwise`` (N, C), ``batch`` (N, C, C)
    Jacobians, ``sample`` / ``column`` a (C, C) Jacobian for one row given as a vector / column."""
    N, C = x.shape
    out = _try(fn, x)
    shape = np.shape(out) if out is not None and not isinstance(out, (tuple, list, dict)) else None
    if shape == (N, C):
        return "elementwise"
    if shape == (N, C, C):
        return "batch"
    for form, row in (("sample", x[0]), ("column", x[0][:, None])):
        one = _try(fn, row)
        if one is not None and np.shape(one) == (C, C):
            return form
    return None


def _from_derivative(fn: Callable[..., Any], form: str, of: str) -> Callable[..., Any]:
    """``op_backward(z, a, g)`` from a derivative of ``of`` in ``form`` (see :func:`_jacobian_form`).

    The per-sample forms call the learner's function once per row: that loop is theirs (a
    function of one sample), not the suite's numerics."""
    def pick(z, a):
        return z if of == "z" else a

    if form == "elementwise":
        return lambda z, a, g: g * np.asarray(fn(pick(z, a)))
    if form == "batch":
        return lambda z, a, g: np.einsum("nij,ni->nj", np.asarray(fn(pick(z, a))), g)
    column = form == "column"
    return lambda z, a, g: np.stack([g_n @ np.asarray(fn(x_n[:, None] if column else x_n))
                                     for x_n, g_n in zip(pick(z, a), g)])


_FORM_WORDS = {"elementwise": "elementwise", "batch": "a C×C Jacobian per sample, for the batch (N, C, C)",
               "sample": "a C×C Jacobian of one sample (a row)", "column": "a C×C Jacobian of one sample (a column)"}
_FORM_CODE = {"elementwise": "g * {f}({x})", "batch": "np.einsum('nij,ni->nj', {f}({x}), g)",
              "sample": "np.stack([g_n @ {f}(x_n) for x_n, g_n in zip({x}, g)])",
              "column": "np.stack([g_n @ {f}(x_n[:, None]) for x_n, g_n in zip({x}, g)])"}


def _declared_of(probe: Probe, name: str) -> str | None:
    d = probe.declared_of
    return d.get(name) if isinstance(d, Mapping) else d


def _activation_backward(name: str, fn: Callable[..., Any], op: Op, probe: Probe,
                         siblings: Mapping[str, tuple[Reading, Callable[..., Any]]]) -> list[Adapted]:
    params = probe.params_of(op.base)
    z, g = probe.z, probe.g
    a = reference_op(op.base, **params)(z)
    want = reference_op(op.name, **params)(z, a, g)
    names = _parameters(fn)
    if names is None or len(names) >= 3:
        said = "" if name == op.name else f"{name}{_signature(fn)} read as {op.name}(z, a, g)"
        return [Adapted(op.name, fn, name, said, "" if name == op.name else f"{op.name} = {name}")]
    if len(names) == 1:
        return [_one_argument_derivative(name, fn, op, probe, z, a, g, want, names[0])]
    return [_dout_cache(name, fn, op, probe, z, a, g, want, names, siblings)]


def _one_argument_derivative(name, fn, op, probe, z, a, g, want, arg) -> Adapted:
    declared = _declared_of(probe, name)
    tried = {}
    for of in ((declared,) if declared else ARGUMENT_OF):
        form = _jacobian_form(fn, z if of == "z" else a)
        if form is not None:
            wrapped = _from_derivative(fn, form, of)
            tried[of] = (form, wrapped, _agrees(_try(wrapped, z, a, g), want))
    if not tried:
        raise ValueError(f"{name}{_signature(fn)} claims to be {op.base}'s derivative but answers neither a batch "
                         f"(N, C) with (N, C) or (N, C, C) nor one sample (C,) with a (C, C) Jacobian")
    agreeing = [of for of, (_, _, ok) in tried.items() if ok]
    a_word = f"a = {op.base}(z)"
    if declared:
        of, how = declared, "declared in DERIVATIVE_OF"
    elif len(agreeing) == 1:
        of, how = agreeing[0], f"probed: it agrees with torch taking {'z' if agreeing[0] == 'z' else 'a'}" + \
            (", not the other" if len(tried) == 2 else "")
    elif len(agreeing) == 2:
        of = "a" if arg.lower() in _A_NAMES else "z"
        how = f"probed: either reading agrees here ({op.base}'(z) and {op.base}'(a) coincide); '{arg}' read as {of}"
    else:
        of = ("a" if arg.lower() in _A_NAMES else "z" if arg.lower() in _Z_NAMES
              else "a" if op.base in ("softmax", "log_softmax") else "z")
        of = of if of in tried else next(iter(tried))
        how = f"from its argument name '{arg}'; neither reading agrees with torch — see the root causes"
    form, wrapped, _ = tried[of]
    x = "z" if of == "z" else "a"
    said = (f"{name}({arg}): {_FORM_WORDS[form]}, of {'z (the pre-activation)' if of == 'z' else a_word} ({how}); "
            f"checked as {op.name}(z, a, g) = {_FORM_CODE[form].format(f=name, x=x)}")
    return Adapted(op.name, wrapped, name, said, f"{op.name} = lambda z, a, g: {_FORM_CODE[form].format(f=name, x=x)}")


def _forward_with_cache(op_name: str, siblings: Mapping[str, tuple[Reading, Callable[..., Any]]],
                        *args: np.ndarray) -> tuple[str, Callable[..., Any]] | None:
    """The learner's forward for ``op_name`` that returns ``(out, cache)``: (its name, it)."""
    for reading, fn in siblings.values():
        if reading.op == op_name and _pair(_try(fn, *args)):
            return reading.name, fn
    return None


def _dout_cache(name, fn, op, probe, z, a, g, want, names, siblings) -> Adapted:
    forward = _forward_with_cache(op.base, siblings, z)
    cache_first = _named(names, 0, _CACHE_NAMES) or (_named(names, 1, _G_NAMES) and not _named(names, 0, _G_NAMES))
    if forward is not None:
        fwd_name, fwd = forward
        order = "cache, dout" if cache_first else "dout, cache"
        call = f"{name}({fwd_name}(z)[1], g)" if cache_first else f"{name}(g, {fwd_name}(z)[1])"
        wrapped = (lambda z, a, g: fn(fwd(z)[1], g)) if cache_first else (lambda z, a, g: fn(g, fwd(z)[1]))
        return Adapted(op.name, wrapped, name, f"{name}({', '.join(names)}): ({order}), the cache from your "
                       f"{fwd_name}(z); checked as {op.name}(z, a, g) = {call}", f"{op.name} = lambda z, a, g: {call}")
    readings = {("g", "z"): lambda z, a, g: fn(g, z), ("g", "a"): lambda z, a, g: fn(g, a),
                ("z", "g"): lambda z, a, g: fn(z, g), ("a", "g"): lambda z, a, g: fn(a, g)}
    agreeing = [k for k, w in readings.items() if _agrees(_try(w, z, a, g), want)]
    by_name = [k for k in readings if (k[0] == "g") != cache_first]
    if len(agreeing) >= 1:
        choice = next((k for k in agreeing if k in by_name), agreeing[0])
        how = "probed: it agrees with torch read so"
    else:
        second = names[1 if not cache_first else 0].lower()
        choice = next(k for k in by_name if ("a" in k) == (second in _A_NAMES))
        how = "from its argument names; no reading agrees with torch — see the root causes"
    call = f"{name}({', '.join(choice)})"
    return Adapted(op.name, readings[choice], name,
                   f"{name}({', '.join(names)}): read as ({', '.join(choice)}) ({how}); "
                   f"checked as {op.name}(z, a, g) = {call}", f"{op.name} = lambda z, a, g: {call}")


def _activation_forward(name: str, fn: Callable[..., Any], op: Op, probe: Probe) -> list[Adapted]:
    out = _try(fn, probe.z)
    if _pair(out) and np.shape(out[0]) == probe.z.shape:
        return [Adapted(op.name, lambda z: fn(z)[0], name, f"{name}{_signature(fn)} -> (out, cache): out checked as "
                        f"{op.name}(z)", f"{op.name} = lambda z: {name}(z)[0]")]
    said = "" if name == op.name else f"{name}{_signature(fn)} read as {op.name}(z)"
    return [Adapted(op.name, fn, name, said, "" if name == op.name else f"{op.name} = {name}")]


# --------------------------------------------------------------------------------------------
# Losses (a loss of p, or a fused pair of the logits z)
# --------------------------------------------------------------------------------------------

def _loss_inputs(op: Op, probe: Probe, form: str) -> tuple[np.ndarray, np.ndarray]:
    z, C = probe.z, probe.C
    loss = op.base[1] if op.family == "fused" else op.base
    if loss not in CLASSIFICATION_LOSSES:
        y = probe.g * 2
    elif form == "index":
        y = probe.labels.astype(np.int64)
    else:
        y = np.eye(C)[probe.labels]
    if op.family == "fused":
        return z, y
    domain = {"cross_entropy": "softmax", "nll": "log_softmax", "binary_cross_entropy": "sigmoid"}.get(loss)
    return (reference_op(domain)(z) if domain else z), y


def _targets_key(op: Op) -> str:
    return "_".join(op.base) if op.family == "fused" else op.base


def _loss(name: str, fn: Callable[..., Any], op: Op, probe: Probe) -> list[Adapted]:
    value_op = OPS[op.name if op.role == "forward" else op.partner]
    grad_op = OPS[value_op.partner]
    loss = op.base[1] if op.family == "fused" else op.base
    params = probe.params_of(loss)
    names = _parameters(fn) or ["p", "y"]
    declared = (probe.declared_targets or {}).get(_targets_key(op)) or (probe.declared_targets or {}).get(loss)
    forms = tuple(declared or (("one_hot", "index") if loss in CLASSIFICATION_LOSSES else ("real",)))
    y_first = _named(names, 0, _Y_NAMES) and not _named(names, 1, _Y_NAMES)
    # the order from the argument names only, never from agreeing: for an antisymmetric gradient
    # (mse's 2(p − y)) swapping the arguments *is* a sign flip, a mistake the probe must not read away
    orders = ("y, p",) if y_first else ("p, y",)
    kind = op.role
    results = {}
    for form in forms:
        p, y = _loss_inputs(op, probe, form)
        want_value = reference_op(value_op.name, **params)(p, y)
        want_grad = reference_op(grad_op.name, **params)(p, y)
        for order in orders:
            out = _try(fn, *((p, y) if order == "p, y" else (y, p)))
            if out is None:
                continue
            pair = _pair(out) and np.size(out[0]) == 1
            if pair:
                ok = _agrees(out[0], want_value) and _agrees(out[1], want_grad)
            else:
                ok = _agrees(out, want_value if kind == "forward" else want_grad)
            results[(form, order)] = (pair, ok)
    if not results:
        return [Adapted(op.name, fn, name, "" if name == op.name else f"{name} read as {op.signature}",
                        "" if name == op.name else f"{op.name} = {name}")]  # validation says why it fails
    agreeing = [k for k, (_, ok) in results.items() if ok]
    choice = agreeing[0] if agreeing else next(iter(results))
    form, order = choice
    pair = results[choice][0]
    how = ("the order from the argument names" if y_first else "the suite's order") + \
        ("; probed: it agrees with torch so" if agreeing else "; it does not agree with torch — see the root causes")
    x = "z" if op.family == "fused" else "p"
    first, second = ("y", x) if order == "y, p" else (x, "y")
    args = f"{x}, y" if order == "p, y" else f"y, {x}"
    target_words = "" if form == "real" else f", y as {'class indices' if form == 'index' else 'one-hot rows'}"
    targets = (form,) if form == "index" and not declared else None  # one-hot is the default already
    if pair:
        said = (f"{name}({', '.join(names)}) -> (loss, d{x}): ({first}, {second}){target_words} ({how}); checked as "
                f"{value_op.name} = {name}({args})[0] and {grad_op.name} = {name}({args})[1]")
        make = (lambda i: (lambda a, b: fn(a, b)[i])) if order == "p, y" else (lambda i: (lambda a, b: fn(b, a)[i]))
        return [Adapted(value_op.name, make(0), name, said, f"{value_op.name} = lambda {x}, y: {name}({args})[0]",
                        targets),
                Adapted(grad_op.name, make(1), name, "", f"{grad_op.name} = lambda {x}, y: {name}({args})[1]",
                        targets)]
    plain = name == op.name and order == "p, y" and not targets
    wrapped = fn if order == "p, y" else _swapped(fn)
    said = "" if plain else (f"{name}({', '.join(names)}): ({first}, {second}){target_words} ({how}); checked as "
                             f"{op.name}({x}, y) = {name}({args})")
    return [Adapted(op.name, wrapped, name, said, "" if plain else f"{op.name} = lambda {x}, y: {name}({args})",
                    targets)]


def _swapped(fn: Callable[..., Any]) -> Callable[..., Any]:
    def swapped(p, y, **kwargs):
        return fn(y, p, **kwargs)
    swapped.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("p", inspect.Parameter.POSITIONAL_OR_KEYWORD),
         inspect.Parameter("y", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [p for p in _kw_params(fn)])
    return swapped


def _kw_params(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    try:
        params = inspect.signature(fn).parameters.values()
        return [p for p in params if p.name == "reduction" or p.kind is p.VAR_KEYWORD]
    except (TypeError, ValueError):
        return []


# --------------------------------------------------------------------------------------------
# Dense (affine) layers
# --------------------------------------------------------------------------------------------

def _dense_probe() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    return rng.uniform(-1, 1, (3, 4)), rng.uniform(-1, 1, (5, 4)), rng.uniform(-1, 1, (5,)), rng.uniform(-1, 1, (3, 5))


def _dense_forward(name: str, fn: Callable[..., Any], op: Op, probe: Probe) -> list[Adapted]:
    x, W, b, _ = _dense_probe()
    layouts = (probe.declared_layout,) if probe.declared_layout else ("in_out", "out_in")
    seen = {}
    for layout in layouts:
        w = W if layout == "out_in" else W.T.copy()
        out = _try(fn, x, w, b)
        if out is None:
            continue
        cached = _pair(out) and np.ndim(out[0]) == 2
        seen[layout] = (cached, _agrees(out[0] if cached else out, reference_op("dense_forward")(x, W, b)))
    if not seen:
        return [Adapted(op.name, fn, name, "" if name == op.name else f"{name} read as {op.signature}")]
    agreeing = [k for k, (_, ok) in seen.items() if ok]
    layout = agreeing[0] if agreeing else next(iter(seen))
    cached = seen[layout][0]
    how = "declared in WEIGHT_LAYOUT" if probe.declared_layout else \
        "probed: it agrees with torch so" if agreeing else "the first shape it takes; it agrees with torch in neither"
    w_words = "W (in, out): x·W + b" if layout == "in_out" else "W (out, in): x·Wᵀ + b"
    if not cached and name == op.name and layout == (probe.declared_layout or "out_in"):
        return [Adapted(op.name, fn, name, "", "", layout=layout)]
    call = f"{name}(x, W, b)" + ("[0]" if cached else "")
    said = (f"{name}{_signature(fn)}{' -> (out, cache)' if cached else ''}: {w_words} ({how}); checked as "
            f"dense_forward(x, W, b) = {call}")
    wrapped = (lambda x, W, b: fn(x, W, b)[0]) if cached else fn
    return [Adapted(op.name, wrapped, name, said, f"dense_forward = lambda x, W, b: {call}", layout=layout)]


def _dense_backward(name: str, fn: Callable[..., Any], op: Op, probe: Probe,
                    siblings: Mapping[str, tuple[Reading, Callable[..., Any]]]) -> list[Adapted]:
    names = _parameters(fn)
    if names is None or len(names) >= 4:
        said = "" if name == op.name else f"{name}{_signature(fn)} read as {op.signature}"
        return [Adapted(op.name, fn, name, said, "" if name == op.name else f"{op.name} = {name}")]
    if len(names) != 2:
        raise ValueError(f"{name}{_signature(fn)}: a dense backward takes (x, W, b, g) or (dout, cache)")
    x, W, b, _ = _dense_probe()
    forward = None
    for layout in ("in_out", "out_in"):
        forward = forward or _forward_with_cache("dense_forward", siblings, x, W if layout == "out_in" else W.T, b)
    if forward is None:
        raise ValueError(f"{name}({', '.join(names)}) needs the cache of a forward: define the forward that returns "
                         f"(out, cache) beside it (e.g. affine_forward(x, w, b) -> (out, cache))")
    fwd_name, fwd = forward
    call = f"{name}(g, {fwd_name}(x, W, b)[1])"
    return [Adapted(op.name, lambda x, W, b, g: fn(g, fwd(x, W, b)[1]), name,
                    f"{name}({', '.join(names)}): (dout, cache), the cache from your {fwd_name}(x, W, b); checked as "
                    f"dense_backward(x, W, b, g) = {call} -> (dx, dW, db)",
                    f"dense_backward = lambda x, W, b, g: {call}")]


# --------------------------------------------------------------------------------------------

def _signature(fn: Callable[..., Any]) -> str:
    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):
        return "(…)"


def adapt(reading: Reading, fn: Callable[..., Any], probe: Probe,
          siblings: Mapping[str, tuple[Reading, Callable[..., Any]]]) -> list[Adapted]:
    """The learner's ``fn`` (named ``reading.name``) as the op(s) it fills, each with the reading
    stated. ``siblings`` are the learner's other recognised functions (a backward's cache comes
    from its forward). Raises ``ValueError`` for a function no reading fits, quoting what the
    learner's code raised while it was tried (up to two distinct exceptions)."""
    raised: list[str] = []
    token = _RAISED.set(raised)
    try:
        return _adapt(reading, fn, probe, siblings)
    except ValueError as exc:
        if not raised:
            raise
        more = f" (and {len(raised) - 2} other exception{'s' if len(raised) > 3 else ''})" if len(raised) > 2 else ""
        raise ValueError(f"{exc}; while it was tried, your code raised {' / '.join(raised[:2])}{more}") from None
    finally:
        _RAISED.reset(token)


def _adapt(reading: Reading, fn: Callable[..., Any], probe: Probe,
           siblings: Mapping[str, tuple[Reading, Callable[..., Any]]]) -> list[Adapted]:
    op = OPS[reading.op]
    name = reading.name
    if op.family == "dense":
        return _dense_forward(name, fn, op, probe) if op.role == "forward" else \
            _dense_backward(name, fn, op, probe, siblings)
    if op.family == "activation":
        return _activation_forward(name, fn, op, probe) if op.role == "forward" else \
            _activation_backward(name, fn, op, probe, siblings)
    return _loss(name, fn, op, probe)
