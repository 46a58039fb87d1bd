"""``fit_lockstep``'s records, pinned on planted ``fit`` changes passed as the network factory (mutation
testing found its record fields and failure notes unpinned by tests/reference: reports/mutation/): the
step count, the step where the curves part and its words, the epoch loss (sample-weighted, or summed),
the epoch accuracy, the tolerance growth per step, and a clean run's records."""

from __future__ import annotations

import numpy as np
import pytest
from scratchnet_reference.core.fit_lockstep import fit_lockstep
from scratchnet_reference.core.tolerances import training_tolerance

from scratchnet import ModelSpec, Network

SGD = {"name": "sgd", "lr": 0.3, "momentum": 0.5}


def problem(reduction: str = "mean", dtype: str = "float64"):
    spec = ModelSpec((3, 5, 2), hidden="tanh", output="softmax", loss="cross_entropy", reduction=reduction,
                     dtype=dtype, seed=4)
    rng = np.random.default_rng(4)
    x = rng.normal(0.0, 2.0, (13, 3))
    return spec, x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)


def run(factory=Network, reduction: str = "mean", **kw):
    spec, x, y = problem(reduction)
    return fit_lockstep(spec, x, y, SGD, batch_size=5, epochs=3, seed=2, network_factory=factory, **kw)


class DoubledLr(Network):
    def fit(self, x, y, *, optimizer, **kw):
        return super().fit(x, y, optimizer={**optimizer, "lr": 2 * optimizer["lr"]}, **kw)


class ExtraEpoch(Network):
    def fit(self, x, y, *, epochs, **kw):
        return super().fit(x, y, epochs=epochs + 1, **kw)


class EpochLossOff(Network):
    def fit(self, x, y, **kw):
        history = super().fit(x, y, **kw)
        history.epoch_loss[1] *= 1.001
        return history


class AccuracyOff(Network):
    def fit(self, x, y, **kw):
        history = super().fit(x, y, **kw)
        history.epoch_accuracy[2] += 1 / 13
        return history


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_a_clean_fit_passes_with_one_record_per_step_and_per_epoch(reduction):
    records = run(reduction=reduction)
    steps = [r for r in records if r.check == "fit_step"]
    epochs = [r for r in records if r.check == "fit_epoch"]
    assert [r.step for r in steps] == list(range(9)) and [r.step for r in epochs] == [2, 5, 8]  # batches 5, 5, 3
    assert all(r.status == "pass" and r.passed and r.note == "" for r in records)
    assert {r.first_break_step for r in records} == {-1}
    for r in steps:
        assert r.rtol == training_tolerance("float64", "training_step", r.step).rtol
        assert r.actual_value == pytest.approx(r.expected_value, rel=1e-9)
    for r, end in zip(epochs, (3, 6, 9)):
        assert r.rtol == training_tolerance("float64", "final_params", end).rtol
        assert r.param_distance < 1e-9
    # the epoch loss: sample-weighted mean of the step losses (the plain sum under reduction="sum")
    losses = [r.expected_value for r in steps[:3]]
    expected = (losses[0] * 5 + losses[1] * 5 + losses[2] * 3) / 13 if reduction == "mean" else sum(losses)
    assert epochs[0].expected_value == pytest.approx(expected, rel=1e-12)
    assert all(r.param == "fit" and r.shape == "()" and r.impl == "scratchnet" and r.optimizer for r in records)


def test_a_wrong_update_parts_the_curves_at_the_next_step():
    records = run(DoubledLr)
    failed = [r for r in records if r.status == "fail"]
    assert {r.first_break_step for r in records} == {1}
    first = min(failed, key=lambda r: r.step)
    assert first.check == "fit_step" and first.step == 1 and not first.passed
    assert first.note.startswith("curves part at step 1 (epoch 0, batch 2 of 3): loss ")
    assert next(r for r in records if r.step == 0 and r.check == "fit_step").status == "pass"
    assert all(r.status == "fail" for r in records if r.check == "fit_epoch")
    assert "layers.0.weight differs by" in next(r for r in records if r.check == "fit_epoch").note


def test_a_fit_running_more_steps_than_the_schedule_fails_by_count():
    records = run(ExtraEpoch)
    count = [r for r in records if r.check == "fit_step" and r.tol_ratio == float("inf")]
    assert len(count) == 1 and count[0].step == 9 and count[0].status == "fail"
    assert count[0].note == ("curves part at step 9 (epoch 2, batch 3 of 3): fit ran 12 steps, "
                             "the schedule (3 epochs of batches [5, 5, 3]) has 9")
    assert all(r.status == "pass" for r in records if r is not count[0])


def test_a_wrong_epoch_loss_fails_that_epochs_record_only():
    records = run(EpochLossOff)
    failed = [r for r in records if r.status == "fail"]
    assert [(r.check, r.step) for r in failed] == [("fit_epoch", 5)]
    assert "epoch loss" in failed[0].note and failed[0].note.startswith("curves part at step 5 (epoch 1, batch 3 of 3)")


def test_a_wrong_epoch_accuracy_fails_that_epochs_record_only():
    records = run(AccuracyOff)
    failed = [r for r in records if r.status == "fail"]
    assert [(r.check, r.step) for r in failed] == [("fit_epoch", 8)]
    assert failed[0].tol_ratio == float("inf") and "epoch accuracy" in failed[0].note
    assert "vs torch's" in failed[0].note


def test_a_clean_fit_on_dense_targets_compares_no_accuracy():
    """Dense targets are not labels: no accuracy is compared (fit records none), and the run passes."""
    spec = ModelSpec((3, 4, 2), hidden="tanh", output="sigmoid", loss="mse", seed=5)
    x = np.random.default_rng(5).normal(size=(13, 3))
    y = np.random.default_rng(6).uniform(size=(13, 2))
    records = fit_lockstep(spec, x, y, SGD, batch_size=5, epochs=2, seed=1)
    assert len(records) == 6 + 2 and all(r.status == "pass" for r in records), [r.note for r in records]
