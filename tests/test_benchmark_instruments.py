"""The benchmark's instruments compute what they claim to time, and its verdicts follow their rule.

No timing is asserted here (performance lives in ``benchmarks/``): ``make_products`` must run the
step's own products on the step's arrays, the profile's re-enactment must be the step (the same
weights bit for bit after one step), and ``judge`` must name the bound of a missed target from
given numbers, and ``least_disturbed`` keep the measurement its rule says.
"""

import math

import numpy as np
import pytest

from benchmarks.profile import step_parts
from benchmarks.step import BUSY_OTHERS, NOISY, Case, judge, least_disturbed, make_products
from scratchnet import ModelSpec, Network
from scratchnet.registry import make_optimizer

SPEC = ModelSpec((12, 9, 7, 4), hidden="relu", output="softmax", loss="cross_entropy", dtype="float32", seed=3)


def _stepped(batch: int = 6):
    """A network after one SGD step, with the batch and target it took."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 12)).astype(np.float32)
    net = Network(SPEC)
    target = net.loss_fn.prepare_target(rng.integers(0, 4, batch), 4, net.dtype)
    opt = make_optimizer({"name": "sgd", "lr": 0.1}, net.parameters())
    net.train_step(x, target, opt)
    return net, x, target, opt


def test_products_are_the_steps_products_on_its_arrays_and_leave_the_weights_alone():
    net, x, _, _ = _stepped()
    weights = {k: v.copy() for k, v in net.state_dict().items()}
    first_dx = net.layers[0]._dx_buf
    first_dx[...] = 7.0                           # the step never computes the first layer's ∂x
    make_products(net)()
    assert all(np.array_equal(v, weights[k]) for k, v in net.state_dict().items())
    a = x
    for layer in net.layers:                      # forward products, without bias or activation
        np.testing.assert_allclose(layer.z, a @ layer.weight.T, rtol=1e-5, atol=1e-6)
        a = layer.a
    for k, layer in enumerate(net.layers):        # ∂W = δᵀ x with δ = 1e-3 everywhere, in the layer's layout
        delta = np.full(layer.z.shape, 1e-3, np.float32)
        np.testing.assert_allclose(layer.grad_weight, delta.T @ layer.x, rtol=1e-5, atol=1e-7)
        if k:
            np.testing.assert_allclose(layer._dx_buf, delta @ layer.weight, rtol=1e-5, atol=1e-7)
    assert np.all(first_dx == 7.0)


def test_profile_reenacts_the_step_bit_for_bit():
    profiled, x, target, _ = _stepped()
    real, _, _, opt = _stepped()
    for part in step_parts(profiled, target, lr=0.1):
        part.run()
    real.train_step(x, target, opt)
    for name, value in real.state_dict().items():
        assert np.array_equal(profiled.state_dict()[name], value), name


def _row(**values):
    row = {"ratio": 0.6, "products_us": 300.0, "scratch_us": 600.0, "torch_us": 1000.0, "others_cpu": 0.0,
           "gflops": 50.0}
    row.update(values)
    return row


def test_a_missed_ratio_target_is_blamed_on_what_the_products_leave():
    case = Case(batch=32)                                   # target: ratio ≤ 0.5
    row = judge(_row(), case, peak=100.0)
    assert (row["met"], row["bounded_by"]) == ("NO", "elementwise")
    assert row["between_us"] == 300.0 and row["between_allowed_us"] == pytest.approx(200.0)
    row = judge(_row(products_us=550.0), case, peak=100.0)
    assert (row["met"], row["bounded_by"]) == ("NO", "products")
    assert row["between_allowed_us"] == pytest.approx(-50.0) and row["products_ratio"] == pytest.approx(0.55)
    row = judge(_row(ratio=0.45, scratch_us=450.0), case, peak=100.0)
    assert (row["met"], row["bounded_by"]) == ("yes", "-")


def test_a_missed_fraction_of_peak_is_judged_on_true_flops():
    case = Case(batch=128, threads=1)                       # target: frac_peak ≥ 0.85
    flops = case.true_flops
    products_us = flops / (0.9 * 100e9) * 1e6               # the products alone at 90 % of a 100 GFLOP/s peak
    row = judge(_row(gflops=70.0, products_us=products_us), case, peak=100.0)
    assert (row["met"], row["bounded_by"]) == ("NO", "elementwise")
    assert row["products_frac_peak"] == pytest.approx(0.9)
    assert row["between_allowed_us"] == pytest.approx(flops / 85e9 * 1e6 - products_us)
    row = judge(_row(gflops=70.0, products_us=flops / 80e9 * 1e6), case, peak=100.0)
    assert row["bounded_by"] == "products" and row["between_allowed_us"] < 0
    row = judge(_row(), Case(batch=1024), peak=100.0)       # no target
    assert (row["met"], row["bounded_by"]) == ("-", "-") and math.isnan(row["between_allowed_us"])


def test_the_least_disturbed_measurement_is_kept_and_a_clean_one_stops_the_retries():
    def measurements(*values):
        it = iter(values)
        return lambda: next(it)

    busy, noisy, clean = (BUSY_OTHERS + 0.5, 0.1, "busy"), (0.0, NOISY + 0.1, "noisy"), (0.01, 0.1, "clean")
    assert least_disturbed(measurements(busy, clean, noisy), attempts=3, retry_pause_s=0) == (2, 0.01, "clean")
    assert least_disturbed(measurements(busy, noisy), attempts=2, retry_pause_s=0) == (2, 0.0, "noisy")
    assert least_disturbed(measurements(clean, busy), attempts=2, retry_pause_s=0) == (1, 0.01, "clean")
