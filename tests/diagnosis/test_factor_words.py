"""The words a fitted factor ``yours = k × torch's`` is named with: which divisor torch's reduction
uses, which one the learner's code used, and the ½ or 2 on top — exact, since they are what a learner
reads (N = 5 the batch size, C = 3 the outputs, so no two named factors coincide)."""

from __future__ import annotations

from scratchnet_reference.diagnosis.factors import expression_words, mean_divisor, name_factor

TAIL = " (N = 5 the batch size, C = 3 the outputs)"


def test_a_sum_where_torch_takes_the_mean_is_named_as_a_divisor_with_its_factor_two():
    """MSE mean divides by N·C: a summed loss with a 2 on top is 30 = N·C·2, named as the sum."""
    assert name_factor(30.0, 5, 3, "mse", "mean") == (
        "N · C · 2" + TAIL,
        "your loss's gradient is that of a sum, where torch's reduction='mean' for mse divides by N·C; "
        "your gradient has a factor 2 torch's does not")


def test_a_sum_with_a_half_for_cross_entropy_is_named_as_a_divisor_with_its_half():
    """Cross-entropy mean divides by N only: a summed loss with a ½ is N/2."""
    assert name_factor(2.5, 5, 3, "cross_entropy", "mean") == (
        "N · 1/2" + TAIL,
        "your loss's gradient is that of a sum, where torch's reduction='mean' for cross_entropy divides by N; "
        "your gradient is half of torch's (a ½ too many)")


def test_a_factor_outside_the_divisor_model_names_the_extra_n_or_the_c_summed_over():
    assert name_factor(0.2, 5, 3, "cross_entropy", "mean") == (
        "1/N" + TAIL, "your gradient divides by N once more than torch's mean")
    assert name_factor(3.0, 5, 3, "cross_entropy", "mean") == ("C" + TAIL, "your gradient sums over the C outputs")


def test_expression_words_name_the_batch_the_elements_and_the_sign():
    assert expression_words((-1, 1, 0, 0), "mse", "sum", 5, 3) == (
        "yours is N times torch's (N = 5, the batch size); and the sign is flipped")
    assert expression_words((1, 1, 0, 0), "cross_entropy", "mean", 5, 3) == (
        "yours is the sum over the batch: torch's mean divides by N (= 5 here)")
    assert expression_words((1, 1, 1, 0), "mse", "mean", 5, 3) == (
        "you sum over all N·C elements where torch's mean divides by N·C (= 15 here)")
    assert expression_words((1, 0, -1, 0), "mse", "mean", 5, 3) == "you divide by C (= 3 columns) where torch does not"


def test_torch_mean_divides_elementwise_losses_by_every_element_and_the_others_by_n():
    assert (mean_divisor("mse"), mean_divisor("nll")) == ("N·C (every element)", "N (the batch size)")
