"""An op-level factor is named at the site it is in: the dense backward's weight or bias gradient
(``dense_backward (dW)`` / ``(db)``), or a loss, against torch's value computed with the divisor
torch's mean uses for that loss (cross-entropy: N, not N·C)."""

from __future__ import annotations

import numpy as np
from scratchnet_reference.byo.ops import check_ops


def findings(ops):
    report = check_ops(ops, max_examples=8, timeout=None)
    assert not report.ok
    return [(c.kind, c.where, c.what) for c in report.findings]


def test_a_doubled_weight_gradient_is_named_at_dense_backward_dw():
    assert findings({"dense_backward": lambda x, W, b, g: (g @ W, 2 * (g.T @ x), g.sum(axis=0))}) == [
        ("factor", "dense_backward (dW)", "yours = 2 × torch's: an extra factor 2")]


def test_a_doubled_bias_gradient_is_named_at_dense_backward_db():
    assert findings({"dense_backward": lambda x, W, b, g: (g @ W, g.T @ x, 2 * g.sum(axis=0))}) == [
        ("factor", "dense_backward (db)", "yours = 2 × torch's: an extra factor 2")]


def test_a_doubled_cross_entropy_is_two_times_torchs_mean_over_the_batch():
    def cross_entropy(p, y, reduction="mean"):
        total = -(y * np.log(p)).sum()
        return 2 * (total / p.shape[0] if reduction == "mean" else total)

    assert findings({"cross_entropy": cross_entropy}) == [
        ("factor", "cross_entropy", "yours = 2 × torch's: an extra factor 2")]


def test_a_dense_factor_in_the_in_out_layout_gives_the_right_formula_in_that_layout():
    from scratchnet_reference.diagnosis.ops import DENSE_RIGHT_IN_OUT

    ops = {"WEIGHT_LAYOUT": "in_out", "dense_backward": lambda x, W, b, g: (g @ W.T, 2 * (x.T @ g), g.sum(axis=0))}
    report = check_ops(ops, max_examples=8, timeout=None)
    assert [(c.where, c.right) for c in report.findings] == [("dense_backward (dW)", DENSE_RIGHT_IN_OUT)]
