"""``lockstep``: scratchnet and torch.optim train in step for every optimizer configuration of
the matrix and every gradient-descent mode, in both dtypes; records say which step broke."""

from __future__ import annotations

import ast
import json

import numpy as np
import pytest
from scratchnet_reference import GD_MODES, initial_state, lockstep, optimizer_label, prepare_batch
from scratchnet_reference.core.matrix import OPTIMIZER_CONFIGS, make_batch, training_configs

from scratchnet import ModelSpec, batch_schedule

STEPS = 20
N_SAMPLES = 13  # not a multiple of the mini-batch size: the last batch of each epoch is partial


def classification_spec(dtype: str) -> ModelSpec:
    return ModelSpec((5, 7, 6, 4), hidden="tanh", output="softmax", loss="cross_entropy", dtype=dtype, seed=1)


def batch_sizes(records) -> list[int]:
    return [int(r.shape.strip("(),")) for r in records if r.check == "training_step"]


def test_the_matrix_covers_every_optimizer_configuration_and_mode():
    assert set(training_configs()) == {(o, m) for o in OPTIMIZER_CONFIGS for m in GD_MODES}
    assert set(GD_MODES) == {"full_batch", "mini_batch", "stochastic"}


#: Every optimizer configuration once, the GD modes and dtypes taken in turn, so every optimizer, mode
#: and dtype is here. That all 42 configuration × mode × dtype runs agree with torch is the matrix's
#: check (``test_training_in_lockstep``, the same runs through the runner); this test reads the records
#: of a run closely, and running all 42 a second time would find nothing those two do not.
RUNS = [(config, list(GD_MODES)[i % len(GD_MODES)], ("float64", "float32")[i % 2])
        for i, config in enumerate(OPTIMIZER_CONFIGS)]


def test_the_runs_cover_every_optimizer_mode_and_dtype():
    assert {c for c, _, _ in RUNS} == set(OPTIMIZER_CONFIGS) and {m for _, m, _ in RUNS} == set(GD_MODES)
    assert {d for _, _, d in RUNS} == {"float64", "float32"}


@pytest.mark.parametrize("config,gd_mode,dtype", RUNS, ids=["-".join(run) for run in RUNS])
def test_lockstep_agrees_for_every_optimizer_and_mode(config, gd_mode, dtype, correct_impl):
    spec = classification_spec(dtype)
    x, y = make_batch(spec, N_SAMPLES, seed=3)
    optimizer = OPTIMIZER_CONFIGS[config]
    records = lockstep(correct_impl, spec, x, y, optimizer, gd_mode=gd_mode, steps=STEPS, seed=3)

    steps = [r for r in records if r.check == "training_step"]
    final = [r for r in records if r.check == "final_params"]
    assert [r.step for r in steps] == list(range(STEPS))
    assert [r.param for r in final] == list(initial_state(spec))
    bad = [(r.check, r.step, r.param, r.tol_ratio) for r in records if r.status != "pass"]
    assert not bad, f"{config} {gd_mode} {dtype}: lockstep broke: {bad[:5]}"
    for r in records:
        assert (r.optimizer, r.gd_mode, r.dtype, r.device) == (optimizer_label(optimizer), gd_mode, dtype, "cpu")
        assert r.flavour == "fused" and r.first_break_step == -1 and np.isfinite(r.tol_ratio)
    for r in steps:
        assert np.isfinite(r.actual_value) and np.isfinite(r.expected_value) and r.param_distance >= 0
    assert all(r.step == STEPS for r in final)
    shapes = {k: str(v.shape) for k, v in initial_state(spec).items()}
    for r in final:
        assert r.shape == shapes[r.param] and len(ast.literal_eval(r.worst_index)) == 2 - r.param.endswith("bias")
        assert r.atol > 0 and r.rtol > 0 and r.param_distance == r.max_abs_err
    for r in records:
        assert r.device_name == "cpu" and {"numpy", "torch", "scratchnet"} <= set(json.loads(r.versions))
        assert r.sizes == "5-7-6-4" and r.impl == "scratchnet" and r.note == ""

    # the batches both sides saw are the schedule's, epoch after epoch
    size = GD_MODES[gd_mode](N_SAMPLES)
    epoch = [len(b) for b in batch_schedule(N_SAMPLES, size)[0]]
    sizes = batch_sizes(records)
    assert sizes == (epoch * STEPS)[:STEPS]
    expected = {"full_batch": [N_SAMPLES], "stochastic": [1] * N_SAMPLES}.get(gd_mode)
    if expected is not None:
        assert epoch == expected
    else:  # mini-batch: several batches per epoch, the last one partial
        assert len(epoch) >= 2 and 1 <= epoch[-1] < epoch[0], f"mini-batch epoch {epoch} has no partial batch"
        assert epoch[-1] in sizes


