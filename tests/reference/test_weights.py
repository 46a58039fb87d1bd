"""Weights travel between scratchnet and torch bit for bit, in both directions and both dtypes:
``build_torch_model`` (state → torch) and ``load_into_network`` (torch → scratchnet)."""

from __future__ import annotations

import numpy as np
import pytest
from scratchnet_reference import build_torch_model, initial_state, load_into_network
from scratchnet_reference.core.torch_model import torch_state_to_numpy

from scratchnet import ModelSpec, Network

DTYPES = ("float32", "float64")
UINT = {"float32": np.uint32, "float64": np.uint64}


def spec_for(dtype: str, **changes) -> ModelSpec:
    return ModelSpec((5, 7, 6, 4), hidden=("tanh", "relu"), output="softmax", loss="cross_entropy",
                     dtype=dtype, seed=11, **changes)


def assert_same_bits(actual: dict, expected: dict, dtype: str) -> None:
    """Same names in the same order, same shapes and dtype, identical bit patterns (so −0.0,
    subnormals and the last ulp all count)."""
    assert list(actual) == list(expected)
    for name, want in expected.items():
        got = actual[name]
        assert got.dtype == np.dtype(dtype), f"{name}: dtype {got.dtype}, expected {dtype}"
        assert got.shape == want.shape, f"{name}: shape {got.shape}, expected {want.shape}"
        same = got.view(UINT[dtype]) == np.asarray(want, dtype=dtype).view(UINT[dtype])
        assert same.all(), f"{name}: {np.count_nonzero(~same)} elements differ in their bits"


def awkward_state(spec: ModelSpec) -> dict[str, np.ndarray]:
    """The spec's initial state with values that a careless copy would change: −0.0, the
    smallest subnormal, the largest finite value, and numbers needing every mantissa bit."""
    dtype = np.dtype(spec.dtype)
    info = np.finfo(dtype)
    state = initial_state(spec)
    w = state["layers.0.weight"]
    w.flat[:5] = [-0.0, info.smallest_subnormal, info.max, -info.tiny, np.nextafter(dtype.type(1), 2)]
    state["layers.1.bias"].flat[0] = -info.smallest_subnormal
    return state


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_model_gets_the_exact_bits(dtype, torch):
    spec = spec_for(dtype)
    state = awkward_state(spec)
    model = build_torch_model(spec, state)
    assert [n for n, _ in model.named_parameters()] == list(state)
    assert {p.dtype for p in model.parameters()} == {getattr(torch, dtype)}
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert_same_bits(torch_state_to_numpy(model), state, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_weights_come_back_into_scratchnet_exactly(dtype, torch):
    spec = spec_for(dtype)
    state = awkward_state(spec)
    model = build_torch_model(spec, state)
    # change the torch side (exactly: a sign flip keeps −0.0 ↔ 0.0 and the subnormals), so that
    # getting the spec's initial weights back would not pass
    with torch.no_grad():
        for p in model.parameters():
            p.neg_()
    expected = torch_state_to_numpy(model)
    net = load_into_network(model, spec)
    assert isinstance(net, Network) and net.spec == spec
    assert_same_bits(net.state_dict(), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_scratchnet_torch_scratchnet_is_the_identity(dtype, torch):
    spec = spec_for(dtype)
    net = Network(spec)
    back = load_into_network(build_torch_model(spec, net.state_dict()), spec)
    assert_same_bits(back.state_dict(), net.state_dict(), dtype)


def test_float64_state_into_a_float32_model_rounds_the_same_on_both_sides(torch):
    """A float64 state given to a float32 spec is rounded once, identically by NumPy (scratchnet)
    and by torch — otherwise every float32 comparison would start from different weights."""
    spec32 = spec_for("float32")
    rng = np.random.default_rng(5)
    state64 = {k: v.astype(np.float64) + rng.normal(0, 1e-9, v.shape) for k, v in initial_state(spec32).items()}
    net = Network.from_spec(spec32, state64)
    model = build_torch_model(spec32, state64)
    assert_same_bits(torch_state_to_numpy(model), net.state_dict(), "float32")


def test_a_state_of_the_wrong_shape_is_refused_with_the_parameter_named(torch):
    spec = spec_for("float64")
    state = initial_state(spec)
    state["layers.1.weight"] = state["layers.1.weight"].T.copy()
    with pytest.raises(ValueError, match=r"layers\.1\.weight"):
        build_torch_model(spec, state)
