"""Reproducers that run: for one failing record, a Python snippet with its imports, its data, the
user's own call, torch's expected values and an assertion — paste it into a file or a test and it
fails exactly as the record did, and passes once the mistake is fixed.

The data are literal where small (``x`` up to :data:`LITERAL` numbers, expected values up to
:data:`LITERAL_EXPECTED`) and otherwise rebuilt by the seeded calls that made them
(:func:`~scratchnet_reference.core.matrix.make_batch`, :func:`~scratchnet_reference.core.protocol.initial_state`,
the kink and large-logit transforms of :mod:`~scratchnet_reference.core.batches`); torch's expected
values are then computed in the snippet by :func:`torch_expected`, which runs the very oracle that
judged the record (torch in the record's flavour, or the second oracle of ``record.oracle``).

The assertion is the record's own: ``np.testing.assert_allclose`` with its ``rtol`` and its
``atol`` (noise floor included) for a tensor; for the ``inputs`` check, that the arrays handed to
the call come back unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from scratchnet import ModelSpec

from .boundary import INPUTS_CHECK
from .protocol import initial_state

__all__ = ["reproducer", "torch_expected", "remember_ref", "ref_of", "LITERAL", "LITERAL_EXPECTED"]

#: Where ``load_implementation`` lives (what ``--impl`` resolves with).
ADAPTER_MODULE = "scratchnet_reference.core.adapter"
#: Inputs with at most this many numbers are written out; larger ones are rebuilt by seeded calls.
LITERAL = 400
#: Expected tensors with at most this many numbers are written out; larger ones are computed by torch.
LITERAL_EXPECTED = 64


#: id(implementation) -> (the implementation, the ``--impl`` text it was loaded from)
_REFS: dict[int, tuple[Any, str]] = {}


def remember_ref(impl: Any, text: str) -> None:
    """Note that ``impl`` was loaded from ``text`` (``module:factory``), for its reproducers."""
    _REFS[id(impl)] = (impl, text)


def ref_of(impl: Any) -> str | None:
    """The ``--impl`` text ``impl`` (or the implementation a guard wraps) was loaded from, if known."""
    for obj in (impl, getattr(impl, "inner", None), getattr(impl, "unguarded", None)):
        held = _REFS.get(id(obj)) if obj is not None else None
        if held is not None and held[0] is obj:
            return held[1]
    return None


def torch_expected(spec: ModelSpec, state: Mapping[str, np.ndarray], x: Any, y: Any, flavour: str = "modular",
                   oracle: str = "torch") -> dict[str, Any]:
    """``{"output": …, "loss": …, "layers.{k}.weight": …}`` as the oracle ``oracle`` computes them
    (:data:`~scratchnet_reference.core.records.ORACLES`) for a record of ``flavour``."""
    from .compare import prepare_batch, stable_forward_backward, torch_forward_backward
    from .mapping import to_tensor
    from .torch_model import build_torch_model

    xs, target = prepare_batch(spec, x, y)
    if oracle == "torch_stable_float64":
        result = stable_forward_backward(spec, state, xs, target, "cpu")
    else:
        judged = spec.replace(dtype="float64") if oracle == "torch_float64" else spec
        flavour = "fused" if oracle in ("torch_fused", "torch_stable") else flavour
        xj, tj = prepare_batch(judged, xs, target)
        model = build_torch_model(judged, {k: np.asarray(v, dtype=judged.dtype) for k, v in state.items()})
        dtype = model.layers[0].weight.dtype
        result = torch_forward_backward(model, judged, flavour, to_tensor(xj, "cpu", dtype),
                                        to_tensor(tj, "cpu", dtype))
    return {"output": result.output, "loss": result.loss, **result.grads}


def _array(v: Any) -> str:
    arr = np.asarray(v)
    return f"np.array({arr.tolist()!r}, dtype=np.{arr.dtype})"


def _batch_lines(spec: ModelSpec, state: Mapping[str, np.ndarray], x: Any, y: Any, batch: str,
                 seed: int, n: int, target: str) -> list[str] | None:
    """The seeded calls that rebuild ``(state, x, y)`` exactly, or ``None`` when they do not."""
    from .batches import kink_problem, large_logit_problem
    from .matrix import make_batch

    x0, y0 = make_batch(spec, n, seed=seed, target=target)
    init = initial_state(spec)
    made = {"random": (init, x0, y0)}
    if batch == "kink":
        made["kink"] = kink_problem(spec, init, x0, y0)
    if batch == "large_logits":
        made["large_logits"] = large_logit_problem(spec, init, x0, y0)
    want = made.get(batch)
    if want is None:
        return None
    s, xb, yb = want
    same = (np.array_equal(np.asarray(xb), np.asarray(x)) and np.array_equal(np.asarray(yb), np.asarray(y))
            and all(np.array_equal(np.asarray(s[k]), np.asarray(v)) for k, v in state.items()))
    if not same:
        return None
    lines = [f"x, y = make_batch(spec, {n}, seed={seed}, target={target!r})", "state = initial_state(spec)"]
    if batch == "kink":
        lines.append("state, x, y = kink_problem(spec, state, x, y)   # hidden biases 0, every other row of x 0")
    if batch == "large_logits":
        lines.append("state, x, y = large_logit_problem(spec, state, x, y)   # output layer scaled: logits ±1000")
    return lines


def reproducer(record: Any, spec: ModelSpec, state: Mapping[str, np.ndarray], x: Any, y: Any, *,
               impl: str | None = None, seed: int | None = None, target: str = "labels") -> str:
    """The snippet for ``record`` (one tensor of one comparison) on the problem ``(spec, state, x, y)``.

    ``impl``: how to load the implementation (``module:factory`` or ``path.py:factory``, as ``--impl``
    takes it); without it the snippet uses a name ``impl`` the reader defines (a comment says how).
    ``seed``/``target``: how the matrix made the batch (tried before writing the data out)."""
    xs = np.asarray(x)
    imports = ["import numpy as np", "from scratchnet import ModelSpec",
               f"from {ADAPTER_MODULE} import load_implementation",
               "from scratchnet_reference.core.compare import prepare_batch",
               "from scratchnet_reference.core.reproducer import torch_expected"]
    body = [f"spec = ModelSpec.from_json({spec.to_json()!r})"]
    rebuilt = None
    if xs.size > LITERAL:
        rebuilt = _batch_lines(spec, state, x, y, record.batch or "random", spec.seed if seed is None else seed,
                               len(xs), target)
    if rebuilt is not None:
        imports += ["from scratchnet_reference.core.matrix import make_batch",
                    "from scratchnet_reference.core.protocol import initial_state"]
        if record.batch in ("kink", "large_logits"):
            imports.append(f"from scratchnet_reference.core.batches import "
                           f"{'kink_problem' if record.batch == 'kink' else 'large_logit_problem'}")
        body += rebuilt
    else:
        init = initial_state(spec)
        changed = [k for k, v in state.items() if not np.array_equal(init[k], np.asarray(v))]
        if len(changed) < len(state):
            imports.append("from scratchnet_reference.core.protocol import initial_state")
            body.append("state = initial_state(spec)")
            body += [f"state[{k!r}] = {_array(state[k])}" for k in changed]
        else:
            body.append("state = {" + ", ".join(f"{k!r}: {_array(v)}" for k, v in state.items()) + "}")
        body += [f"x = {_array(x)}", f"y = {_array(y)}"]
    body.append(f"impl, _ = load_implementation({impl!r})" if impl else
                "# impl: your implementation, e.g. impl, _ = load_implementation('mynet.adapter:make_implementation')")
    body.append("model = impl.build(spec, {k: v.copy() for k, v in state.items()})")
    body.append("xs, target = prepare_batch(spec, x, y)   # y in the form torch's loss takes")
    where = f"{record.check} {record.param}".strip()
    if record.check == INPUTS_CHECK:
        body += ["x_given, y_given = xs.copy(), target.copy()",
                 "model.forward(x_given)",
                 "model.loss_and_grads(x_given, y_given)",
                 "assert np.array_equal(x_given, xs), 'your forward or loss_and_grads modified x in place'",
                 "assert np.array_equal(y_given, target), 'your loss_and_grads modified y in place'"]
    else:
        value = {"forward": "output", "loss": "loss"}.get(record.check, record.param)
        call = ("np.asarray(model.forward(xs.copy()))" if record.check == "forward" else
                "model.loss_and_grads(xs.copy(), target.copy())[0]" if record.check == "loss" else
                f"np.asarray(model.loss_and_grads(xs.copy(), target.copy())[1][{record.param!r}])")
        expected = torch_expected(spec, state, x, y, record.flavour, record.oracle or "torch")[value]
        judged = f"flavour={record.flavour!r}, oracle={(record.oracle or 'torch')!r}"
        if np.size(expected) <= LITERAL_EXPECTED:
            body.append(f"expected = {_array(expected)}   # torch ({judged})")
        else:
            body.append(f"expected = torch_expected(spec, state, x, y, {judged})[{value!r}]   # torch")
        body.append(f"yours = {call}")
        body.append('assert np.shape(yours) == np.shape(expected), '
                    'f"yours has shape {np.shape(yours)}, torch\'s {np.shape(expected)}"')
        atol = float(record.atol) + float(record.noise_floor)
        body.append(f"np.testing.assert_allclose(yours, expected, rtol={float(record.rtol)!r}, atol={atol!r}, "
                    f"err_msg={where!r})")
    batch = f", batch {record.batch}" if record.batch else ""
    head = (f"# reproduces: {where} of {record.impl}, {record.hidden} → {record.output} + {record.loss} "
            f"({record.reduction}, {record.flavour}) {record.dtype}{batch}")
    return "\n".join([head, *imports, "", *body]) + "\n"