@pytest.mark.parametrize("config", ["sgd", "adam"])
def test_lockstep_really_trains(config, correct_impl):
    """Both sides move far from the initial weights and the loss falls, so agreement is not the
    trivial agreement of two models that never changed."""
    spec = classification_spec("float64")
    x, y = make_batch(spec, N_SAMPLES, seed=3)
    records = lockstep(correct_impl, spec, x, y, OPTIMIZER_CONFIGS[config], gd_mode="full_batch", steps=STEPS)
    losses = [r.expected_value for r in records if r.check == "training_step"]
    assert losses[-1] < 0.9 * losses[0]
    model = correct_impl.build(spec, initial_state(spec))
    model.configure_optimizer(dict(OPTIMIZER_CONFIGS[config]))
    xs, target = prepare_batch(spec, x, y)
    for _ in range(STEPS):
        model.loss_and_grads(xs, target)
        model.step()
    start = initial_state(spec)
    moved = max(float(np.abs(v - start[k]).max()) for k, v in model.state_dict().items())
    assert moved > 1e-2


@pytest.mark.parametrize("gd_mode", list(GD_MODES))
@pytest.mark.parametrize("config", ["sgd_nesterov", "adamw"])
def test_lockstep_on_a_modular_regression_model(config, gd_mode, correct_impl):
    """A pair torch has no fused form of (the modular flavour), with ``reduction="sum"``."""
    spec = ModelSpec((3, 8, 2), hidden={"name": "elu", "alpha": 0.5}, output="sigmoid", loss="mse",
                     reduction="sum", seed=4)
    x, y = make_batch(spec, 10, seed=4, target="dense")
    records = lockstep(correct_impl, spec, x, y, OPTIMIZER_CONFIGS[config], gd_mode=gd_mode, steps=STEPS)
    assert {r.flavour for r in records} == {"modular"}
    assert all(r.status == "pass" for r in records), [(r.step, r.param, r.tol_ratio) for r in records
                                                      if r.status != "pass"]


def test_mini_batch_mode_of_the_matrix_has_a_partial_last_batch():
    size = GD_MODES["mini_batch"](N_SAMPLES)
    epoch = batch_schedule(N_SAMPLES, size)[0]
    assert len(epoch) >= 2 and len(epoch[-1]) < size


@pytest.mark.parametrize("n", [n for n in range(3, 41) if n % 3])
def test_mini_batch_mode_has_a_partial_last_batch_whenever_its_comment_says_so(n):
    """``GD_MODES["mini_batch"]`` promises "≥2 batches, the last partial when n ∤ 3"."""
    size = GD_MODES["mini_batch"](n)
    sizes = [len(b) for b in batch_schedule(n, size)[0]]
    assert len(sizes) >= 2
    assert sizes[-1] < size, f"n={n}: batch size {size} gives batches {sizes}, none of them partial"


def test_unknown_gd_mode_is_refused(correct_impl):
    spec = classification_spec("float64")
    x, y = make_batch(spec, 4)
    with pytest.raises(ValueError, match="gd_mode"):
        lockstep(correct_impl, spec, x, y, OPTIMIZER_CONFIGS["sgd"], gd_mode="online")
