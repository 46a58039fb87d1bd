"""Pins found by mutation testing (issue 26): small rules the rest of tests/core did not check."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from scratchnet import BatchNorm1d, registry
from scratchnet.spec import ModelSpec
from scratchnet.special import erfc


def test_erfc_tail_keeps_float64_relative_accuracy_from_4_to_26():
    """erfc(x) for 4 < x < 26.5 (the asymptotic branch, where exp(-x^2) is split into an exact
    high part and a small remainder) stays within 8 ulp of math.erfc. Measured: 3.0 ulp max on this
    grid; forming exp(-x^2) without the split costs ~250 ulp near x = 26."""
    xs = np.linspace(4.01, 26.5, 2000)
    ref = np.array([math.erfc(v) for v in xs])
    rel = np.abs(erfc(xs) / ref - 1.0)
    assert rel.max() <= 8 * np.finfo(np.float64).eps, rel.max() / np.finfo(np.float64).eps


def test_modelspec_seed_is_normalised_to_a_python_int():
    """A NumPy integer seed is stored as a plain int, so spec.to_json() works and seed round-trips."""
    spec = ModelSpec(sizes=(2, 3, 1), hidden=("relu",), seed=np.int64(3))
    assert type(spec.seed) is int and spec.seed == 3
    assert json.loads(spec.to_json())["seed"] == 3


def test_after_hidden_refusal_names_the_argument_first():
    """A bad after_hidden is refused with TypeError whose message starts with the argument's name."""
    with pytest.raises(TypeError, match=r"^after_hidden must be a layer \(a name such as 'batch_norm'.*got 42$"):
        ModelSpec(sizes=(2, 3, 1), hidden=("relu",), after_hidden=42)


def test_make_layer_hands_dropout_the_given_generator():
    """make_layer passes rng= through to dropout (the network's generator), not a default one."""
    rng = np.random.default_rng(123)
    layer = registry.make_layer({"name": "dropout", "p": 0.25}, 4, np.float64, rng=rng)
    assert layer.rng is rng and layer.p == 0.25


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_forward_writes_into_its_reused_work_array(training):
    """BatchNorm1d.forward returns y in the layer's work array (documented: valid until the next pass),
    so a second pass on the same batch size allocates no new output: both results share memory."""
    layer = BatchNorm1d(3)
    rng = np.random.default_rng(1)
    y1 = layer.forward(rng.normal(size=(5, 3)), training=training)
    x2 = rng.normal(size=(5, 3))
    y2 = layer.forward(x2, training=training)
    assert np.shares_memory(y1, y2)
    mean, var = (x2.mean(0), x2.var(0)) if training else (layer.running_mean, layer.running_var)
    np.testing.assert_allclose(y2, (x2 - mean) / np.sqrt(var + layer.eps), rtol=1e-12, atol=1e-12)
