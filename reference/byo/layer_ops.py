"""Check your own layer functions — batch norm, dropout, convolution, max pooling — each on its own
against torch's, in the conventions of the course assignment that has learners write them in NumPy
(``layers.py``: ``forward(...) -> (out, cache)``, ``backward(dout, cache)``)::

    from scratchnet_reference.byo.layer_ops import check_layer_ops
    import layers                                       # your batchnorm_forward, conv_forward, ...

    check_layer_ops(layers).assert_ok()                 # or print(check_layer_ops(layers))

The functions (a module or a dict; the names in brackets are accepted too, as are ``_naive``/``_fast``
and camelCase: :func:`~.learner_names.read_layer_name`). ``scratchnet-conformance ops --impl layers.py``
checks them with the dense ops the same module defines (``affine_forward``, ``relu_backward``, …), one
report:

================================================  ================================================
``batchnorm_forward(x, gamma, beta, bn_param)``   ``-> (out, cache)``; ``bn_param``: ``mode``
                                                  (``"train"``/``"test"``), ``eps``, ``momentum``,
                                                  ``running_mean``, ``running_var`` (updated in
                                                  place, torch's convention: the new batch weighs
                                                  ``momentum``)
``batchnorm_backward(dout, cache)``               ``-> (dx, dgamma, dbeta)`` (training mode)
``dropout_forward(x, dropout_param)``             ``-> (out, cache)``; ``p`` (the *drop*
                                                  probability, torch's), ``mode``, ``seed``, and
                                                  ``mask`` (bool, True = kept: use it if you can)
``dropout_backward(dout, cache)``                 ``-> dx``
``conv2d_forward(x, w, b, conv_param)``           ``-> (out, cache)``; NCHW, ``w`` ``(F, C, HH,
[``conv_forward``, ``conv_forward_naive``]        WW)``, ``conv_param``: ``stride``, ``pad``
``conv2d_backward(dout, cache)``                  ``-> (dx, dw, db)``
[``conv_backward``, ``conv_backward_naive``]
``maxpool2d_forward(x, pool_param)``              ``-> (out, cache)``; ``pool_height``,
[``max_pool_forward``, ``max_pool_forward_naive``]  ``pool_width``, ``stride``
``maxpool2d_backward(dout, cache)``               ``-> dx``
[``max_pool_backward``, ``max_pool_backward_naive``]
================================================  ================================================

A backward is called with the cache of *your* forward on the same inputs, and judged against
torch's gradient of those inputs (autograd through ``F.batch_norm``, ``F.conv2d``,
``F.max_pool2d``; dropout multiplies by the mask your forward kept, read off its output, over
``1 − p``). Inputs are drawn by hypothesis: batches of 1, odd sizes, strides above 1, padding,
kernels as large as the padded input, and integer-valued inputs where max pooling meets ties
(torch sends a tied window's gradient to its first maximum, in row-major order).

Every failing output is held against the catalogue's mistakes for the op
(:mod:`scratchnet_reference.diagnosis.catalogue`, the layer sites) — each planted on the example's
own inputs — and, failing those, a constant factor; what matches every failing example
is named with the right formula. Nothing is shrunk: the worst example is kept for the reproducer.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.layer_reference import LAYER_OPS, OUTPUTS, reference_backward, reference_forward
from ..core.records import tol_ratios
from ..core.tolerances import TOLERANCES
from ..diagnosis.catalogue import BY_KEY, Mistake, Site, mistakes_at

__all__ = ["LAYER_OPS", "signature", "LayerExample", "LayerReport", "check_layer_ops", "load_layer_ops",
           "layer_mistakes"]

#: each forward's arguments, in order
_FORWARD_ARGS = {"batchnorm_forward": "x, gamma, beta, bn_param", "dropout_forward": "x, dropout_param",
                 "conv2d_forward": "x, w, b, conv_param", "maxpool2d_forward": "x, pool_param"}
#: max |your output − torch's| / (atol + rtol·|torch's|): float64, the project's gradient tolerance
TOL = TOLERANCES[("float64", "gradient")]
#: how far a mistake's model may be from yours, in tolerances, to name it
LOOSE = 100.0


# --------------------------------------------------------------------------------------------
# Loading and calling the learner's functions
# --------------------------------------------------------------------------------------------

def signature(op: str) -> str:
    """``conv2d_forward(x, w, b, conv_param) -> (out, cache)``, ``conv2d_backward(dout, cache) -> (dx, dw, db)``."""
    forward, is_backward = LAYER_OPS[op]
    if not is_backward:
        return f"{op}({_FORWARD_ARGS[forward]}) -> (out, cache)"
    outputs = OUTPUTS[op]
    return f"{op}(dout, cache) -> {outputs[0] if len(outputs) == 1 else '(' + ', '.join(outputs) + ')'}"


def load_layer_ops(source: Any) -> dict[str, Callable[..., Any]]:
    """``{op: function}`` from a module or a mapping: functions named after :data:`LAYER_OPS` or
    as the course names them (:func:`~.learner_names.read_layer_name`; an op's own name wins over
    another)."""
    from .learner_names import LAYER_ALIASES, read_layer_name

    entries = dict(source) if isinstance(source, Mapping) else {k: getattr(source, k) for k in dir(source)}
    found: dict[str, Callable[..., Any]] = {}
    for name, fn in entries.items():
        op = read_layer_name(name)
        if op is None or not callable(fn):
            continue
        if name == op or op not in found:
            found[op] = fn
    if not found:
        raise ValueError(f"no layer functions found in {source!r}: expected names such as "
                         f"{', '.join(LAYER_OPS)} (or the course's {', '.join(sorted(LAYER_ALIASES)[:4])}, …)")
    return found


def _call(fn: Callable[..., Any], *args: Any) -> tuple[Any, str, tuple[str, ...]]:
    """``fn`` on deep copies of ``args``: (result, error text, NumPy warnings)."""
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="warn", under="ignore"):
        warnings.simplefilter("always")
        try:
            out = fn(*copy.deepcopy(args))
        except Exception as exc:  # noqa: BLE001 - the learner's exception is this example's failure
            return None, f"{type(exc).__name__}: {exc}", ()
    return out, "", tuple(sorted({f"{w.category.__name__}: {w.message}" for w in caught}))


# --------------------------------------------------------------------------------------------
# Examples
# --------------------------------------------------------------------------------------------

@dataclass(eq=False)
class LayerExample:
    """One call of one op: each output of yours against torch's (``ratios`` per output)."""

    op: str
    inputs: dict[str, Any]
    dout: np.ndarray | None
    expected: dict[str, np.ndarray]
    actual: dict[str, np.ndarray]
    ratios: dict[str, float]
    error: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def tol_ratio(self) -> float:
        return float("inf") if self.error else max(self.ratios.values(), default=0.0)

    @property
    def failed(self) -> bool:
        return self.tol_ratio > 1.0


