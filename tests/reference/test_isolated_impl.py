"""A user's implementation behind the worker: the same records as in-process, copies in and out, and a
hang, an exit or a BaseException deep in the user's network is a named failure of that call."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from scratchnet_reference import ScratchnetImplementation
from scratchnet_reference.conformance.runner import case_problem, check_training
from scratchnet_reference.core.compare import compare_model
from scratchnet_reference.core.isolated_impl import IsolatedImplementation
from scratchnet_reference.core.isolation import UserCodeExit, UserCodeRaised, UserCodeTimeout
from scratchnet_reference.core.matrix import Case

from scratchnet import ModelSpec


class Learner(ScratchnetImplementation):
    """scratchnet with one planted behaviour in ``loss_and_grads`` (as a learner's network might)."""

    def __init__(self, behaviour: str = ""):
        super().__init__(name=f"learner-{behaviour or 'ok'}")
        self.behaviour = behaviour

    def build(self, spec, state):
        model = super().build(spec, state)
        behaviour = self.behaviour
        inner = model.loss_and_grads

        def loss_and_grads(x, y):
            if behaviour == "hang":
                while True:
                    pass
            if behaviour == "sys_exit":
                sys.exit(3)
            if behaviour == "os_exit":
                os._exit(3)
            if behaviour == "base_exception":
                raise GeneratorExit("the learner's own BaseException")
            if behaviour == "mutate":
                x *= 0  # a learner bug: modifies its input in place
            return inner(x, y)
        model.loss_and_grads = loss_and_grads
        return model


SPEC = ModelSpec((5, 7, 4), hidden="tanh", output="softmax", loss="cross_entropy", seed=0)


def _batch():
    rng = np.random.default_rng(0)
    return rng.normal(size=(8, 5)), rng.integers(0, 4, 8)


def test_isolated_records_equal_in_process_records():
    case = Case("tanh", "softmax", "cross_entropy", "mean", "float64")
    spec, x, y = case_problem(case)
    with IsolatedImplementation(ScratchnetImplementation()) as isolated:
        remote = compare_model(isolated, spec, x, y)
        training = check_training(isolated, "adam", "mini_batch", "float64", steps=3)
    local = compare_model(ScratchnetImplementation(), spec, x, y)
    assert [(r.param, r.tol_ratio, r.status) for r in remote] == [(r.param, r.tol_ratio, r.status) for r in local]
    assert training and all(r.status == "pass" for r in training)


def test_the_user_sees_copies_only():
    x, y = _batch()
    before = x.copy()
    with IsolatedImplementation(Learner("mutate")) as isolated:
        model = isolated.build(SPEC, ScratchnetImplementation().build(SPEC, _state()).state_dict())
        model.loss_and_grads(x, y)
    assert np.array_equal(x, before)  # the oracle's arrays are untouched


def _state():
    from scratchnet_reference.core.protocol import initial_state

    return initial_state(SPEC)


@pytest.mark.parametrize("behaviour, failure, words", [
    ("hang", UserCodeTimeout, "did not return within 1 s"),
    ("sys_exit", UserCodeExit, r"called sys.exit\(3\)"),
    ("os_exit", UserCodeExit, r"called os._exit\(3\)"),
    ("base_exception", UserCodeRaised, "raised GeneratorExit: the learner's own BaseException"),
])
def test_a_failure_deep_in_the_users_network_is_named_and_the_next_call_works(behaviour, failure, words):
    x, y = _batch()
    with IsolatedImplementation(Learner(behaviour), timeout=1) as isolated:
        model = isolated.build(SPEC, _state())
        assert model.forward(x).shape == (8, 4)
        named = rf"implementation 'learner-{behaviour}': model.loss_and_grads\(\) .*{words}"
        with pytest.raises(failure, match=named) as info:
            model.loss_and_grads(x, y)
        assert "loss_and_grads" in info.value.user_stack
        again = isolated.build(SPEC, _state())  # a new job builds its own model: it works
        assert again.forward(x).shape == (8, 4)
