"""The verdict cannot be corrupted by the code under test: every array handed to it is a private
copy, what it returns is copied out, torch's tensors share no memory with anything it touched, and
a call that writes into its inputs fails the ``inputs`` check by name."""

from __future__ import annotations

import numpy as np
import pytest
from scratchnet_reference.conformance.runner import check_case
from scratchnet_reference.core.boundary import INPUTS_CHECK, call
from scratchnet_reference.core.compare import compare_model
from scratchnet_reference.core.mapping import to_tensor
from scratchnet_reference.core.matrix import Case, make_batch

from scratchnet import ModelSpec

from .impls import UserImplementation, UserModel

CASE = Case("relu", "softmax", "cross_entropy", "mean", "float64")


class _Scribbling(UserModel):
    """A correct network that writes into what it was given after using it."""

    target: str = "y"

    def loss_and_grads(self, x, y):
        result = super().loss_and_grads(x, y)
        (y if self.target == "y" else x)[...] = 0
        return result


def _implementation(target: str) -> UserImplementation:
    impl = UserImplementation(f"zeroes-{target}")
    plain_build = impl.build

    def build(spec, state):
        model = plain_build(spec, state)
        model.__class__ = type(f"Zeroes{target.upper()}", (_Scribbling,), {"target": target})
        return model

    impl.build = build
    return impl


@pytest.mark.parametrize("target", ["y", "x"])
def test_a_network_that_zeroes_its_inputs_in_place_fails_by_name(target):
    records = check_case(_implementation(target), CASE, diagnose=False)
    failed = [r for r in records if r.status == "fail"]
    assert failed and {r.check for r in failed} == {INPUTS_CHECK}  # and nothing else: torch saw the real batch
    assert {r.batch for r in failed} == {"random", "kink", "large_logits"}
    assert all(f"loss_and_grads(x, y) modified {target} in place" in r.note for r in failed)
    assert not any("forward(x) modified" in r.note for r in failed)


def test_a_correct_network_leaves_its_inputs_alone():
    records = check_case(UserImplementation(), CASE, diagnose=False)
    intact = [r for r in records if r.check == INPUTS_CHECK]
    assert intact and all(r.status == "pass" and r.tol_ratio == 0 and r.note == "" for r in intact)
    assert all(r.status == "pass" for r in records)


def test_what_user_code_returns_is_copied_out():
    """A network that hands back its own buffer and overwrites it on the next call cannot change
    what was recorded from the first."""
    buffer = np.zeros((2, 3))

    def forward(x):
        buffer[...] = x
        return buffer

    first = call(forward, "forward(x)", ("x",), np.ones((2, 3)))
    call(forward, "forward(x)", ("x",), np.full((2, 3), 7.0))
    assert np.array_equal(first.result, np.ones((2, 3))) and not first.changed


def test_a_call_reports_what_it_changed_and_by_how_much():
    def halve(x, y):
        x /= 2
        return x.sum()

    x, y = np.full((2, 2), 4.0), np.arange(2)
    done = call(halve, "loss_and_grads(x, y)", ("x", "y"), x, y)
    assert done.changed == {"x": 2.0} and np.array_equal(x, np.full((2, 2), 4.0))  # ours: untouched
    assert done.describe() == "loss_and_grads(x, y) modified x in place (largest change 2)"


def test_torch_inputs_share_no_memory_with_the_array_they_came_from():
    a = np.arange(6.0).reshape(2, 3)
    t = to_tensor(a, "cpu")
    a[...] = -1
    assert t.numpy().tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


def test_compare_model_hands_the_implementation_copies_of_x_and_the_targets():
    seen = []

    class Recording(UserModel):
        def forward(self, x):
            seen.append(x)
            return super().forward(x)

        def loss_and_grads(self, x, y):
            seen.extend([x, y])
            return super().loss_and_grads(x, y)

    impl = UserImplementation()
    impl.build = lambda spec, state: Recording(UserImplementation().build(spec, state).network, None, 1.0)
    spec = ModelSpec((3, 4, 2), hidden="relu", output="softmax", loss="cross_entropy", seed=0)
    x, y = make_batch(spec, 5, seed=1)
    compare_model(impl, spec, x, y, fd="never")
    assert len(seen) == 3 and not any(np.shares_memory(a, b) for a in seen for b in (x, y))