def _compare(actual: Any, expected: np.ndarray) -> float:
    a = np.asarray(actual, dtype=np.float64) if actual is not None else None
    if a is None or a.shape != expected.shape:
        return float("inf")
    atol = TOL.atol * max(1.0, float(np.abs(expected).max(initial=0.0)))
    return float(tol_ratios(a, expected, TOL.rtol, atol).max(initial=0.0))


def _as_float(value: Any) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.dtype != np.float64:
        raise TypeError(f"not an array of numbers: {type(value).__name__}")
    return arr


def _unpack(op: str, result: Any, inputs: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[dict, Any, str]:
    """(outputs by name, the cache, a problem with the result's form — named, never raised)."""
    names = OUTPUTS[op]
    try:
        if not LAYER_OPS[op][1]:                               # a forward: (out, cache)
            if not (isinstance(result, tuple) and len(result) == 2):
                return {}, None, f"{op} must return (out, cache), got {type(result).__name__}"
            out = {"out": _as_float(result[0])}
            if op == "batchnorm_forward":
                params = after.get("bn_param")
                params = params if isinstance(params, Mapping) else {}
                for k in ("running_mean", "running_var"):
                    out[k] = _as_float(params.get(k, inputs["bn_param"][k]))
            return out, result[1], ""
        if len(names) == 1:
            return {names[0]: _as_float(result)}, None, ""
        if not (isinstance(result, tuple) and len(result) == len(names)):
            return {}, None, f"{op} must return ({', '.join(names)}), got {type(result).__name__}"
        return {k: _as_float(v) for k, v in zip(names, result)}, None, ""
    except (TypeError, ValueError) as exc:
        return {}, None, f"{op} returned something that is not ({', '.join(names)}) as arrays: {exc}"


def _forward_with_state(fn: Callable[..., Any], op: str, inputs: dict[str, Any]) -> tuple[Any, dict, str, tuple]:
    """Call a forward so that ``bn_param``'s in-place updates can be read back."""
    args = copy.deepcopy(list(inputs.values()))
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="warn", under="ignore"):
        warnings.simplefilter("always")
        try:
            result = fn(*args)
        except Exception as exc:  # noqa: BLE001 - the learner's exception is this example's failure
            return None, {}, f"{type(exc).__name__}: {exc}", ()
    after = dict(zip(inputs, args))
    return result, after, "", tuple(sorted({f"{w.category.__name__}: {w.message}" for w in caught}))


