"""Both overflow: non-finite in torch and the implementation alike, at the same dtype, is agreement
(with the reason on the record); non-finite on one side only, or an infinity of the other sign, is not."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scratchnet_reference import ScratchnetImplementation
from scratchnet_reference.core.compare import compare_model
from scratchnet_reference.core.overflow import as_agreed, shared_overflow

from scratchnet import ModelSpec

INF, NAN = np.inf, np.nan


@pytest.mark.parametrize("actual, torch, agree", [
    ([INF, 1.0], [INF, 1.0], True),
    ([-INF, NAN], [-INF, NAN], True),
    ([INF, -INF, INF], [NAN, NAN, INF], True),  # the order of an overflowing sum: inf + (−inf) = NaN
    ([INF, 1.0], [1.0, 1.0], False),  # non-finite in the implementation only: its own overflow
    ([1.0, 1.0], [INF, 1.0], False),  # non-finite in torch only
    ([-INF, 1.0], [INF, 1.0], False),  # a sign error stays a disagreement
    ([INF, 1.0], [INF, NAN], False),  # another element
    ([1.0, 2.0], [1.0, 2.0], False),  # finite: nothing to say
])
def test_shared_overflow_rule(actual, torch, agree):
    reason = shared_overflow(np.array(actual), np.array(torch), "float32")
    assert bool(reason) is agree
    if agree:
        assert reason.startswith("both overflow in float32")
        agreed = as_agreed(np.array(actual), np.array(torch))
        assert np.array_equal(agreed, np.array(torch), equal_nan=True)


def test_only_a_value_beyond_the_dtype_is_an_overflow_both_may_share():
    inf = np.array([INF, 1.0])
    assert shared_overflow(inf, inf, "float32", judge=np.array([1e60, 1.0]))  # 1e60 > float32's 3.4e38
    assert shared_overflow(inf, inf, "float32", judge=np.array([INF, 1.0]))
    assert not shared_overflow(inf, inf, "float32", judge=np.array([3e38, 1.0]))  # representable: a real failure
    assert not shared_overflow(inf, inf, "float64", judge=np.array([1e60, 1.0]))  # a naive log 0 in float64


class SignFlipped(ScratchnetImplementation):
    """A network whose first-layer weight gradient has the wrong sign."""

    name = "sign-flipped"

    def build(self, spec, state):
        inner = super().build(spec, state)

        class Flipped:
            def __getattr__(self, name):
                return getattr(inner, name)

            def loss_and_grads(self, x, y):
                loss, grads = inner.loss_and_grads(x, y)
                return loss, {**grads, "layers.0.weight": -grads["layers.0.weight"]}
        return Flipped()


@pytest.mark.parametrize("hidden", ["gelu", "softplus"])
def test_float32_overflow_in_torch_and_scratchnet_alike_is_agreement(hidden):
    spec = ModelSpec((3, 4, 2), hidden=hidden, output="identity", loss="mse", dtype="float32", seed=0)
    x = np.array([[1e30, -1e30, 1e30], [-1e30, 1e30, 1e30]], np.float32)
    y = np.zeros((2, 2), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = compare_model(ScratchnetImplementation(), spec, x, y)
        flipped = compare_model(SignFlipped(), spec, x, y)
    by = {(r.check, r.param): r for r in records}
    loss = by["loss", "loss"]
    assert np.isinf(loss.actual_value) and np.isinf(loss.expected_value)  # infinite on both sides, float32
    assert loss.status == "pass" and loss.oracle == "torch" and loss.note.startswith("both overflow in float32")
    assert all(r.status == "pass" for r in records), [(r.param, r.status, r.note) for r in records]
    assert sum(r.note.startswith("both overflow") for r in records) >= 2
    bad = {(r.check, r.param): r for r in flipped}["gradient", "layers.0.weight"]
    assert bad.status == "fail" and not bad.note.startswith("both overflow")  # teeth: a sign error still fails
