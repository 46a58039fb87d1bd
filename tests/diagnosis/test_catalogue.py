"""Every mistake of the catalogue, planted the way a learner writes it, is caught and named by its
key — at op level (the learner's op checked on its own) and at network level (the op inside a
network written by a stranger, :mod:`tests.byo.strangers`, compared with torch), localised at the
layer it enters. One row per catalogue entry: adding a mistake is one entry and one row here.

The rows' functions are the learner's, written independently of the catalogue's plants: the test
holds the catalogue's model of each mistake against code that really makes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from scratchnet_reference import compare_model, initial_state
from scratchnet_reference.byo.ops import check_ops
from scratchnet_reference.core.matrix import make_batch
from scratchnet_reference.core.reference_ops import OPS
from scratchnet_reference.diagnosis import Problem, annotate, group
from scratchnet_reference.diagnosis.catalogue import BY_KEY, CATALOGUE, LAYER_SITES

from scratchnet import ModelSpec

from ..byo import strangers as s


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def softmax_vjp(a, g):
    return a * (g - (g * a).sum(axis=1, keepdims=True))


def log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


#: correct ops the strangers' LayerNet lacks
MORE_OPS = {"sigmoid": sigmoid, "sigmoid_backward": lambda z, a, g: g * a * (1 - a), "log_softmax": log_softmax,
            "log_softmax_backward": lambda z, a, g: g - np.exp(a) * g.sum(axis=1, keepdims=True)}


def dead_unit(state):
    """Unit 2 of layer 0 has z == 0 for every input: ReLU's kink, exactly."""
    state["layers.0.weight"][2] = 0
    state["layers.0.bias"][2] = 0
    return state


@dataclass
class Case:
    """The learner's wrong ``ops``; ``ops_named``: the ops an op-level check names with the mistake
    (empty: the mistake has no op-level form), ``also``: ``(op, kind)`` of the other findings the
    same code makes; ``spec``: the network it is planted in (None: op level only), the mistake
    entering at ``layers``; ``state``: changes to the initial weights."""

    ops: dict[str, Any]
    ops_named: tuple[str, ...] = ()
    spec: dict[str, Any] | None = None
    layers: tuple[int, ...] = ()
    state: Any = None
    target: str = "dense"
    also: tuple[tuple[str, str], ...] = ()  # other op-level findings the same wrong op makes


TANH_SOFTMAX_MSE = dict(hidden="tanh", output="softmax", loss="mse")
HIDDEN_ONLY = dict(output="identity", loss="mse")