def run_layer_example(fns: Mapping[str, Callable[..., Any]], op: str, inputs: dict[str, Any],
                      dout: np.ndarray | None) -> LayerExample:
    """One example of ``op``: the forward (yours) on ``inputs``, and for a backward yours on ``dout``
    and your forward's cache; torch's results for both."""
    forward, is_backward = LAYER_OPS[op]
    result, after, error, warns = _forward_with_state(fns[forward], forward, inputs)
    outputs, cache, problem = ({}, None, error) if error else _unpack(forward, result, inputs, after)
    error = error or problem
    if forward == "dropout_forward" and not error:
        x = inputs["x"]
        out = outputs["out"]
        inputs["kept"] = (out != 0) if out.shape == x.shape else np.ones_like(x, dtype=bool)
    if not is_backward:
        expected = reference_forward(op, inputs) if not error else {}
        ratios = {k: _compare(outputs.get(k), v) for k, v in expected.items()}
        return LayerExample(op, inputs, None, expected, outputs, ratios, error, warns)
    expected = reference_backward(forward, inputs, dout)
    if error:
        return LayerExample(op, inputs, dout, expected, {}, {}, f"your {forward} failed first: {error}", warns)
    result, error, warns2 = _call(fns[op], dout, cache)
    actual, _, problem = ({}, None, error) if error else _unpack(op, result, inputs, {})
    ratios = {k: _compare(actual.get(k), v) for k, v in expected.items()}
    return LayerExample(op, inputs, dout, expected, actual, ratios, error or problem, warns + warns2)


