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


def test_an_op_matching_no_mistake_is_unrecognised_with_a_reproducer():
    [cause] = check_ops({"relu": lambda z: z * z + 1.0}, max_examples=8, timeout=None).findings
    assert (cause.kind, cause.op) == ("unrecognised", "relu")
    assert cause.reproducer.startswith("# relu — forward:")


def test_an_op_raising_on_large_inputs_is_named_raised_with_the_smallest_example_to_reproduce():
    def relu(z):
        if np.abs(z).max() > 10:
            raise ValueError("too large for me")
        return np.maximum(z, 0)

    [cause] = check_ops({"relu": relu}, max_examples=8, timeout=None).findings
    assert cause.kind == "raised"
    assert cause.reproducer.startswith("# relu — forward:")


def test_a_doubled_loss_gradient_is_evidenced_on_dl_dp():
    def mse_grad(p, y, reduction="mean"):
        d = 2 * (p - y)
        return 2 * (d / p.size if reduction == "mean" else d)

    [cause] = check_ops({"mse_grad": mse_grad}, max_examples=8, timeout=None).findings
    assert cause.kind == "factor"
    assert cause.evidence.startswith("your dL/dp equals 2 × torch's on ")


def test_a_doubled_activation_derivative_is_evidenced_on_dl_dz():
    [cause] = check_ops({"relu_backward": lambda z, a, g: 2 * g * (z > 0)}, max_examples=8, timeout=None).findings
    assert cause.evidence.startswith("your dL/dz equals 2 × torch's on ")


def test_an_op_overflowing_only_on_large_inputs_is_named_overflow_with_a_reproducer():
    def tanh(z):
        e = np.exp(2 * z)
        return (e - 1) / (e + 1)

    with np.errstate(all="ignore"):
        [cause] = check_ops({"tanh": tanh}, max_examples=8, timeout=None).findings
    assert cause.kind == "overflow"
    assert cause.reproducer.startswith("# tanh — forward:")


def test_a_gradient_wrong_only_at_its_kink_names_where_the_kink_is():
    """The loss gradient's kink is at p = y (read per element), an activation's at z = 0 (per unit of g)."""
    def l1_grad(p, y, reduction="mean"):
        d = np.where(p >= y, 1.0, -1.0)
        return d / p.size if reduction == "mean" else d

    [loss] = check_ops({"l1_grad": l1_grad}, max_examples=15, timeout=None).findings
    [act] = check_ops({"relu_backward": lambda z, a, g: g * (z >= 0)}, max_examples=15, timeout=None).findings
    assert (loss.kind, act.kind) == ("kink", "kink")
    assert loss.evidence.endswith(" every one at exactly p = y; everything off the kink agrees")
    assert act.evidence.endswith(" every one at exactly z = 0; everything off the kink agrees")
