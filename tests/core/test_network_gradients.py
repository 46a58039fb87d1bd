"""Whole networks: backprop gradients of every parameter against float64 central differences,
for every valid (output, loss) pair of the registry and every hidden activation."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scratchnet import ModelSpec, Network, registry
from scratchnet.gradcheck import check_network_gradients
from scratchnet.losses import REDUCTIONS, one_hot

from .helpers import (
    KINK_MARGIN,
    activation_specs,
    assert_checks_pass,
    loss_specs,
    matrices,
    pair_id,
    spec_id,
    targets,
    upstream,
    valid_pairs,
)

PAIRS = valid_pairs()
HIDDEN = activation_specs()
# Each test below is parametrised ~10-50 ways; a third of the profile's examples per case keeps
# the CI run short while ``thorough`` still draws hundreds.
FEWER = settings(max_examples=max(5, settings().max_examples // 3))
FEWEST = settings(max_examples=max(3, settings().max_examples // 5))


def kink_clearance(net: Network, x: np.ndarray, target: np.ndarray) -> float:
    """The smallest distance of any pre-activation from its activation's kinks, and of any
    output-sensitive ``p − y`` from the loss's kinks (after ``net`` saw ``x``)."""
    net.forward(x)
    gaps = [np.inf]
    for layer in net.layers:
        for k in layer.activation.kinks:
            gaps.append(np.abs(layer.z - k).min())
    out = net.layers[-1]
    if net.loss_fn.kinks:
        y = one_hot(target, out.a.shape[1], out.a.dtype) if target.ndim == 1 else target
        # where the output is locally constant (a dead ReLU) p − y cannot move: no kink to straddle
        moving = np.ones_like(out.a, dtype=bool) if out.activation.rowwise else \
            out.activation.backward(out.z, out.a, upstream(out.z.shape, out.z.dtype)) != 0
        for k in net.loss_fn.kinks:
            d = np.abs(out.a - y - k)[moving]
            gaps.append(d.min(initial=np.inf))
    return float(min(gaps))


@st.composite
def network_cases(draw, output: str, loss: dict, hidden: dict | None = None, dtype: str = "float64"):
    """A small network (0-2 hidden layers), a batch and a target the loss accepts."""
    n_hidden = draw(st.integers(0 if hidden is None else 1, 2))
    if hidden is None and n_hidden:
        hidden = draw(st.sampled_from(HIDDEN))
    sizes = tuple(draw(st.integers(1, 4)) for _ in range(n_hidden + 2))
    if registry.ACTIVATIONS[output].rowwise or registry.LOSSES[loss["name"]].per_sample:
        sizes = (*sizes[:-1], max(2, sizes[-1]))        # a distribution over at least 2 classes
    spec = ModelSpec(sizes, hidden=hidden or (), output=output, loss=loss,
                     reduction=draw(st.sampled_from(REDUCTIONS)), dtype=dtype,
                     init=draw(st.sampled_from(["torch_default", "xavier_normal", "normal"])),
                     seed=draw(st.integers(0, 2**16)))
    net = Network(spec)
    n = draw(st.integers(1, 4))
    x = draw(matrices((n, sizes[0]), -2.0, 2.0))
    y = draw(targets(net.loss_fn, n, sizes[-1]))
    target = net.loss_fn.prepare_target(y, sizes[-1], np.dtype(np.float64))
    assume(kink_clearance(Network.from_spec(spec.replace(dtype="float64"), net.state_dict()), x, target)
           > KINK_MARGIN)
    return net, x, y


def check(net, x, y, **tolerances):
    checks = check_network_gradients(net, x, y, **tolerances)
    assert [c.name for c in checks] == list(net.state_dict()), "every parameter is checked"
    return checks


def bce_clamp_active(net, x):
    """Whether torch's binary-cross-entropy clamps (log at −100, ``p(1 − p)`` at 1e-12, which
    scratchnet reproduces on purpose in the unfused pairs) touch this example: there the backward
    is torch's, not the derivative of the loss, and finite differences rightly disagree."""
    if net.spec.loss["name"] != "binary_cross_entropy" or net.spec.fused:
        return False
    p = net.forward(x)
    with np.errstate(divide="ignore"):
        return bool(np.any((p * (1 - p) < 2e-12) | (np.log(p) < -99) | (np.log1p(-p) < -99)))


@FEWER
@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
@given(data=st.data())
def test_every_pair_backpropagates_exactly(pair, data):
    loss = data.draw(st.sampled_from(loss_specs([pair[1]])), label="loss")
    net, x, y = data.draw(network_cases(pair[0], loss))
    assume(not bce_clamp_active(net, x))
    assert_checks_pass(f"network {net.spec.describe()}", check(net, x, y))


@FEWER
@pytest.mark.parametrize("hidden", HIDDEN, ids=spec_id)
@given(data=st.data())
def test_every_hidden_activation_backpropagates_exactly(hidden, data):
    out, loss = data.draw(st.sampled_from(PAIRS))
    net, x, y = data.draw(network_cases(out, {"name": loss}, hidden))
    assume(not bce_clamp_active(net, x))
    assert_checks_pass(f"network {net.spec.describe()}", check(net, x, y))


@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
def test_deep_network_through_every_activation(pair):
    """One hidden layer per registered activation, in registry order, then the pair (the first
    seed whose pre-activations all clear the kinks)."""
    hidden = list(registry.ACTIVATIONS)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 3))
    y = np.array([0, 2, 1, 1, 0])
    for seed in range(20):
        net = Network(ModelSpec((3, *[5] * len(hidden), 3), hidden=hidden, output=pair[0], loss=pair[1], seed=seed))
        if kink_clearance(net, x, net.loss_fn.prepare_target(y, 3, net.dtype)) > KINK_MARGIN:
            break
    else:
        pytest.fail("no seed keeps the pre-activations off the kinks")
    assert_checks_pass(f"network {net.spec.describe()}", check(net, x, y))


@FEWEST
@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
@given(data=st.data())
def test_float32_gradients_agree_to_float32_precision(pair, data):
    """A float32 network's gradients against float64 differences of the same (rounded) weights."""
    net, x, y = data.draw(network_cases(pair[0], {"name": pair[1]}, dtype="float32"))
    _, grads = net.loss_and_grads(x, y)
    assert all(g.dtype == np.float32 for g in grads.values())
    checks = check(net, x, y, rtol=2e-3, atol=2e-4)
    bad = [str(c) for c in checks if not c.passed]
    assert not bad, "\n".join(bad)