def _draw_inputs(op: str, data: Any) -> tuple[dict[str, Any], np.ndarray | None]:
    """The forward's inputs (and an upstream gradient for a backward), drawn by hypothesis."""
    from hypothesis import strategies as st

    forward, is_backward = LAYER_OPS[op]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    if forward == "batchnorm_forward":
        mode = "train" if is_backward else data.draw(st.sampled_from(("train", "test")), label="mode")
        N = data.draw(st.integers(2 if mode == "train" else 1, 6), label="N")
        D = data.draw(st.integers(1, 7), label="D")
        eps = data.draw(st.sampled_from((1e-5, 0.1)), label="eps")
        x = rng.normal(rng.uniform(-2, 2), rng.uniform(0.5, 3), (N, D))
        inputs = {"x": x, "gamma": rng.uniform(0.5, 2, D), "beta": rng.normal(0, 1, D),
                  "bn_param": {"mode": mode, "eps": eps, "momentum": data.draw(st.sampled_from((0.1, 0.3))),
                               "running_mean": rng.normal(0, 1, D), "running_var": rng.uniform(0.5, 2, D)}}
    elif forward == "dropout_forward":
        mode = "train" if is_backward else data.draw(st.sampled_from(("train", "test")), label="mode")
        N, D = data.draw(st.integers(1, 8), label="N"), data.draw(st.integers(8, 40), label="D")
        p = data.draw(st.sampled_from((0.2, 0.3, 0.5, 0.7)), label="p")
        x = rng.uniform(0.5, 2, (N, D)) * rng.choice((-1, 1), (N, D))          # no zeros: a drop shows
        inputs = {"x": x, "dropout_param": {"p": p, "mode": mode, "seed": int(rng.integers(0, 2**31)),
                                            "mask": rng.uniform(size=(N, D)) >= p}}
    elif forward == "conv2d_forward":
        N, C, F = (data.draw(st.integers(1, 3), label=k) for k in ("N", "C", "F"))
        H, W = data.draw(st.integers(1, 7), label="H"), data.draw(st.integers(1, 7), label="W")
        pad = data.draw(st.integers(0, 2), label="pad")
        HH = data.draw(st.integers(1, min(4, H + 2 * pad)), label="HH")
        # square kernels half the time: where a transposed kernel gradient has the right shape
        square = HH <= W + 2 * pad and data.draw(st.booleans(), label="square")
        WW = HH if square else data.draw(st.integers(1, min(4, W + 2 * pad)), label="WW")
        stride = data.draw(st.integers(1, 3), label="stride")
        inputs = {"x": rng.normal(size=(N, C, H, W)), "w": rng.normal(size=(F, C, HH, WW)),
                  "b": rng.normal(size=F), "conv_param": {"stride": stride, "pad": pad}}
    else:
        N, C = data.draw(st.integers(1, 3), label="N"), data.draw(st.integers(1, 3), label="C")
        H, W = data.draw(st.integers(1, 7), label="H"), data.draw(st.integers(1, 7), label="W")
        ph, pw = data.draw(st.integers(1, H), label="ph"), data.draw(st.integers(1, W), label="pw")
        stride = data.draw(st.integers(1, 3), label="stride")
        ties = data.draw(st.booleans(), label="ties")
        x = rng.integers(0, 3, (N, C, H, W)).astype(np.float64) if ties else rng.normal(size=(N, C, H, W))
        inputs = {"x": x, "pool_param": {"pool_height": ph, "pool_width": pw, "stride": stride}}
    dout = None
    if is_backward:
        shape = reference_forward(forward, {**inputs, "kept": np.ones_like(inputs["x"], dtype=bool)})["out"].shape
        dout = rng.uniform(0.25, 2, shape) * rng.choice((-1, 1), shape)
    return inputs, dout


def explore(fns: Mapping[str, Callable[..., Any]], op: str, max_examples: int = 30,
            seed: int | None = None) -> list[LayerExample]:
    """Every example hypothesis draws for ``op``, kept (the checker never raises inside ``@given``)."""
    from .drawing import draw_examples

    collected: list[LayerExample] = []

    def draw(data: Any) -> None:
        inputs, dout = _draw_inputs(op, data)
        collected.append(run_layer_example(fns, op, inputs, dout))

    draw_examples(draw, max_examples=max_examples, seed=seed)
    return collected


# --------------------------------------------------------------------------------------------
# Diagnosis and the report
# --------------------------------------------------------------------------------------------

@dataclass
class LayerFinding:
    """One root cause: ``op``, the ``output`` it shows in, ``key`` (a :data:`LAYER_MISTAKES` key,
    ``factor``, ``raised``, ``shape``, ``drop_rate`` or ``unrecognised``), the words, the right formula,
    how many examples it explains and the worst example."""

    op: str
    output: str
    key: str
    words: str
    right: str
    examples: int
    worst: LayerExample | None = None

    def __str__(self) -> str:
        right = f"\n      right: {self.right}" if self.right else ""
        return f"{self.op} ({self.output}): {self.words} [{self.key}; {self.examples} example(s)]{right}"


