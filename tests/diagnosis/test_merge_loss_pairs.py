"""A loss and its gradient wrong by the same named factor, the gradient being the exact derivative
of the learner's own loss, are one root cause naming both ops; any other pair stays two causes."""

from __future__ import annotations

from scratchnet_reference.diagnosis.causes import RootCause
from scratchnet_reference.diagnosis.ops import _merge_loss_pairs

VALUE = RootCause("factor", "yours = 1/2 × torch's", "value ratio 0.5", op="mse", factor=0.5, factor_name="1/2")


def gradient(factor_name="1/2", own_loss_consistent=True):
    return RootCause("factor", "yours = 1/2 × torch's", "gradient ratio 0.5", op="mse_grad", factor=0.5,
                     factor_name=factor_name, own_loss_consistent=own_loss_consistent)


def test_a_half_in_the_loss_and_its_gradient_is_one_cause_naming_both_ops():
    [merged] = _merge_loss_pairs([VALUE, gradient()])
    assert merged.op == "mse and mse_grad"
    assert merged.evidence == "value ratio 0.5; mse_grad: gradient ratio 0.5"


def test_a_gradient_with_another_factor_or_not_its_losss_derivative_stays_its_own_cause():
    assert _merge_loss_pairs([VALUE, gradient(factor_name="N")]) == [VALUE, gradient(factor_name="N")]
    inconsistent = gradient(own_loss_consistent=False)
    assert _merge_loss_pairs([VALUE, inconsistent]) == [VALUE, inconsistent]
