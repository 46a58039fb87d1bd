"""Behaviour no test pinned down before (each was changed at random without a test failing):
``predict`` and the epoch accuracy for one- and two-output networks against torch, the
distribution-target check row by row, ``batch_schedule``'s default epochs, every default of every
activation, loss and optimizer against torch's own signatures, and the numbers ``gradcheck``
reports."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from scratchnet_reference.core.fit_lockstep import fit_lockstep, predicted_classes
from scratchnet_reference.core.mapping import ACTIVATION_MODULES, OPTIMIZER_CLASSES, to_tensor
from scratchnet_reference.core.protocol import initial_state
from scratchnet_reference.core.schedule import epoch_batches
from scratchnet_reference.core.torch_model import build_torch_model

import scratchnet
from scratchnet import ModelSpec, Network, registry
from scratchnet.gradcheck import compare_arrays

torch = pytest.importorskip("torch")

# -- predict and the epoch accuracy: one output (threshold 0.5) and two outputs (arg-max) ---------

BINARY_MODELS = {
    "one_output": dict(sizes=(3, 5, 1), hidden="tanh", output="sigmoid", loss="binary_cross_entropy"),
    "two_outputs": dict(sizes=(3, 5, 2), hidden="tanh", output="softmax", loss="cross_entropy"),
}


def _problem(model: str, dtype: str = "float64"):
    params = dict(BINARY_MODELS[model])
    spec = ModelSpec(params.pop("sizes"), dtype=dtype, seed=4, **params)
    rng = np.random.default_rng(4)
    x = rng.normal(0.0, 2.0, (40, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return spec, x, y


@pytest.mark.parametrize("model", BINARY_MODELS)
def test_predict_matches_torchs_outputs(model):
    spec, x, _ = _problem(model)
    state = initial_state(spec)
    torch_model = build_torch_model(spec, state)
    _, a = torch_model(to_tensor(np.asarray(x, dtype=np.float64), "cpu", torch.float64))
    out = a.detach().numpy()
    expected = (out[:, 0] > 0.5).astype(np.int64) if out.shape[1] == 1 else out.argmax(axis=1)
    assert set(expected) == {0, 1}, "the data must make torch predict both classes"
    np.testing.assert_array_equal(Network.from_spec(spec, state).predict(x), expected)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("model", BINARY_MODELS)
def test_epoch_accuracy_matches_torchs_predictions(model, dtype):
    """fit's ``epoch_accuracy`` against the fraction of torch's predictions that were right before
    their update (the ``fit_epoch`` records compare it exactly)."""
    spec, x, y = _problem(model, dtype)
    records = fit_lockstep(spec, x, y, {"name": "sgd", "lr": 0.5}, batch_size=7, epochs=3, seed=2)
    assert all(r.status == "pass" for r in records), [r.note for r in records if r.status != "pass"]
    history = Network(spec).fit(x, y, epochs=3, batch_size=7, optimizer={"name": "sgd", "lr": 0.5}, seed=2)
    assert len(set(history.epoch_accuracy)) > 1 or 0 < history.epoch_accuracy[0] < 1, "a non-trivial accuracy"


def test_predicted_classes_rule():
    np.testing.assert_array_equal(predicted_classes(np.array([[0.2], [0.7], [0.5]])), [0, 1, 0])
    np.testing.assert_array_equal(predicted_classes(np.array([[0.7, 0.3], [0.2, 0.8]])), [0, 1])


# -- distribution targets: every row must sum to 1 ----------------------------------------------------

@pytest.mark.parametrize("loss", registry.CLASS_INDEX_LOSSES)
@pytest.mark.parametrize("rows", [
    [[1.0, 0.0, 0.0], [0.25, 0.25, 0.0]],                   # a row of 0.5 after one of 1
    [[0.25, 0.25, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],  # … before two of 1
    [[0.5, 0.5, 0.0], [0.0, 0.5, 1.0], [1.0, 0.0, 0.0]],    # a row of 1.5 among rows of 1
])
def test_every_distribution_row_is_checked(loss, rows):
    output = "softmax" if loss == "cross_entropy" else "log_softmax"
    net = Network(ModelSpec((2, 3), output=output, loss=loss))
    bad = next(i for i, r in enumerate(rows) if abs(sum(r) - 1) > 1e-6)
    with pytest.raises(ValueError, match=f"row {bad} sums to"):
        net.loss(np.zeros((len(rows), 2)), np.array(rows))


# -- batch_schedule's default epochs ------------------------------------------------------------------

def test_batch_schedule_defaults_to_one_epoch_of_the_written_order():
    default = scratchnet.batch_schedule(11, 4)
    written = epoch_batches(11, 4, 1, shuffle=True, seed=0)
    assert len(default) == 1
    assert [list(b) for b in default[0]] == [list(b) for b in written[0]]


# -- every default equals torch's -----------------------------------------------------------------

def _torch_defaults(target) -> dict:
    return {n: p.default for n, p in inspect.signature(target).parameters.items()
            if p.default is not inspect.Parameter.empty}


@pytest.mark.parametrize("name", list(registry.ACTIVATIONS))
def test_activation_defaults_are_torchs(name):
    module = ACTIVATION_MODULES[name]().__class__
    ours, theirs = registry.make_activation(name).params, _torch_defaults(module.__init__)
    assert set(ours) <= set(theirs), f"{name}: parameters torch's {module.__name__} lacks: {set(ours) - set(theirs)}"
    assert ours == {k: theirs[k] for k in ours}


#: loss name -> the torch function whose signature holds its defaults (nll's label smoothing is
#: cross_entropy's: F.nll_loss has none)
TORCH_LOSS_FUNCTIONS = {"mse": "mse_loss", "l1": "l1_loss", "huber": "huber_loss", "smooth_l1": "smooth_l1_loss",
                        "cross_entropy": "cross_entropy", "nll": "cross_entropy",
                        "binary_cross_entropy": "binary_cross_entropy"}


@pytest.mark.parametrize("name", list(registry.LOSSES))
def test_loss_defaults_are_torchs(name):
    theirs = _torch_defaults(getattr(torch.nn.functional, TORCH_LOSS_FUNCTIONS[name]))
    ours = {n: p.default for n, p in inspect.signature(registry.LOSSES[name].__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}
    assert set(ours) <= set(theirs) and ours == {k: theirs[k] for k in ours}
    assert ours["reduction"] == "mean"


@pytest.mark.parametrize("name", list(registry.OPTIMIZERS))
def test_optimizer_defaults_are_torchs(name):
    theirs = _torch_defaults(getattr(torch.optim, OPTIMIZER_CLASSES[name]).__init__)
    ours = {n: p.default for n, p in inspect.signature(registry.OPTIMIZERS[name].__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}
    assert ours, f"{name} declares no defaults"
    assert set(ours) <= set(theirs), f"{name}: parameters torch lacks: {set(ours) - set(theirs)}"
    assert {k: tuple(v) if isinstance(v, tuple) else v for k, v in ours.items()} == \
        {k: tuple(theirs[k]) if isinstance(theirs[k], tuple) else theirs[k] for k in ours}


# -- the numbers gradcheck reports ----------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_gradcheck_reports_the_numbers_it_measures(seed):
    rng = np.random.default_rng(seed)
    expected = rng.normal(size=(4, 3)) * 10.0 ** rng.integers(-3, 3, (4, 3))
    expected[0, 0] = 0.0
    actual = expected * (1 + rng.normal(0, 1e-6, expected.shape)) + rng.normal(0, 1e-9, expected.shape)
    actual[0, 0] = 0.0  # an exact zero: no relative error
    rtol, atol = 1e-6, 1e-9
    check = compare_arrays("w", actual, expected, rtol, atol)
    err = np.abs(actual - expected)
    rel = np.divide(err, np.abs(expected), out=np.zeros_like(err), where=err != 0)
    ratio = err / (atol + rtol * np.abs(expected))
    assert check.max_abs_err == pytest.approx(err.max(), rel=1e-12)
    assert check.max_rel_err == pytest.approx(rel.max(), rel=1e-12)
    assert check.tol_ratio == pytest.approx(ratio.max(), rel=1e-12)
    assert check.worst_index == np.unravel_index(ratio.argmax(), ratio.shape)
    assert check.passed == (ratio.max() <= 1)
    assert f"tol_ratio={ratio.max():.3g}" in str(check) and f"max_rel_err={rel.max():.3g}" in str(check)


def test_gradcheck_relative_error_of_a_nonzero_against_zero_is_infinite():
    check = compare_arrays("b", np.array([1e-12, 0.0]), np.array([0.0, 0.0]), 1e-6, 1e-9)
    assert check.max_rel_err == np.inf and check.max_abs_err == 1e-12 and check.passed