def _close(actual: np.ndarray, model: np.ndarray, expected: np.ndarray) -> bool:
    if model.shape != actual.shape or not np.all(np.isfinite(model)):
        return False
    atol = TOL.atol * max(1.0, float(np.abs(expected).max(initial=0.0)) if expected.size else 1.0)
    return float(tol_ratios(actual, model, TOL.rtol, atol).max(initial=0.0)) <= LOOSE


def layer_mistakes(op: str | None = None) -> list[Mistake]:
    """The catalogue's entries for the layer op ``op`` (every layer op: ``None``)."""
    return [m for site in ((op,) if op else LAYER_OPS) for m in mistakes_at(site)]


def _model(m: Mistake, op: str, output: str, e: LayerExample) -> np.ndarray | None:
    """The mistake planted on the example's inputs: its ``output`` (None: the mistake leaves that
    output alone; empty where it has no result there: a stride of 0, a kernel larger than the input
    with one padding less)."""
    try:
        changed = m.plant(op, Site(layer=e.inputs, dout=e.dout))
    except (RuntimeError, ValueError):
        return np.full((0,), np.nan)
    return None if output not in changed else np.asarray(changed[output], dtype=np.float64)


def _diagnose_output(op: str, output: str, failing: list[LayerExample]) -> LayerFinding:
    worst = max(failing, key=lambda e: e.ratios.get(output, 0.0))
    for m in mistakes_at(op):
        # the mistake must explain every failing example it has a result on, and those must be most
        # of them (stride − 1 has none at stride 1, pad − 1 none where the kernel outgrows the input)
        models = [(e, _model(m, op, output, e)) for e in failing]
        if any(model is None for _, model in models):
            continue
        defined = [(e, model) for e, model in models if model.size]
        if 2 * len(defined) >= len(failing) and all(_close(e.actual[output], model, e.expected[output])
                                                    for e, model in defined):
            return LayerFinding(op, output, m.key, m.what(), m.right_for(), len(defined), worst)
    shapes = {(e.actual[output].shape, e.expected[output].shape) for e in failing}
    if any(a != b for a, b in shapes):
        a, b = next((a, b) for a, b in shapes if a != b)
        return LayerFinding(op, output, "shape", f"your {output} has shape {a}, torch's {b}",
                            "see the shapes in the module docstring", len(failing), worst)
    ks = []
    for e in failing:
        a, b = e.actual[output].ravel(), e.expected[output].ravel()
        ks.append(float(a @ b / (b @ b)) if b @ b else float("nan"))
    k = ks[0]
    if np.isfinite(k) and all(_close(e.actual[output], k * e.expected[output], e.expected[output]) for e in failing):
        return LayerFinding(op, output, "factor", f"off by a constant factor: yours = {k:.6g} × torch's", "",
                            len(failing), worst)
    return LayerFinding(op, output, "unrecognised", "wrong, in a way none of the known mistakes explains "
                        f"(worst tol_ratio {worst.ratios.get(output, float('inf')):.3g})", "", len(failing), worst)


def _by_mode(examples: list[LayerExample]) -> list[list[LayerExample]]:
    """Training-mode and test-mode examples apart (their mistakes differ)."""
    def mode(e: LayerExample) -> str:
        param = e.inputs.get("bn_param") or e.inputs.get("dropout_param") or {}
        return param.get("mode", "")

    groups: dict[str, list[LayerExample]] = {}
    for e in examples:
        groups.setdefault(mode(e), []).append(e)
    return list(groups.values())