CASES: dict[str, Case] = {
    "gelu_tanh": Case({"gelu": s.gelu_tanh, "gelu_backward": s.gelu_tanh_backward}, ("gelu", "gelu_backward"),
                      dict(hidden="gelu", **HIDDEN_ONLY), (0,)),
    "again_on_fused": Case({"softmax_cross_entropy_grad": lambda z, y: softmax_vjp(s.softmax(z),
                                                                                   (s.softmax(z) - y) / len(z))},
                           ("softmax_cross_entropy_grad",), dict(hidden="tanh", output="softmax",
                                                                  loss="cross_entropy"), (1,), target="labels"),
    "output_left_out": Case({"sigmoid_backward": lambda z, a, g: g}, (), dict(hidden="tanh", output="sigmoid",
                                                                              loss="mse"), (1,)),
    "softmax_s1s": Case({"softmax_backward": s.softmax_backward_elementwise}, ("softmax_backward",),
                        TANH_SOFTMAX_MSE, (1,)),
    "at_activation": Case({"sigmoid_backward": lambda z, a, g: g * sigmoid(a) * (1 - sigmoid(a))},
                          ("sigmoid_backward",), dict(hidden="sigmoid", **HIDDEN_ONLY), (0,)),
    "left_out": Case({"tanh_backward": lambda z, a, g: g}, ("tanh_backward",), dict(hidden="tanh", **HIDDEN_ONLY),
                     (0,)),
    "kink": Case({"relu_backward": s.relu_backward_ge}, ("relu_backward",), dict(hidden="relu", **HIDDEN_ONLY), (0,),
                 state=dead_unit),
    "log_softmax_diagonal": Case({"log_softmax_backward": lambda z, a, g: g * (1 - np.exp(a))},
                                 ("log_softmax_backward",), dict(hidden="log_softmax", **HIDDEN_ONLY), (0,)),
    "derivative_twice": Case({"tanh_backward": lambda z, a, g: g * (1 - a ** 2) ** 2}, ("tanh_backward",),
                             dict(hidden="tanh", **HIDDEN_ONLY), (0,)),
    "upstream_ignored": Case({"tanh_backward": lambda z, a, g: 1 - a ** 2}, ("tanh_backward",),
                             dict(hidden="tanh", **HIDDEN_ONLY), (0,)),
    # the full Jacobian J = diag(s) − s sᵀ built per row, then summed over its rows instead of Jᵀ g
    "softmax_rows_summed": Case({"softmax_backward": lambda z, a, g: np.stack(
        [(np.diag(row) - np.outer(row, row)).sum(axis=0) for row in a])}, ("softmax_backward",), TANH_SOFTMAX_MSE,
        (1,)),
    "softmax_axis0": Case({"softmax": lambda z: np.exp(z - z.max(axis=0)) / np.exp(z - z.max(axis=0)).sum(axis=0)},
                          ("softmax",)),
    "bce_as_categorical": Case({"cross_entropy": lambda p, y: -np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))
                                / len(p)}, ("cross_entropy",)),
    "categorical_as_bce": Case({"binary_cross_entropy": lambda p, y: -np.sum(y * np.log(p)) / len(p)},
                               ("binary_cross_entropy",)),
    "fused_delta_as_loss_grad": Case({"cross_entropy_grad": lambda p, y: p - y}, ("cross_entropy_grad",)),
    "ce_grad_through_s1s": Case({"softmax_cross_entropy_grad": lambda z, y: -y * (1 - s.softmax(z)) / len(z)},
                                ("softmax_cross_entropy_grad",)),
    # ε inside the log of a hand-written binary cross-entropy (its gradient right): the value differs by ~ε/p
    "log_epsilon": Case({"binary_cross_entropy": lambda p, y: -np.mean(y * np.log(p + 1e-8)
                                                                        + (1 - y) * np.log(1 - p + 1e-8)),
                         "binary_cross_entropy_grad": lambda p, y: (p - y) / (p * (1 - p)) / p.size}, (),
                        dict(hidden="tanh", output="sigmoid", loss="binary_cross_entropy")),
    # the dense layer's bias / weight gradient of the wrong shape: named at network level (LayerNet's
    # Dense takes a dense_backward op); an op-level check refuses a result of the wrong shape instead
    "bias_summed_all": Case({"dense_backward": lambda x, W, b, g: (g @ W, g.T @ x, np.sum(g))}, (),
                            dict(hidden="tanh", **HIDDEN_ONLY)),
    "bias_wrong_axis": Case({"dense_backward": lambda x, W, b, g: (g @ W, g.T @ x, np.sum(g, axis=1))}, (),
                            dict(hidden="tanh", **HIDDEN_ONLY)),
    "bias_not_summed": Case({"dense_backward": lambda x, W, b, g: (g @ W, g.T @ x, g)}, (),
                            dict(hidden="tanh", **HIDDEN_ONLY)),
    "weight_transposed": Case({"dense_backward": lambda x, W, b, g: (g @ W, x.T @ g, g.sum(axis=0))}, (),
                              dict(hidden="tanh", **HIDDEN_ONLY)),
    # −y/s is ±inf where s underflows to 0 (|z| large): that is named too
    "loss_grad_as_logit_grad": Case({"softmax_cross_entropy_grad": lambda z, y: -y / s.softmax(z) / len(z)},
                                    ("softmax_cross_entropy_grad",),
                                    also=(("softmax_cross_entropy_grad", "overflow"),)),
}


def test_every_catalogue_entry_has_a_row():
    """The layer ops' entries (batch norm, dropout, conv, max pooling) have theirs in
    ``tests/byo/test_layer_ops.py``: they are checked through ``check_layer_ops``, not ``check_ops``."""
    assert list(CASES) == [m.key for m in CATALOGUE if not set(m.plants) & set(LAYER_SITES)]
    assert all(set(m.plants) <= set(LAYER_SITES) for m in CATALOGUE if set(m.plants) & set(LAYER_SITES))


def test_every_network_entry_is_planted_in_a_network():
    assert {k for k, case in CASES.items() if case.spec} == {m.key for m in CATALOGUE if m.network}


OP_CASES = [k for k, case in CASES.items() if case.ops_named]
NETWORK_CASES = [k for k, case in CASES.items() if case.spec]


@pytest.mark.parametrize("key", OP_CASES)
def test_the_mistake_is_named_at_op_level(key):
    """In this process (``timeout=None``): these functions are the project's own plants, and the diagnosis
    then runs where coverage and mutation testing see it (the isolated worker is tests/byo/test_ops_isolation's)."""
    case = CASES[key]
    report = check_ops(case.ops, max_examples=15, timeout=None)
    assert not report.ok
    expected = [(op, key) for op in case.ops_named] + list(case.also)
    assert sorted((f.op, f.kind) for f in report.findings) == sorted(expected), report.render()
    for f in (f for f in report.findings if f.kind == key):
        op = OPS[f.op]
        act = op.base if op.family == "activation" else op.base[0] if op.family == "fused" else ""
        assert f.what.startswith(BY_KEY[key].what(act)) and f.evidence, report.render()


@pytest.mark.parametrize("key", NETWORK_CASES)
def test_the_mistake_is_caught_and_named_at_network_level(key):
    case = CASES[key]
    spec = ModelSpec(sizes=(4, 6, 5), **case.spec, seed=5)
    x, y = make_batch(spec, 6, seed=5, target=case.target)
    state = initial_state(spec)
    state = case.state(state) if case.state else state
    impl = s.LayerNetAdapter(expose=False, **{**MORE_OPS, **case.ops})
    records = compare_model(impl, spec, x, y, state=state)
    assert any(r.status == "fail" for r in records), "not caught"
    annotate(records, impl, Problem(spec, state, x, y))
    found = [(c.kind, c.layers) for c, _, _ in group(records)]
    assert found == [(key, case.layers)], found
