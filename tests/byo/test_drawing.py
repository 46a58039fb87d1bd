"""The op checks draw the same inputs for the same functions whatever else the process imported
(:mod:`scratchnet_reference.byo.drawing`): Hypothesis's pool of "local constants" — the literals of
every non-site-packages module loaded — is held empty while they draw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: a learner's module, with literals of its own (a wrong softmax backward, a batch norm)
LEARNER = '''
import numpy as np

EPS = 1.375e-3
SCALE = 2.71875


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_backward(z, a, g):
    return a * g * SCALE / 2.71875 - 0.015625 * a  # wrong: the cross term left out


def batchnorm_forward(x, gamma, beta, bn_param):
    mu, var = x.mean(axis=0), x.var(axis=0)
    xhat = (x - mu) / np.sqrt(var + bn_param.get("eps", EPS))
    return gamma * xhat + beta, (xhat, gamma, np.sqrt(var + bn_param.get("eps", EPS)))
'''

#: what one process imports besides: other literals, in the ranges the op checks draw from
EXTRA = '''
FLOATS = [{floats}]
INTEGERS = [{integers}]
'''

#: the child: imports the extra module, checks the learner's module (dense and layer ops), prints
#: every drawn input and the results as JSON
CHILD = '''
import importlib, json, sys
import numpy as np
sys.path[:0] = [sys.argv[1]]
importlib.import_module(sys.argv[2])
if sys.argv[3] == "unheld":  # the control: the pool left as Hypothesis fills it
    import contextlib
    from scratchnet_reference.byo import drawing
    drawing.strategies_alone = contextlib.nullcontext
from scratchnet_reference.byo import layer_ops, ops
learner = importlib.import_module("learner_mod")
user = ops.load_ops({"softmax": learner.softmax, "softmax_backward": learner.softmax_backward})
drawn = [[np.asarray(v).tolist() for v in e.inputs.values()]
         for e in ops._explore("softmax_backward", user, "-", None, "float64", 25, None)]
layer = [np.asarray(e.inputs["x"]).tolist()
         for e in layer_ops.explore({"batchnorm_forward": learner.batchnorm_forward}, "batchnorm_forward", 15)]
report = ops.check_ops(user, max_examples=25)
print(json.dumps({"drawn": drawn, "layer": layer, "rows": report.rows,
                  "findings": [(f.kind, f.op, f.factor) for f in report.findings]}))
'''


def _run(tmp_path: Path, name: str, floats: str, integers: str, mode: str = "held") -> dict:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "learner_mod.py").write_text(LEARNER)
    (folder / f"{name}_extra.py").write_text(EXTRA.format(floats=floats, integers=integers))
    (folder / "child.py").write_text(textwrap.dedent(CHILD))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, str(folder / "child.py"), str(folder), f"{name}_extra", mode],
                          cwd=tmp_path, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_same_functions_same_draws_whatever_else_is_imported(tmp_path):
    one = _run(tmp_path, "one", "0.333251953125, -1.75, 3.96875, 1e-3", "7, 123456789, 4000000000")
    two = _run(tmp_path, "two", "-0.0009765625, 2.125, -3.5, 0.6640625", "11, 987654321, 31337")
    assert one["drawn"] and one["layer"]
    assert one == two, "the op checks drew different inputs in two processes that imported different modules"
    assert one["findings"], "the wrong softmax_backward is found (the comparison is of real results)"


def test_the_control_differs_where_the_pool_is_left_alone(tmp_path):
    """Without the pool held empty, the two processes draw differently: the test above can fail."""
    one = _run(tmp_path, "one", "0.333251953125, -1.75, 3.96875, 1e-3", "7, 123456789, 4000000000", "unheld")
    two = _run(tmp_path, "two", "-0.0009765625, 2.125, -3.5, 0.6640625", "11, 987654321, 31337", "unheld")
    assert one["drawn"] != two["drawn"] or one["layer"] != two["layer"]


def test_without_the_internals_nothing_is_changed(monkeypatch):
    """A Hypothesis without ``_get_local_constants`` (or ``Constants``, or ``CONSTANTS_CACHE``): the
    draws run as Hypothesis makes them, nothing patched, nothing raised."""
    providers = pytest.importorskip("hypothesis.internal.conjecture.providers")
    from hypothesis import strategies as st
    from scratchnet_reference.byo import drawing

    for missing in ("_get_local_constants", "Constants", "CONSTANTS_CACHE"):
        with monkeypatch.context() as m:
            m.delattr(providers, missing)
            before = {k: getattr(providers, k, None) for k in ("_get_local_constants", "Constants")}
            seen: list[int] = []
            with drawing.strategies_alone() as held:
                assert held is False
                assert {k: getattr(providers, k, None) for k in before} == before
            drawing.draw_examples(lambda data, seen=seen: seen.append(data.draw(st.integers())), max_examples=5)
            assert len(seen) == 5
            assert {k: getattr(providers, k, None) for k in before} == before


def test_the_pool_is_restored_after_a_check():
    providers = pytest.importorskip("hypothesis.internal.conjecture.providers")
    from scratchnet_reference.byo import drawing

    original = providers._get_local_constants
    with drawing.strategies_alone() as held:
        assert held is True
        assert len(providers._get_local_constants()) == 0
    assert providers._get_local_constants is original