def _drop_rate(examples: list[LayerExample]) -> LayerFinding | None:
    """Pooled over the training-mode dropout examples: is the fraction dropped p (5 σ of a binomial)?"""
    train = [e for e in examples if not e.error and e.inputs["dropout_param"]["mode"] == "train"]
    if not train:
        return None
    n = sum(e.inputs["x"].size for e in train)
    dropped = sum(int((~e.inputs["kept"]).sum()) for e in train)
    expected = sum(e.inputs["x"].size * e.inputs["dropout_param"]["p"] for e in train)
    var = sum(e.inputs["x"].size * e.inputs["dropout_param"]["p"] * (1 - e.inputs["dropout_param"]["p"])
              for e in train)
    if abs(dropped - expected) <= 5 * np.sqrt(var):
        return None
    keep_as_p = sum(e.inputs["x"].size * (1 - e.inputs["dropout_param"]["p"]) for e in train)
    if abs(dropped - keep_as_p) <= 5 * np.sqrt(var):
        entry = BY_KEY["dropout_p_as_keep"]
        return LayerFinding("dropout_forward", "out", entry.key,
                            f"{entry.what()}: {dropped / n:.3f} of the elements dropped where torch drops "
                            f"{expected / n:.3f}", entry.right_for(), len(train), max(train, key=lambda e: e.tol_ratio))
    return LayerFinding("dropout_forward", "out", "drop_rate",
                        f"drops {dropped / n:.3f} of the elements where p says {expected / n:.3f}",
                        "drop each element independently with probability p", len(train), train[0])


@dataclass
class LayerReport:
    """What :func:`check_layer_ops` found: ``rows`` (op: examples, failures, worst tol_ratio, seconds),
    ``findings`` (root causes, one per wrong output of an op) and ``missing`` (ops not given)."""

    rows: list[dict[str, Any]]
    findings: list[LayerFinding]
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def keys(self) -> set[str]:
        return {f.key for f in self.findings}

    def __str__(self) -> str:
        lines = [f"{r['op']:<20} {r['examples']:>3} examples  {r['failed']:>3} failed  worst tol_ratio "
                 f"{r['worst']:.3g}  ({r['seconds']:.2f} s)" for r in self.rows]
        lines += [f"  {i}. {f}" for i, f in enumerate(self.findings, 1)]
        if self.missing:
            lines.append("not given: " + ", ".join(self.missing))
        return "\n".join(lines)

    def assert_ok(self) -> None:
        if not self.ok:
            raise AssertionError("layer ops disagree with torch:\n" + str(self))


def check_layer_ops(source: Any, *, max_examples: int = 30, seed: int | None = None) -> LayerReport:
    """Check every layer op ``source`` gives (see the module docstring) and name what is wrong."""
    fns = load_layer_ops(source)
    rows, findings, missing = [], [], []
    for op in LAYER_OPS:
        forward, is_backward = LAYER_OPS[op]
        if op not in fns or forward not in fns:
            if op not in fns:
                missing.append(op)
            else:
                missing.append(f"{op} (needs {forward} for its cache)")
            continue
        start = time.perf_counter()
        examples = explore(fns, op, max_examples, seed)
        failing = [e for e in examples if e.failed]
        rows.append({"op": op, "examples": len(examples), "failed": len(failing),
                     "worst": max((e.tol_ratio for e in examples), default=0.0),
                     "seconds": time.perf_counter() - start})
        raised = [e for e in failing if e.error]
        if raised:
            findings.append(LayerFinding(op, "-", "raised", raised[0].error, "", len(raised), raised[0]))
            failing = [e for e in failing if not e.error]
        found: dict[str, LayerFinding] = {}
        for output in OUTPUTS[op]:
            wrong = [e for e in failing if e.ratios.get(output, 0.0) > 1.0]
            for group in _by_mode(wrong):
                finding = _diagnose_output(op, output, group)
                if finding.key in found and finding.key in BY_KEY:   # one mistake, several outputs: one cause
                    if output not in found[finding.key].output.split(", "):
                        found[finding.key].output += f", {output}"
                    found[finding.key].examples = max(found[finding.key].examples, finding.examples)
                else:
                    found[f"{finding.key}:{output}" if finding.key not in BY_KEY else finding.key] = finding
        findings += found.values()
        if op == "dropout_forward":
            rate = _drop_rate(examples)
            if rate is not None and rate.key not in {f.key for f in findings}:
                findings.append(rate)
    return LayerReport(rows, findings, missing)
