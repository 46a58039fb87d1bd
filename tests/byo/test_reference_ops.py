"""core/reference_ops: torch's version of every op, with the learner's signature — checked against the
closed forms, and every name in the table callable."""

from __future__ import annotations

import numpy as np
import pytest
from scratchnet_reference.core.reference_ops import OPS, reference_op

RNG = np.random.default_rng(0)
Z, G = RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4))
LABELS = np.array([0, 3, 1])
Y = np.eye(4)[LABELS]


def closed_softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_softmax_vjp_and_cross_entropy_match_their_closed_forms():
    s = reference_op("softmax")(Z)
    np.testing.assert_allclose(s, closed_softmax(Z), rtol=1e-12)
    np.testing.assert_allclose(reference_op("softmax_backward")(Z, s, G), s * (G - (G * s).sum(1, keepdims=True)),
                               rtol=1e-12, atol=1e-15)
    for target in (Y, LABELS):
        assert reference_op("cross_entropy")(s, target) == pytest.approx(-np.log(s[[0, 1, 2], LABELS]).mean())
        assert reference_op("cross_entropy")(s, target, reduction="sum") == pytest.approx(
            -np.log(s[[0, 1, 2], LABELS]).sum())
    np.testing.assert_allclose(reference_op("cross_entropy_grad")(s, Y), -Y / s / 3, rtol=1e-12)
    np.testing.assert_allclose(reference_op("softmax_cross_entropy_grad")(Z, Y), (s - Y) / 3, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(reference_op("mse_grad")(Z, G), 2 * (Z - G) / Z.size, rtol=1e-12)


def test_kinks_are_torchs_and_params_reach_the_op():
    z = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(reference_op("relu_backward")(z, None, np.ones_like(z)), [[0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(reference_op("leaky_relu_backward", negative_slope=0.2)(z, None, np.ones_like(z)),
                                  [[0.2, 0.2, 1.0]])


@pytest.mark.parametrize("layout", ["out_in", "in_out"])
def test_dense_in_both_layouts(layout):
    x, W, b = RNG.normal(size=(3, 2)), RNG.normal(size=(4, 2)), RNG.normal(size=4)
    weight = W if layout == "out_in" else W.T
    np.testing.assert_allclose(reference_op("dense_forward", layout=layout)(x, weight, b), x @ W.T + b, rtol=1e-12)
    dx, dW, db = reference_op("dense_backward", layout=layout)(x, weight, b, G)
    np.testing.assert_allclose(dx, G @ W, rtol=1e-12)
    np.testing.assert_allclose(dW, G.T @ x if layout == "out_in" else x.T @ G, rtol=1e-12)
    np.testing.assert_allclose(db, G.sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("name", list(OPS))
def test_every_op_in_the_table_runs_with_its_signature(name):
    op = OPS[name]
    p = {"cross_entropy": closed_softmax(Z), "nll": np.log(closed_softmax(Z)),
         "binary_cross_entropy": 1 / (1 + np.exp(-Z))}.get(op.base, Z)
    args = {"z": Z, "a": None, "g": G, "p": p, "y": Y, "x": Z, "W": G, "b": np.ones(3)}
    if op.role == "backward" and op.family == "activation":
        args["a"] = reference_op(op.base)(Z)
    if name == "dense_backward":
        args["g"] = G[:, :3]
    out = reference_op(name)(*(args[a] for a in op.args))
    if op.family in ("loss", "fused") and op.role == "forward":
        assert isinstance(out, float) and np.isfinite(out)
    else:
        assert all(np.all(np.isfinite(o)) for o in (out if isinstance(out, tuple) else (out,)))


def test_unknown_name_gets_the_closest():
    with pytest.raises(ValueError, match="unknown op 'softmax_backwards'; did you mean softmax_backward"):
        reference_op("softmax_backwards")
