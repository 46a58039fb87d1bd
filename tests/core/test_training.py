"""``batch_schedule`` and ``fit``: full-batch, mini-batch and stochastic runs, histories,
learning an easy problem, and divergence reported as a result."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchnet import DivergenceWarning, ModelSpec, Network, batch_schedule, registry

# -- batch_schedule ------------------------------------------------------------------------------


@given(n=st.integers(1, 60), batch_size=st.one_of(st.none(), st.integers(1, 80)), epochs=st.integers(0, 4),
       shuffle=st.booleans(), seed=st.integers(0, 2**32))
def test_every_epoch_visits_every_sample_once(n, batch_size, epochs, shuffle, seed):
    schedule = batch_schedule(n, batch_size, epochs=epochs, shuffle=shuffle, seed=seed)
    bs = n if batch_size is None else min(batch_size, n)
    assert len(schedule) == epochs
    for batches in schedule:
        assert len(batches) == math.ceil(n / bs)
        assert [len(b) for b in batches[:-1]] == [bs] * (len(batches) - 1)
        assert 1 <= len(batches[-1]) <= bs
        order = np.concatenate(batches)
        np.testing.assert_array_equal(np.sort(order), np.arange(n))
        if not shuffle:
            np.testing.assert_array_equal(order, np.arange(n))


def test_full_batch():
    for batch_size in (None, 10, 1000):
        schedule = batch_schedule(10, batch_size, epochs=2, shuffle=False)
        assert [[b.tolist() for b in epoch] for epoch in schedule] == [[list(range(10))]] * 2


def test_partial_last_batch():
    schedule = batch_schedule(10, 4, epochs=1, shuffle=False)
    assert [b.tolist() for b in schedule[0]] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_stochastic_is_one_sample_per_step_in_a_fresh_order_each_epoch():
    schedule = batch_schedule(50, 1, epochs=2, seed=3)
    assert all(len(b) == 1 for epoch in schedule for b in epoch)
    first, second = (np.concatenate(epoch) for epoch in schedule)
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, np.arange(50))


def test_seeded_reproducibility():
    a = batch_schedule(30, 7, epochs=3, seed=11)
    b = batch_schedule(30, 7, epochs=3, seed=11)
    c = batch_schedule(30, 7, epochs=3, seed=12)
    flat = lambda s: np.concatenate([np.concatenate(e) for e in s])  # noqa: E731
    np.testing.assert_array_equal(flat(a), flat(b))
    assert not np.array_equal(flat(a), flat(c))
    # the permutation is numpy's default_rng(seed).permutation, epoch after epoch: replayable
    rng = np.random.default_rng(11)
    for epoch in a:
        np.testing.assert_array_equal(np.concatenate(epoch), rng.permutation(30))


# -- fit ----------------------------------------------------------------------------------------


def blobs(n_per_class=30, seed=0):
    """Three well separated Gaussian blobs in 2-D: an easy 3-class problem."""
    rng = np.random.default_rng(seed)
    centers = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    x = np.concatenate([c + 0.5 * rng.normal(size=(n_per_class, 2)) for c in centers])
    y = np.repeat(np.arange(3), n_per_class)
    return x, y


def classifier(**overrides):
    spec = dict(sizes=(2, 8, 3), hidden="tanh", output="softmax", loss="cross_entropy", seed=1)
    return Network(ModelSpec(**{**spec, **overrides}))


@pytest.mark.parametrize(("batch_size", "steps_per_epoch"), [(None, 1), (32, 3), (1, 90)],
                         ids=["full_batch", "mini_batch", "stochastic"])
def test_history_shapes_and_loss_decreases(batch_size, steps_per_epoch):
    x, y = blobs()
    net = classifier()
    epochs = 40 if batch_size is None else 8
    history = net.fit(x, y, epochs=epochs, batch_size=batch_size, optimizer={"name": "sgd", "lr": 0.5})
    assert history.steps == epochs * steps_per_epoch
    assert len(history.epoch_loss) == len(history.epoch_accuracy) == epochs
    assert not history.diverged
    assert all(np.isfinite(history.step_loss)) and all(0 <= a <= 1 for a in history.epoch_accuracy)
    assert history.epoch_loss[-1] < 0.25 * history.epoch_loss[0]
    assert history.epoch_accuracy[-1] >= 0.95
    assert np.mean(net.predict(x) == y) >= 0.95
    assert net.loss(x, y) < history.epoch_loss[0]


def test_epoch_loss_is_the_sample_weighted_mean_of_step_losses():
    x, y = blobs(10)                                 # 30 samples, batches of 8: 8, 8, 8, 6
    history = classifier().fit(x, y, epochs=2, batch_size=8, optimizer="sgd")
    sizes = [8, 8, 8, 6]
    for e in range(2):
        steps = history.step_loss[4 * e:4 * e + 4]
        assert history.epoch_loss[e] == pytest.approx(np.dot(steps, sizes) / 30, rel=1e-12)


def test_sum_reduction_epoch_loss_is_the_sum_of_step_losses():
    x, y = blobs(10)
    history = classifier(reduction="sum").fit(x, y, epochs=1, batch_size=8, optimizer="sgd")
    assert history.epoch_loss[0] == pytest.approx(sum(history.step_loss), rel=1e-12)


def test_step_loss_is_the_loss_before_the_update():
    x, y = blobs(5)
    net = classifier()
    before = net.loss(x, y)
    history = net.fit(x, y, epochs=1, shuffle=False, optimizer={"name": "sgd", "lr": 0.1})
    assert history.step_loss[0] == before
    assert net.loss(x, y) < before


def test_accuracy_is_reported_for_one_hot_targets_and_not_for_regression():
    x, y = blobs(5)
    assert len(classifier().fit(x, np.eye(3)[y], epochs=2).epoch_accuracy) == 2
    reg = Network(ModelSpec((2, 3), loss="mse"))
    assert reg.fit(x, np.random.default_rng(0).normal(size=(15, 3)), epochs=2).epoch_accuracy == []


def test_on_epoch_end_can_stop_training():
    x, y = blobs(5)
    seen = []
    history = classifier().fit(x, y, epochs=10, on_epoch_end=lambda e, h: seen.append(e) or e < 2)
    assert seen == [0, 1, 2] and len(history.epoch_loss) == 3


def test_fit_accepts_an_optimizer_instance_over_its_parameters():
    x, y = blobs(5)
    net = classifier()
    opt = registry.make_optimizer({"name": "adam", "lr": 0.05}, net.parameters())
    history = net.fit(x, y, epochs=20, optimizer=opt)
    assert opt.t == 20 and history.epoch_loss[-1] < history.epoch_loss[0]


@pytest.mark.parametrize("name", list(registry.OPTIMIZERS))
def test_every_optimizer_learns_the_easy_problem(name):
    x, y = blobs()
    history = classifier().fit(x, y, epochs=15, batch_size=16, optimizer={"name": name, "lr": 0.05})
    assert history.epoch_loss[-1] < 0.5 * history.epoch_loss[0]


def test_diverging_run_stops_with_a_warning_and_a_history():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3))
    y = x @ rng.normal(size=(3, 2))
    net = Network(ModelSpec((3, 2), output="identity", loss="mse"))
    with pytest.warns(DivergenceWarning, match=r"loss became (inf|nan) at step \d+"):
        history = net.fit(x, y, epochs=500, optimizer={"name": "sgd", "lr": 1e3})
    assert history.diverged
    assert not np.isfinite(history.step_loss[-1])
    assert all(np.isfinite(history.step_loss[:-1]))
    assert history.steps < 500 and len(history.epoch_loss) == history.steps - 1


def test_non_finite_parameters_after_the_last_step_are_divergence_too():
    x = np.ones((1, 1))
    net = Network(ModelSpec((1, 1), output="identity", loss="mse", init="zeros"))
    net.load_state_dict({"layers.0.weight": [[1e154]], "layers.0.bias": [0.0]})
    # the loss (1e154)² = 1e308 is finite; the update w − 1e160·2e154 overflows to −inf
    with pytest.warns(DivergenceWarning, match="parameters became non-finite"):
        history = net.fit(x, np.zeros((1, 1)), epochs=1, optimizer={"name": "sgd", "lr": 1e160})
    assert history.diverged and history.step_loss == [1e308]
    assert not np.isfinite(net.state_dict()["layers.0.weight"]).all()


def test_converging_run_raises_no_warning():
    x, y = blobs(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not classifier().fit(x, y, epochs=3).diverged
