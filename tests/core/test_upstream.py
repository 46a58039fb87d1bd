"""Upstream gradients are drawn, never uniform (the rule stated in :func:`tests.core.helpers.upstream`).

A check that back-propagates ones (or differentiates a ``.sum()`` loss) cannot see a row-wise VJP's
second term: softmax's ``a ⊙ (g − ⟨g, a⟩)`` is 0 for every constant ``g``, so a softmax backward that
subtracts the row *mean* of ``g`` instead of ``⟨g, a⟩`` passes it. This file shows the drawn upstream
catching that bug where ones do not, and holds the VJP checks of the test suite and the harness to the
rule by reading their source.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from scratchnet.activations import Softmax
from scratchnet.gradcheck import numerical_vjp

from .helpers import upstream

ROOT = Path(__file__).resolve().parents[2]


class MeanSoftmax(Softmax):
    """``a ⊙ (g − mean(g))``: right for every uniform upstream, wrong for any other."""

    def backward(self, z, a, grad):
        return a * (grad - grad.mean(axis=1, keepdims=True))


def vjp_error(act, z, g) -> float:
    return float(np.abs(act.backward(z, act.forward(z), g) - numerical_vjp(act.forward, z, g, rowwise=True)).max())


def test_a_uniform_upstream_cannot_see_a_wrong_softmax_vjp_and_a_drawn_one_does():
    z = np.random.default_rng(3).normal(size=(4, 5))
    wrong = MeanSoftmax()
    assert vjp_error(wrong, z, np.ones_like(z)) < 1e-9           # vacuous: passes with ones
    assert vjp_error(wrong, z, upstream(z.shape)) > 1e-2          # caught with a drawn upstream
    assert vjp_error(Softmax(), z, upstream(z.shape)) < 1e-8


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_upstream_is_drawn_non_uniform_nonzero_and_reproducible(dtype):
    g = upstream((6, 7), dtype)
    assert g.dtype == dtype and g.shape == (6, 7)
    assert np.all(np.abs(g) >= 0.5) and np.all(np.abs(g) <= 2.0)
    assert np.any(g > 0) and np.any(g < 0)
    assert np.all(np.ptp(g, axis=1) > 0)                             # no uniform row
    np.testing.assert_array_equal(g, upstream((6, 7), dtype))
    assert not np.array_equal(g, upstream((6, 7), dtype, seed=1))


#: the VJP-taking calls: scratchnet's backward and its in-place twin, the finite-difference VJP,
#: torch's autograd with grad_outputs
VJP_CALLS = {"backward": 2, "backward_into": 2, "numerical_vjp": 2, "grad": 2}
UNIFORM = {"ones_like", "ones", "full_like", "full"}
#: where the rule is held: the core and harness tests, the hot-path tests, and the harness's core
SCANNED = ["tests/core", "tests/reference", "tests/conformance", "tests/test_hot_path.py", "reference/core"]


def _uniform_upstreams(path: Path) -> list[str]:
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name == "backward" and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Call) \
                and getattr(node.func.value.func, "attr", "") == "sum":
            # torch's `.sum().backward()`: differentiates a uniform upstream
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: .sum().backward()")
            continue
        if name not in VJP_CALLS:
            continue
        position = VJP_CALLS[name]
        args = node.args[position:position + 1] + [k.value for k in node.keywords
                                                      if k.arg in ("grad", "grad_outputs", "g")]
        for arg in args:
            if isinstance(arg, ast.Call):
                called = arg.func.attr if isinstance(arg.func, ast.Attribute) else getattr(arg.func, "id", "")
                if called in UNIFORM:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}(…, {called}(…))")
    return found


def test_no_vjp_check_back_propagates_a_uniform_upstream():
    paths = []
    for entry in SCANNED:
        p = ROOT / entry
        paths += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    assert len(paths) > 20
    found = [hit for path in paths if path.name != "test_upstream.py" for hit in _uniform_upstreams(path)]
    assert not found, "uniform upstream gradients (use tests.core.helpers.upstream):\n" + "\n".join(found)


def test_the_scan_sees_a_uniform_upstream(tmp_path):
    """The source check itself has teeth: each form it looks for is found."""
    sample = tmp_path / "sample.py"
    sample.write_text("act.backward(z, a, np.ones_like(z))\n"
                      "act.backward_into(z, a, np.full_like(z, 2.0), out)\n"
                      "numerical_vjp(f, z, np.ones(z.shape))\n"
                      "torch.autograd.grad(out, zt, torch.ones_like(out))\n"
                      "torch.autograd.grad(out, zt, grad_outputs=torch.ones_like(out))\n"
                      "loss.sum().backward()\n"
                      "act.backward(z, a, upstream(z.shape))\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert len(_uniform_upstreams(sample)) == 6
    finally:
        ROOT = saved
