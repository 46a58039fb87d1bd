"""``second_call_ratio``: does a model's gradient depend on the calls before? ``None`` when a second
``loss_and_grads`` on the same batch gives the first's gradients back, the least-squares ``k`` of
``second ≈ k × first`` when it does not (2 for ``+=``), NaN when the second call's gradients cannot be
compared (missing, ``None``, non-finite)."""

from __future__ import annotations

import math

import numpy as np
from scratchnet_reference.core.boundary import second_call_ratio

from scratchnet import ModelSpec

SPEC = ModelSpec((2, 3, 2), hidden="tanh", output="softmax", loss="cross_entropy", seed=1)
GRADS = {"layers.0.weight": np.array([[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]]),
         "layers.0.bias": np.array([1.0, 2.0, -1.0])}


class Scripted:
    """An implementation whose model's n-th ``loss_and_grads`` call gives back ``answers[n]``."""

    def __init__(self, *answers):
        self.answers = answers

    def build(self, spec, state):
        answers = iter(self.answers)

        class Model:
            def loss_and_grads(self, x, y):
                return 0.5, next(answers)

        return Model()


def ratio(*answers):
    return second_call_ratio(Scripted(*answers), SPEC, {}, np.zeros((4, 2)), np.zeros(4, dtype=np.int64))


def test_the_same_gradients_twice_are_no_dependence():
    assert ratio(GRADS, {k: v.copy() for k, v in GRADS.items()}) is None


def test_gradients_added_to_the_last_call_give_k_two():
    assert ratio(GRADS, {k: 2 * v for k, v in GRADS.items()}) == 2.0
    assert ratio(GRADS, {k: -v for k, v in GRADS.items()}) == -1.0


def test_a_second_call_without_a_gradient_is_nan_not_an_error():
    """A ``None`` in the second call's gradients reads as NaN (float64 conversion), not a TypeError."""
    assert math.isnan(ratio(GRADS, {**GRADS, "layers.0.bias": None}))
    assert math.isnan(ratio(GRADS, {**GRADS, "layers.0.bias": [1.0, None, -1.0]}))  # one entry unset
    assert math.isnan(ratio(GRADS, {"layers.0.weight": GRADS["layers.0.weight"]}))  # a missing key


def test_a_non_finite_second_call_is_nan():
    second = {k: v.copy() for k, v in GRADS.items()}
    second["layers.0.bias"][0] = np.inf
    assert math.isnan(ratio(GRADS, second))
