"""Check your own functions: a learner's ops, each checked on its own against torch.

A learner stuck on softmax has two functions, not a network. Hand them over as a dict or a module
of plain NumPy functions (batches are rows), named after :data:`~.reference_ops.OPS`, declaring
only what you have::

    from scratchnet_reference.byo.ops import check_ops
    import my_nn

    def test_my_ops():
        check_ops({"softmax": my_nn.softmax, "softmax_backward": my_nn.softmax_grad,
                   "cross_entropy": my_nn.ce, "cross_entropy_grad": my_nn.ce_grad}).assert_ok()

or from the command line ``scratchnet-conformance ops --impl my_nn:OPS`` (a module, ``module:attr``
or ``path/to/file.py[:attr]``). A module's functions named as learners name them are read as the ops
they claim — ``sigmoid_prime(z)``, ``softmax_derivative(s)`` (elementwise or a Jacobian),
``relu_backward(dout, cache)``, ``affine_forward(x, w, b) -> (out, cache)``, ``softmax_loss(x, y) ->
(loss, dx)`` (:mod:`.learner_names`, :mod:`.conventions`) — and how each was read is stated first;
a name that claims an op the suite lacks is refused (``SKIP = [...]`` leaves it out, said so).

The signatures (``reference_ops`` has the full table): ``NAME(z) -> a`` and
``NAME_backward(z, a, g) -> dL/dz`` for an activation (``g = dL/da``, the vector–Jacobian product);
``LOSS(p, y) -> float`` and ``LOSS_grad(p, y) -> dL/dp`` with torch's ``mean`` reduction (a
``reduction=`` keyword, if the function has one, is checked with ``"sum"`` too); the fused
``softmax_cross_entropy(z, y)`` / ``softmax_cross_entropy_grad(z, y) -> dL/dz`` (likewise
``sigmoid_binary_cross_entropy``, ``log_softmax_nll``, ``sigmoid_cross_entropy``);
``dense_forward(x, W, b)`` / ``dense_backward(x, W, b, g) -> (dx, dW, db)``.

Declarations (optional entries beside the functions):

* ``TARGETS`` — the target forms your losses accept: ``"index"`` (a vector of class indices),
  ``"one_hot"`` (rows with one 1), ``"soft"`` (probability rows); a tuple for every loss, or
  ``{name: tuple}`` by loss (``cross_entropy``) or fused pair (``softmax_cross_entropy``, else it
  follows its loss). Default ``("one_hot",)`` for the classification losses; regression
  losses (mse, l1, huber, smooth_l1) always get real-valued targets shaped like ``p``.
* ``WEIGHT_LAYOUT`` — ``"out_in"`` (``W`` is ``(out, in)``, ``x Wᵀ + b``, like torch; the default)
  or ``"in_out"`` (``x W + b``, like most tutorials).
* ``PARAMS`` — registry parameters your ops use, e.g. ``{"leaky_relu": {"negative_slope": 0.2}}``.
* ``DERIVATIVE_OF`` — ``"z"`` or ``"a"`` (or ``{name: ...}``): what your elementwise derivatives take,
  instead of probing; ``SKIP`` — names to leave out (listed as not checked).

Each op is called on hypothesis-drawn inputs inside its domain — non-square batches (N ≠ C),
exact kinks (relu at 0, ``p = y`` for l1), extreme logits (±50, ±800), saturated sigmoids, every
declared target form, both reductions, a drawn upstream gradient — with *torch's* inputs: a
backward gets torch's ``a``, so a wrong forward cannot mask it. Every example is kept (nothing
is shrunk away) and the worst one is diagnosed (:mod:`scratchnet_reference.diagnosis.ops`). A comparison passes when
``tol_ratio = max |a − b| / (atol + rtol·|b|) ≤ 1`` with the project's tolerances
(:mod:`scratchnet_reference.core.tolerances`; ``atol`` scaled by ``max(1, max |b|, max |g|)``).
NumPy ``RuntimeWarning``\\ s raised inside your functions are recorded and reported, never fatal.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
import sys
import time
import types
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from scratchnet import registry

from ..core.isolation import DEFAULT_TIMEOUT_S
from ..core.records import tol_ratios
from ..core.reference_ops import DENSE_LAYOUTS, OPS, Op, reference_op
from ..core.tolerances import TOLERANCES
from ..diagnosis.op_examples import CLASSIFICATION_LOSSES, LARGE, Example, UserOps, call_user, raised_words

__all__ = ["check_ops", "load_ops", "UserOps", "OpsError", "OpsReport", "Example", "TARGET_FORMS",
           "CLASSIFICATION_LOSSES", "LARGE"]

TARGET_FORMS = ("index", "one_hot", "soft")
DECLARATIONS = ("TARGETS", "WEIGHT_LAYOUT", "PARAMS", "DERIVATIVE_OF", "SKIP")
#: what TARGETS may name: the classification losses and the fused pairs built on them
_TARGETED = (*CLASSIFICATION_LOSSES, *("_".join(op.base) for op in OPS.values()
                                        if op.family == "fused" and op.base[1] in CLASSIFICATION_LOSSES))
_EXTREMES = (50.0, -50.0, 800.0, -800.0)
#: where an imported function is nobody's op (``from numpy import tanh`` is still one: it is an op name)
_LIBRARIES = {"numpy", "scipy", "torch", "math", "builtins", "functools", "jax", "sklearn", "typing"}


class OpsError(ValueError):
    """A registration the suite cannot check; the message lists every problem."""

    def __init__(self, owner: str, problems: list[str]):
        self.owner = owner
        self.problems = list(problems)
        lines = [f"{owner}: these ops cannot be checked (scratchnet_reference.byo.ops):"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------------------------
# Loading and validating
# --------------------------------------------------------------------------------------------

def _import(text: str) -> Any:
    """``module``, ``module:attr``, ``path/to/file.py`` or ``path/to/file.py:attr`` -> the object
    (the current directory is importable, as with ``python -m``)."""
    from ..core.adapter import _import_from_path

    module_name, sep, attr = text.partition(":") if text.count(":") == 1 else (text, "", "")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        if module_name.endswith(".py") or "/" in module_name or os.sep in module_name:
            if not Path(module_name).is_file():
                raise OpsError("--impl", [f"--impl {text!r}: no file {module_name} (relative to {cwd})"])
            module = _import_from_path(Path(module_name))
        else:
            module = importlib.import_module(module_name)
    except OpsError:
        raise
    except Exception as exc:  # noqa: BLE001 - ImportError, or the module itself raising
        raise OpsError("--impl", [f"--impl {text!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc})"]) \
            from exc
    obj: Any = module
    for part in filter(None, attr.split(".")):
        if not hasattr(obj, part):
            found = sorted(n for n in dir(module) if not n.startswith("_"))[:15]
            raise OpsError("--impl", [f"--impl {text!r}: {module_name} has no {part!r} (it has: {', '.join(found)})"])
        obj = getattr(obj, part)
    if isinstance(obj, type):
        obj = obj()
    elif callable(obj) and getattr(obj, "__name__", "") not in OPS:
        obj = obj()  # a factory returning the dict / object
    return obj


def _entries(source: Any) -> tuple[str, dict[str, Any], bool]:
    """(label, {name: value}, strict): a dict is strict (every key must be an op or declaration);
    a module or an object contributes its public attributes that are op names (imported ones too:
    ``from my_nn import softmax``) or declarations; of its other functions, only those defined in
    it are listed as not checked (``from numpy import exp`` is nobody's op), and a name that looks
    like a misspelt op is refused."""
    if isinstance(source, Mapping):
        return "ops", {str(k): v for k, v in source.items()}, True
    label = source.__name__ if isinstance(source, types.ModuleType) else type(source).__name__
    names = [n for n in dir(source) if not n.startswith("_")]
    entries = {n: getattr(source, n) for n in names}
    if isinstance(source, types.ModuleType):
        from .learner_names import read_layer_name, read_name

        def own(v: Any) -> bool:  # defined in it, or imported from the learner's code (``from layers import *``)
            module = getattr(v, "__module__", None) or ""
            return module == source.__name__ or (module.split(".")[0] not in _LIBRARIES and not isinstance(v, type))

        entries = {n: v for n, v in entries.items() if n in OPS or n in DECLARATIONS
                   or (callable(v) and getattr(v, "__module__", None) == source.__name__)
                   or (callable(v) and own(v) and (read_name(n) is not None or read_layer_name(n) is not None))}
    return label, entries, False


def _misspelt(name: str, cutoff: float = 0.75) -> list[str]:
    return difflib.get_close_matches(name, list(OPS), n=3, cutoff=cutoff)


def _not_an_op(key: str) -> str:
    """Why ``key`` is not an op name, with the name the learner probably meant."""
    for wrong, right, family in (("_grad", "_backward", "activation"), ("_backward", "_grad", "loss")):
        base = key[: -len(wrong)] if key.endswith(wrong) else ""
        if base + right in OPS and OPS[base + right].family != "dense":
            return f"{key!r} is not an op name: a{'n' if family == 'activation' else ''} {family}'s derivative is " \
                   f"{OPS[base + right].signature}"
    from .learner_names import closest_names

    close = list(dict.fromkeys(_misspelt(key) + closest_names(key)))[:4]
    hint = f"did you mean {', '.join(close)}?" if close else \
        f"op names are activations {', '.join(registry.ACTIVATIONS)} (+ _backward), losses " \
        f"{', '.join(registry.LOSSES)} (+ _grad), fused pairs, dense_forward/dense_backward"
    from .learner_names import claimed_base

    base = claimed_base(key)
    claim = f" (it reads as {base[1]} {base[0]!r}, which the suite does not have)" if base else ""
    return f"{key!r} is not an op name{claim}: {hint} (or leave it out: SKIP = [{key!r}])"


def load_ops(source: Any, timeout: float | None = DEFAULT_TIMEOUT_S) -> UserOps:
    """The learner's ops from a dict, a module, an object with methods, or a ``--impl`` string;
    each function read as the op its name claims (:mod:`.learner_names`: ``sigmoid_prime`` is
    ``sigmoid_backward``) with its own signature lined up (:mod:`.conventions`: ``(dout, cache)``,
    a Jacobian, ``(y, p)``), what was assumed kept in ``UserOps.assumptions``; validated
    (:func:`validate_ops`). Raises :class:`OpsError` listing every problem — a name that claims
    an op the suite cannot read is one (``SKIP = ["svm_loss"]`` leaves it out, said so). The
    validation calls run in a killable worker, ``timeout`` seconds each (:mod:`.isolated_ops`): a
    function that hangs or exits there is kept in ``UserOps.failed`` and reported as that op's failure."""
    from .conventions import Probe, adapt
    from .learner_names import claims_op, read_layer_name, read_name

    if isinstance(source, str):
        if not source.strip():
            raise OpsError("--impl", ["--impl is empty: give a module, module:attr or path/to/file.py[:attr] "
                                      "(an unset variable in CI?)"])
        label = source
        source = _import(source)
    else:
        label = None
    name, entries, strict = _entries(source)
    ops = UserOps(label or name, {})
    problems = _declarations(ops, entries)
    skip = entries.get("SKIP") or ()
    skip = (skip,) if isinstance(skip, str) else tuple(skip)
    ops.skipped = [str(k) for k in skip]
    readings = {}
    for key, value in entries.items():
        if key in DECLARATIONS or key in skip:
            continue
        if (layer := read_layer_name(key)) is not None:
            problems += _layer_op(ops, key, layer, value)
            continue
        reading = read_name(key)
        if reading is None:
            if strict or claims_op(key):
                problems.append(_not_an_op(key))
            elif callable(value):
                ops.ignored.append(key)
        elif not callable(value):
            problems.append(f"{key} must be a function {OPS[reading.op].signature}, got {type(value).__name__}")
        else:
            own = getattr(value, "__name__", "")
            if strict and own.isidentifier() and own != key:  # {"softmax_backward": softmax_derivative}
                reading = replace(reading, name=own)  # stated with the learner's own name
            readings[key] = (reading, value)
    probe = Probe(ops.params, entries.get("DERIVATIVE_OF"), ops.targets if "TARGETS" in entries else None,
                  entries.get("WEIGHT_LAYOUT"))
    layouts: dict[str, str] = {}
    from .conventions import PROBER
    from .isolated_ops import Prober

    prober = Prober(timeout) if timeout is not None else None
    token = PROBER.set(prober)
    try:
        adapted_all = {}
        for key, (reading, fn) in readings.items():
            if prober is not None:
                prober.current = key
            try:
                adapted_all[key] = adapt(reading, fn, probe, readings)
            except ValueError as exc:
                adapted_all[key] = exc
    finally:
        PROBER.reset(token)
    for key, (reading, fn) in readings.items():
        if prober is not None and key in prober.failures:  # it hung or exited while being read
            ops.failed[reading.op] = prober.failures[key]
            ops.sources[reading.op] = key
            continue
        adapted = adapted_all[key]
        if isinstance(adapted, ValueError):
            problems.append(str(adapted))
            continue
        for one in adapted:
            if one.op in ops.functions:
                problems.append(f"{key} and {ops.sources[one.op]} are both read as {one.op}: keep one, or name the "
                                f"other in SKIP")
                continue
            unchanged = one.fn is fn and key == one.op  # the op's own name, used as it is: nothing assumed
            if unchanged:
                one.assumed = one.code = ""
            ops.functions[one.op], ops.sources[one.op] = one.fn, key if unchanged else reading.name
            if one.assumed:
                ops.assumptions.append(one.assumed)
            if one.code:
                ops.code[one.op] = one.code
            if one.targets and "TARGETS" not in entries:
                op = OPS[one.op]
                ops.targets.setdefault("_".join(op.base) if op.family == "fused" else op.base, one.targets)
            if one.layout:
                layouts[key] = one.layout
    if "WEIGHT_LAYOUT" not in entries and layouts:
        if len(set(layouts.values())) > 1:
            problems.append(f"your dense functions disagree on the weight layout ({layouts}): declare WEIGHT_LAYOUT")
        ops.layout = next(iter(layouts.values()))
    problems += _layer_caches(ops)
    if not ops.functions and not ops.layers and not problems and not ops.failed:
        problems.append(f"no ops found in {ops.label}: name your functions (or dict keys) after the ops, e.g. "
                        "softmax, softmax_backward, cross_entropy, cross_entropy_grad (or as learners do: "
                        "sigmoid_prime, softmax_derivative, relu_backward(dout, cache), affine_forward)")
    problems += _validation_problems(ops, timeout)
    if problems:
        raise OpsError(ops.label, problems)
    return ops


def _layer_op(ops: UserOps, key: str, op: str, fn: Any) -> list[str]:
    """``key`` (``conv_forward_naive``) as the layer op ``op`` (``conv2d_forward``) in ``ops.layers``:
    the op's own name wins over the course's (``batchnorm_backward`` over ``batchnorm_backward_alt``,
    which is then said not to be checked); two other names for one op are a problem."""
    if not callable(fn):
        return [f"{key} must be a function (the layer op {op}), got {type(fn).__name__}"]
    held = ops.sources.get(op)
    if held is not None and op not in (key, held):
        return [f"{key} and {held} are both read as {op}: keep one, or name the other in SKIP"]
    if held is not None:  # the op's own name and another: the own name is checked
        alias = held if key == op else key
        ops.assumptions[:] = [a for a in ops.assumptions if not a.startswith(f"{alias} read as")]
        ops.assumptions.append(f"{alias} would be read as the layer op {op} too: your {op} is checked, {alias} "
                               "is not")
        ops.layers[op], ops.sources[op] = ops.layers[op] if key != op else fn, op
        return []
    ops.layers[op], ops.sources[op] = fn, key
    if key != op:
        from .layer_ops import signature

        ops.assumptions.append(f"{key} read as the layer op {signature(op)} (byo.layer_ops)")
    return []


def _layer_caches(ops: UserOps) -> list[str]:
    """A layer backward is called with the cache of the learner's own forward: it needs that forward."""
    from ..core.layer_reference import LAYER_OPS

    return [f"{ops.sources[op]} ({op}) is called with the cache of your {LAYER_OPS[op][0]}, which is not "
            f"there: define it too, or leave {ops.sources[op]} out: SKIP = [{ops.sources[op]!r}]"
            for op in ops.layers if LAYER_OPS[op][0] not in ops.layers]


def _declarations(ops: UserOps, entries: Mapping[str, Any]) -> list[str]:
    problems = []
    targets = entries.get("TARGETS")
    if targets is not None:
        table = targets if isinstance(targets, Mapping) else {"": targets}
        for loss, forms in table.items():
            forms = (forms,) if isinstance(forms, str) else tuple(forms)
            where = f"TARGETS[{loss!r}]" if loss else "TARGETS"
            if loss and loss not in _TARGETED:
                problems.append(f"{where}: only {', '.join(_TARGETED)} take declared target forms (regression "
                                "losses get real targets)")
            elif not forms or any(f not in TARGET_FORMS for f in forms):
                problems.append(f"{where} must be some of {TARGET_FORMS}, got {forms!r}")
            else:
                ops.targets.update({loss: forms} if loss else dict.fromkeys(CLASSIFICATION_LOSSES, forms))
    layout = entries.get("WEIGHT_LAYOUT", "out_in")
    if layout not in DENSE_LAYOUTS:
        problems.append(f"WEIGHT_LAYOUT must be one of {DENSE_LAYOUTS} ('out_in': W is (out, in) like torch, "
                        f"x Wᵀ + b; 'in_out': x W + b), got {layout!r}")
    ops.layout = layout if layout in DENSE_LAYOUTS else "out_in"
    of = entries.get("DERIVATIVE_OF")
    values = list(of.values()) if isinstance(of, Mapping) else [] if of is None else [of]
    if any(v not in ("z", "a") for v in values):
        problems.append(f"DERIVATIVE_OF must be 'z' or 'a' (what your elementwise derivatives take), or "
                        f"{{function name: 'z' | 'a'}}, got {of!r}")
    params = entries.get("PARAMS") or {}
    if not isinstance(params, Mapping):
        problems.append(f"PARAMS must be {{op: {{parameter: value}}}}, got {type(params).__name__}")
        params = {}
    for base, values in params.items():
        kind = "activation" if base in registry.ACTIVATIONS else "loss"
        try:
            registry.normalize({"name": base, **values}, kind)
        except (ValueError, TypeError) as exc:
            problems.append(f"PARAMS[{base!r}]: {exc}")
        else:
            ops.params[base] = dict(values)
    return problems


def _accepts_reduction(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "reduction" or p.kind is p.VAR_KEYWORD for p in params)


def validate_ops(ops: UserOps) -> None:
    """Refuse at once, with every problem: a function that cannot take the op's arguments, one
    that raises on a small valid input (N = 3, C = 4), or returns the wrong kind or shape."""
    problems = _validation_problems(ops)
    if problems:
        raise OpsError(ops.label, problems)


def _validate_one(ops: UserOps, name: str, inputs: dict[str, np.ndarray]) -> list[str]:
    """The problems of ``name`` on one small valid input (run in the worker)."""
    try:
        got, _ = call_user(ops.functions[name], inputs, {})
    except Exception as exc:  # noqa: BLE001
        return [f"{name}({', '.join(f'{k}: {_shape(v)}' for k, v in inputs.items())}) raised {raised_words(exc)}"]
    return _check_result(name, OPS[name], got, inputs, ops.layout)


def _validation_problems(ops: UserOps, timeout: float | None = DEFAULT_TIMEOUT_S) -> list[str]:
    from .isolated_ops import IsolatedCalls

    with IsolatedCalls(ops, f"ops {ops.label!r} (validation)", timeout) as isolated:
        problems = _validation_calls(ops, isolated)
    ops.failed.update(isolated.failures)
    return problems


def _validation_calls(ops: UserOps, isolated: Any) -> list[str]:
    problems: list[str] = []
    rng = np.random.default_rng(0)
    for name, fn in ops.functions.items():
        op = OPS[name]
        try:
            inspect.signature(fn).bind(*op.args)
        except TypeError:
            problems.append(f"{name} must take ({', '.join(op.args)}): {op.signature}; yours is "
                            f"{name}{inspect.signature(fn)}")
            continue
        except ValueError:  # a builtin without a signature: try it
            pass
        if op.family in ("loss", "fused") and _accepts_reduction(fn):
            ops.with_reduction.add(name)
        if op.family == "dense":
            inputs = _dense_inputs(op, ops, *(rng.uniform(-1, 1, shape) for shape in ((3, 4), (5, 4), (5,), (3, 5))))
        else:
            inputs = _inputs(op, ops, *(rng.uniform(-1, 1, (3, 4)) for _ in range(3)), _forms(ops, op)[0])
        problems += isolated.call(name, _validate_one, name, inputs, label=f"{name} (validation)") or []
    return problems


def _shape(value: Any) -> str:
    arr = np.asarray(value)
    return f"{arr.dtype.kind}{arr.shape}" if arr.dtype.kind in "iu" else str(arr.shape)


def _check_result(name: str, op: Op, got: Any, inputs: dict[str, np.ndarray], layout: str) -> list[str]:
    if op.family in ("loss", "fused") and op.role == "forward":
        arr = np.asarray(got) if not isinstance(got, (tuple, list, dict)) else np.asarray(None)
        if arr.dtype.kind not in "fiu" or arr.size != 1:
            return [f"{name} must return the loss as one number, got {type(got).__name__} {_shape(got)}"]
        return []
    if name == "dense_backward":
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            return [f"dense_backward must return (dx, dW, db), got {type(got).__name__}"]
        x, W, b = inputs["x"], inputs["W"], inputs["b"]
        wanted = {"dx": x.shape, "dW": W.shape, "db": b.shape}
        bad = [f"{k} has shape {np.shape(v)}, expected {s}" + (" (transposed: declare WEIGHT_LAYOUT)" if k == "dW"
                                                                and np.shape(v) == s[::-1] else "")
               for (k, s), v in zip(wanted.items(), got) if np.shape(v) != s]
        return [f"dense_backward(x {x.shape}, W {W.shape} ({layout}), b {b.shape}, g): " + "; ".join(bad)] if bad \
            else []
    first = inputs["x"] if name == "dense_forward" else next(iter(inputs.values()))
    expected = (first.shape[0], inputs["W"].shape[0 if layout == "out_in" else 1]) if name == "dense_forward" \
        else first.shape
    if np.shape(got) != expected:
        return [f"{name} returned shape {np.shape(got)} for inputs of shape {first.shape}, expected {expected}"]
    return []


# --------------------------------------------------------------------------------------------
# Examples: drawing inputs, calling both sides
# --------------------------------------------------------------------------------------------

def _forms(ops: UserOps, op: Op) -> tuple[str, ...]:
    return ops.target_forms(op) if op.family in ("loss", "fused") else ("-",)


def _targets(form: str, N: int, C: int, u: np.ndarray) -> np.ndarray:
    """Targets of ``form`` from uniform numbers ``u`` (N, C) in [0, 1)."""
    labels = np.argmax(u, axis=1)
    if form == "index":
        return labels.astype(np.int64)
    if form == "one_hot":
        return np.eye(C)[labels]
    soft = u + 0.05
    return soft / soft.sum(axis=1, keepdims=True)


def _inputs(op: Op, ops: UserOps, z: np.ndarray, g: np.ndarray, u: np.ndarray, form: str) -> dict[str, np.ndarray]:
    """The inputs of an activation, loss or fused op from drawn logits ``z``, upstream gradient ``g``
    and uniform numbers ``u`` (all N × C): torch's ``a`` for a backward, ``p`` in the loss's domain
    (softmax rows for cross-entropy, log-softmax for NLL, sigmoid for BCE, ``z`` itself otherwise)."""
    N, C = z.shape
    if op.family == "activation":
        return {"z": z} if op.role == "forward" else {"z": z, "a": reference_op(op.base, **ops.params_of(op))(z),
                                                      "g": g}
    y = 2.0 * g if form == "real" else _targets(form, N, C, u)  # real targets lie in [-6, 6]
    if op.family == "fused":
        return {"z": z, "y": y}
    domain = {"cross_entropy": "softmax", "nll": "log_softmax", "binary_cross_entropy": "sigmoid"}.get(op.base)
    return {"p": reference_op(domain)(z) if domain else z, "y": y}


def _dense_inputs(op: Op, ops: UserOps, x: np.ndarray, W: np.ndarray, b: np.ndarray, g: np.ndarray) \
        -> dict[str, np.ndarray]:
    """``x`` (N, in), ``W`` (out, in) — handed over in the declared layout — ``b`` (out,), ``g`` (N, out)."""
    inputs = {"x": x, "W": W if ops.layout == "out_in" else W.T.copy(), "b": b}
    return {**inputs, "g": g} if op.role == "backward" else inputs


def _tolerance(op: Op, dtype: str) -> Any:
    check = "gradient" if op.role == "backward" else ("loss" if op.family in ("loss", "fused") else "forward")
    return TOLERANCES[(dtype, check)]


def run_example(name: str, fn: Callable[..., Any], ops: UserOps, inputs: dict[str, np.ndarray],
                kwargs: dict[str, Any], check: str, dtype: str, large: bool = False,
                kinks: np.ndarray | None = None) -> list[Example]:
    """Call the learner's ``fn`` and torch's op on ``inputs`` cast to ``dtype`` (torch sees the
    same rounded numbers, in float64); one :class:`Example` per output."""
    op = OPS[name]
    cast = {k: (v.astype(dtype) if v.dtype.kind == "f" else v) for k, v in inputs.items()}
    expected = reference_op(name, **ops.params_of(op))(*cast.values(), **kwargs)
    tol = _tolerance(op, dtype)
    try:
        actual, caught = call_user(fn, cast, kwargs)
        error = ""
    except Exception as exc:  # noqa: BLE001 - a learner's function raising is a finding, not a crash
        actual, caught, error = None, (), f"{type(exc).__name__}: {exc}"
    outputs = (("dx", "dW", "db") if name == "dense_backward" else ("",))
    expected_parts = expected if name == "dense_backward" else (expected,)
    actual_parts = actual if (name == "dense_backward" and actual is not None) else (actual,) * len(outputs)
    g = cast.get("g")
    examples = []
    for component, b, a in zip(outputs, expected_parts, actual_parts):
        b = np.asarray(b, dtype=np.float64)
        scale = max(1.0, float(np.max(np.abs(b), initial=0.0)),
                    float(np.max(np.abs(g), initial=0.0)) if g is not None else 0.0)
        atol = tol.atol * scale
        if a is None:
            a_arr, ratios = None, np.full(b.shape, np.inf)
        else:
            a_arr = np.asarray(a, dtype=np.float64).reshape(b.shape) if np.size(a) == b.size else None
            ratios = tol_ratios(a_arr, b, tol.rtol, atol) if a_arr is not None else np.full(b.shape, np.inf)
            if a_arr is None:
                error = f"returned shape {np.shape(a)}, expected {b.shape}"
        examples.append(Example(name, check + (f" {component}" if component else ""), cast, dict(kwargs), b, a_arr,
                                ratios, (tol.rtol, atol), component, error, caught, large, kinks))
    return examples


# --------------------------------------------------------------------------------------------
# Drawing with hypothesis
# --------------------------------------------------------------------------------------------

def _explore(name: str, ops: UserOps, form: str, reduction: str | None, dtype: str, max_examples: int,
             seed: int | None) -> list[Example]:
    """Every example hypothesis draws for one (op, target form, reduction), kept in full: the
    checker never raises inside ``@given``, so nothing is shrunk and the worst one can be diagnosed."""
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    from .drawing import draw_examples

    op = OPS[name]
    fn = ops.functions[name]
    kwargs = {"reduction": reduction} if reduction else {}
    check = " ".join(filter(None, (op.role if op.family in ("activation", "dense") else
                                   ("value" if op.role == "forward" else "grad"),
                                   reduction or ("mean" if op.family in ("loss", "fused") else ""),
                                   "" if form in ("-", "real") else form)))
    takes_logits = op.family in ("activation", "fused")
    kinked = op.family == "activation" and op.base in ("relu", "leaky_relu")
    collected: list[Example] = []
    floats = st.floats(-4, 4, width=32, allow_subnormal=False)
    # nonzero: a zero upstream gradient makes any backward look right where it multiplies
    upstream = st.one_of(st.floats(0.0625, 3, width=32), st.floats(-3, -0.0625, width=32))

    def draw(data: Any) -> None:
        N = data.draw(st.integers(1, 6), label="N")
        C = data.draw(st.integers(2, 6), label="C")
        style = data.draw(st.sampled_from(("plain", "kinks", "large") if takes_logits else ("plain", "kinks")))
        if op.family == "dense":
            n_out = data.draw(st.integers(1, 5), label="out")
            x, W, b, g = (data.draw(hnp.arrays(np.float64, shape, elements=upstream, fill=st.nothing()), label=k)
                          for k, shape in (("x", (N, C)), ("W", (n_out, C)), ("b", (n_out,)), ("g", (N, n_out))))
            collected.extend(run_example(name, fn, ops, _dense_inputs(op, ops, x, W, b, g), kwargs, check, dtype))
            return
        z = data.draw(hnp.arrays(np.float64, (N, C), elements=floats, fill=st.nothing()), label="z")
        g = data.draw(hnp.arrays(np.float64, (N, C), elements=upstream, fill=st.nothing()), label="g")
        # the rest (targets, where the kinks and extremes go) from a drawn seed: cheaper than more arrays
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
        u, mask = rng.uniform(0, 1, (N, C)), rng.uniform(0, 1, (N, C)) < 0.5
        if style == "large":
            z = np.where(mask, rng.choice(_EXTREMES, (N, C)), z)
        inputs = _inputs(op, ops, z, g, u, form)
        kinks = None
        if style == "kinks" and op.base == "l1":
            inputs["p"] = np.where(mask, inputs["y"], inputs["p"])
        elif style == "kinks" and "z" in inputs:
            inputs["z"] = np.where(mask, 0.0, inputs["z"])
            if "a" in inputs:
                inputs["a"] = reference_op(op.base, **ops.params_of(op))(inputs["z"])
        if kinked:
            kinks = inputs["z"] == 0
        elif op.base == "l1":
            kinks = inputs["p"] == inputs["y"]
        large = bool(np.max(np.abs(inputs[next(iter(inputs))]), initial=0) > LARGE)
        collected.extend(run_example(name, fn, ops, inputs, kwargs, check, dtype, large, kinks))

    draw_examples(draw, max_examples=max_examples, seed=seed)
    return collected


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------

@dataclass(repr=False)  # the repr is the report: an IPython terminal shows it
class OpsReport:
    """The outcome of :func:`check_ops`: ``findings`` (root causes, numbered first when printed),
    ``rows`` (op × check: examples, failures, worst tol_ratio), ``warnings`` per op, and how the
    learner's functions were read (``assumptions``; ``sources`` maps each op to their name).

    ``print(report)`` (or ``str``) is the terminal report; as a notebook cell's last value it
    renders as HTML (``_repr_html_``): the root causes first, then the table."""

    label: str
    dtype: str
    rows: list[dict[str, Any]]
    findings: list[Any]
    warnings: dict[str, Counter]
    seconds: float = 0.0
    ignored: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not self.findings and all(r["failed"] == 0 for r in self.rows)

    def _title(self) -> str:
        if self.findings:
            return f"{len(self.findings)} root cause{'s' if len(self.findings) > 1 else ''} in {self.label} " \
                   f"({self.dtype}):"
        return f"{self.label}: every op agrees with torch ({self.dtype})."

    def _op_label(self, op: str) -> str:
        source = self.sources.get(op, op)
        return op if source == op else f"{op} ← {source}"

    def _notes(self) -> list[str]:
        notes = [f"{name} raised {message} on {n} example{'s' if n > 1 else ''} (recorded, not fatal; the "
                 "comparison above decides)" for name, counts in self.warnings.items() for message, n in counts.items()]
        if self.ignored:
            notes.append(f"not checked (not op names): {', '.join(self.ignored)}")
        if self.skipped:
            notes.append(f"not checked (in SKIP): {', '.join(self.skipped)}")
        notes.append(f"{sum(r['examples'] for r in self.rows)} examples in {self.seconds:.1f} s")
        return notes

    def render(self, *, table: bool = True, assumptions: bool = True) -> str:
        from ..diagnosis.causes import render_findings

        lines = []
        if assumptions and self.assumptions:
            lines += [read_as_text(self.assumptions), ""]
        lines.append(self._title())
        lines += ["", render_findings(self.findings), ""] if self.findings else [""]
        if table:
            labels = [self._op_label(r["op"]) for r in self.rows]
            width = max([len(label) for label in labels] + [2])
            cwidth = max([len(r["check"]) for r in self.rows] + [5])
            lines.append(f"{'op':<{width}}  {'check':<{cwidth}}  examples  failed  tol_ratio  status")
            for label, r in zip(labels, self.rows):
                lines.append(f"{label:<{width}}  {r['check']:<{cwidth}}  {r['examples']:>8}  {r['failed']:>6}  "
                             f"{r['tol_ratio']:>9.3g}  {'FAIL' if r['failed'] else 'pass'}")
        notes = self._notes()
        lines += [f"note: {n}" for n in notes[:-1]] + notes[-1:]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()

    __repr__ = __str__

    def _repr_html_(self) -> str:
        from ..diagnosis.display import Cause, html_report

        causes = [Cause(f.where, f.what, (("fails in", ", ".join(dict.fromkeys(f.checks))), ("evidence", f.evidence),
                                       ("right", f.right)), f.reproducer) for f in self.findings]
        rows = [(self._op_label(r["op"]), r["check"], r["examples"], r["failed"], float(r["tol_ratio"]),
                 "FAIL" if r["failed"] else "pass") for r in self.rows]
        return html_report(title=self._title(), ok=self.ok, causes=causes,
                           columns=("op", "check", "examples", "failed", "tol_ratio", "status"), rows=rows,
                           status_column=5, read_as=self.assumptions, notes=self._notes())

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` with the findings (for a learner's own pytest)."""
        if not self.ok:
            raise AssertionError("\n" + self.render())


def read_as_text(assumptions: Sequence[str], width: int = 118) -> str:
    """How the learner's functions were read, one wrapped item each (printed before the results)."""
    import textwrap

    lines = ["how your functions were read (scratchnet_reference.byo.conventions):"]
    for line in assumptions:
        lines += textwrap.wrap(line, width=width, initial_indent="  - ", subsequent_indent="    ")
    return "\n".join(lines)


def _with_reading(finding: Any, code: Mapping[str, str]) -> Any:
    """``finding`` whose reproducer opens with how the learner's function was read as its op (where
    it was adapted), so that it pastes and runs against their own function."""
    op_name = finding.op.split(" ")[0]  # "dense_backward (db)"
    if op_name not in code or not finding.reproducer:
        return finding
    return replace(finding, reproducer="\n".join(["# how your function was read:",
                                                   *_defining(op_name, code[op_name]), finding.reproducer]))


def _defining(op_name: str, code: str) -> list[str]:
    """``code`` (``op = lambda …: yours(…)``) as lines to paste; where your function has the op's own
    name (``relu_backward(dout, cache)``), it is kept as ``your_relu_backward`` first, so the
    definition does not call itself."""
    target, _, body = code.partition(" = ")
    if f"{op_name}(" not in body:
        return [code]
    return [f"your_{op_name} = {op_name}  # yours, as you wrote it", f"{target} = " +
            re.sub(rf"(?<![\w.]){re.escape(op_name)}\(", f"your_{op_name}(", body)]


def _warm_up(ops: UserOps) -> None:
    """torch's side of every op once, in this process, before the worker is forked: the first call
    imports and initialises parts of torch (seconds on a loaded machine), which every fork then
    inherits instead of spending its time limit on it. No learner code runs here."""
    from hypothesis.extra import numpy  # noqa: F401 - imported once, before the fork

    rng = np.random.default_rng(0)
    for name in ops.functions:
        op = OPS[name]
        if op.family == "dense":
            inputs = _dense_inputs(op, ops, *(rng.uniform(-1, 1, s) for s in ((3, 4), (5, 4), (5,), (3, 5))))
        else:
            inputs = _inputs(op, ops, *(rng.uniform(-1, 1, (3, 4)) for _ in range(3)), _forms(ops, op)[0])
        try:
            reference_op(name, **ops.params_of(op))(*inputs.values())
        except Exception:  # noqa: BLE001 - a warm-up only; the checks report what is wrong
            pass


def _explore_in_worker(ops: UserOps, name: str, *args: Any) -> list[Example]:
    return _explore(name, ops, *args)


def _diagnose_in_worker(ops: UserOps, examples: dict[str, list[Example]]) -> list[Any]:
    from ..diagnosis.ops import diagnose

    return diagnose(ops, examples)


def check_ops(source: Any, *, max_examples: int = 40, dtype: str = "float64", seed: int | None = None,
              timeout: float | None = DEFAULT_TIMEOUT_S) -> OpsReport:
    """Check every op in ``source`` (a dict, module, object or ``--impl`` string) against torch.

    ``max_examples`` hypothesis draws per (op, target form, reduction); derandomized unless a
    ``seed`` is given. Raises :class:`OpsError` for a registration that cannot be checked.
    The learner's functions run in a killable worker, ``timeout`` seconds per op's exploration
    (:mod:`.isolated_ops`): one that hangs, exits or raises anything is that op's failure, named
    with where it was, and the other ops are still checked (``None``: in this process)."""
    from ..diagnosis.ops import diagnose
    from .isolated_ops import IsolatedCalls, failure_cause, without

    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    start = time.perf_counter()
    ops = source if isinstance(source, UserOps) else load_ops(source, timeout)
    examples: dict[str, list[Example]] = {}
    if timeout is not None:
        _warm_up(ops)
    with IsolatedCalls(ops, f"ops {ops.label!r}", timeout, dict(ops.failed)) as isolated:
        for name in ops.functions:
            op = OPS[name]
            reductions = ("mean", "sum") if name in ops.with_reduction else (None,)
            for form in _forms(ops, op):
                for reduction in reductions:
                    examples.setdefault(name, []).extend(isolated.call(
                        name, _explore_in_worker, name, form, reduction, dtype, max_examples, seed,
                        label=f"{name} ({ops.sources.get(name, name)})") or [])
        found = isolated.call("(diagnosis)", _diagnose_in_worker, examples)
        # the layer ops: one call for all of them (a hang in one loses the others' rows; said in the report)
        layered = isolated.call("layer ops", _layer_results, max_examples, seed) if ops.layers else None
    failed = isolated.failures
    rows, warned = [], {}
    for name, exs in examples.items():
        for check in dict.fromkeys(e.check for e in exs):
            these = [e for e in exs if e.check == check]
            rows.append(dict(op=name, check=check, examples=len(these), failed=sum(e.failed for e in these),
                             tol_ratio=max(e.tol_ratio for e in these)))
        counts = Counter(w for e in exs if not e.component or e.component == "dx" for w in e.warnings)
        if counts:
            warned[name] = counts
    for name, failure in failed.items():
        if name in OPS:
            rows.append(dict(op=name, check=failure.kind, examples=0, failed=1, tol_ratio=float("inf")))
    if found is None:  # the diagnosis itself failed in the worker: diagnose without calling your functions
        found = diagnose(without(ops, ops.functions), examples)
    findings = [failure_cause(name, f) for name, f in failed.items()] + found
    findings = [_with_reading(f, ops.code) for f in findings]
    assumptions = list(ops.assumptions)
    if layered is not None:
        layer_rows, layer_findings = layered
        rows += layer_rows
        findings += layer_findings
        if dtype != "float64":
            assumptions.append(f"the layer ops ({', '.join(ops.layers)}) are checked in float64, not {dtype}")
    return OpsReport(ops.label, dtype, rows, findings, warned, time.perf_counter() - start, tuple(ops.ignored),
                     tuple(assumptions), dict(ops.sources), tuple(ops.skipped))


def _layer_results(ops: UserOps, max_examples: int, seed: int | None) -> tuple[list[dict[str, Any]], list[Any]]:
    """The layer ops checked (:func:`.layer_ops.check_layer_ops`, float64), as this report's rows
    (check ``forward``/``backward``) and root causes (``kind`` the catalogue key or pattern, ``op``
    the op and the wrong outputs: ``batchnorm_backward (dgamma, dbeta)``)."""
    from ..core.layer_reference import LAYER_OPS
    from ..diagnosis.causes import RootCause
    from .layer_ops import check_layer_ops

    report = check_layer_ops(ops.layers, max_examples=max_examples, seed=seed)
    rows = [dict(op=r["op"], check="backward" if LAYER_OPS[r["op"]][1] else "forward", examples=r["examples"],
                 failed=r["failed"], tol_ratio=r["worst"]) for r in report.rows]
    findings = [RootCause(kind=f.key, what=f.words, right=f.right,
                          op=f.op if f.output == "-" else f"{f.op} ({f.output})",
                          checks=("backward" if LAYER_OPS[f.op][1] else "forward",),
                          evidence=f"{f.examples} example(s); worst tol_ratio "
                                   f"{f.worst.tol_ratio if f.worst else float('nan'):.3g}")
                for f in report.findings]
    return rows, findings
