"""The multi-class study: sigmoid outputs with squared error against softmax with cross-entropy.

A learner with sigmoid working for binary problems asked whether sigmoid outputs + squared
error can pick 1 of n classes instead of softmax + cross-entropy. Three claims came back:
(1) L2 on a sigmoid has vanishing gradients, ``∂ℓ/∂z = 2(σ(z) − y)·σ'(z)/C``; (2) sigmoids do
not sum to 1; (3) with sigmoid outputs, full-batch gradient descent made the loss *increase*
(on MNIST) while mini-batch worked and softmax worked in every mode. This module measures them.

The grid: output + loss ∈ {softmax + cross_entropy, sigmoid + mse, sigmoid + binary_cross_entropy,
softmax + mse} × GD mode ∈ {full batch, mini-batch (32), stochastic (1)} × hidden activation ∈
{sigmoid, tanh, relu}, a 64-32-10 network (``float64``), plain SGD over four learning rates per
cell (:data:`LR_GRID`, placed around a pilot sweep's optimum), seed 0 everywhere and seeds 0, 1, 2
for the headline cells (softmax + cross_entropy and sigmoid + mse with the sigmoid hidden layer —
the learner's set-up).

**The budget.** Equal epochs means equal arithmetic (every run computes ``epochs × n``
per-example gradients) but very different numbers of updates: 30 epochs are 30 full-batch
updates, 1,290 mini-batch updates and 40,410 stochastic ones on the 1,347 digits. So every run
is measured at two checkpoints, and the tables carry a row for each:

* ``equal_epochs`` — after ``E`` epochs (``--epochs``, 30) in every mode: equal compute;
* ``equal_updates`` — after ``U = E × ceil(n / 32)`` updates, the mini-batch run's count: full
  batch trains ``U`` epochs, mini-batch ``E`` epochs, stochastic the whole epoch closest to
  ``U`` updates (1 epoch = 1,347 updates on the digits; the table says exactly how many).

Full-batch runs therefore train for ``U`` epochs and stochastic runs for ``E``; both checkpoints
lie inside every run. The learning rate is chosen per cell and per checkpoint: the one with the
highest training accuracy (averaged over seeds), ties broken by the lower training loss — never
the test set. A cell whose best rate is at the edge of its grid is flagged.

**Verification.** Every run also trains the identical torch model in lockstep for its first
``--lockstep-steps`` steps (:func:`scratchnet_reference.core.lockstep.lockstep`: same spec, same initial
state, the same SGD settings and GD mode). Full batch and stochastic replay the study's own
first steps (same data, same batch order — checked: the lockstep's scratchnet losses equal the
study's step losses). ``scratchnet_reference.core.lockstep.GD_MODES`` fixes its own mini-batch size
(about ``n/3``), so the mini-batch runs are verified on a subset of the study's first shuffled
samples whose size makes lockstep's batch exactly 32 (93 samples: batches 32, 32, 29). A run whose
tolerance breaks is rerun in scratchnet from its initial weights nudged by one ulp
(:func:`rounding_control`); if that nudge alone moves the weights comparably, the run is marked
``unstable`` (its learning rate amplifies rounding) rather than ``fail``.

Everything is deterministic: the split, the initial weights and the batch orders come from the
seeds. The report (:mod:`scratchnet_reference.study.report`) states only what the tables say.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

import scratchnet
from scratchnet import ModelSpec, Network

__all__ = ["COMBOS", "GD_MODES", "HIDDEN", "LR_GRID", "LR_LADDER", "LR_START", "BUDGETS", "Cell", "StudyConfig", "Run",
           "full_config", "quick_config", "train_run", "verify_run", "run_study", "runs_frame", "results_frame",
           "output_delta"]


#: (output activation, loss) pairs compared
COMBOS: tuple[tuple[str, str], ...] = (("softmax", "cross_entropy"), ("sigmoid", "mse"),
                                       ("sigmoid", "binary_cross_entropy"), ("softmax", "mse"))
GD_MODES: tuple[str, ...] = ("full_batch", "mini_batch", "stochastic")
HIDDEN: tuple[str, ...] = ("sigmoid", "tanh", "relu")
BUDGETS: tuple[str, ...] = ("equal_epochs", "equal_updates")

#: The half-decade ladder the learning-rate grids are cut from.
LR_LADDER: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)

#: (output+loss, GD mode) -> {hidden activation: the lowest of its four learning rates}. Chosen from a
#: pilot sweep of all 11 rates 1e-3..1e2 on every cell (digits, seed 0, the full budget): each cell's
#: grid is the four consecutive rungs of :data:`LR_LADDER` that hold the pilot's best rate at both
#: checkpoints with a rung to spare on each side, so no cell loses for its step size. The report
#: flags any cell whose best rate still lands on an edge.
LR_START: dict[tuple[str, str], dict[str, float]] = {
    ("softmax+cross_entropy", "full_batch"): {"sigmoid": 1.0, "tanh": 0.3, "relu": 0.1},
    ("softmax+cross_entropy", "mini_batch"): {"sigmoid": 1.0, "tanh": 0.3, "relu": 0.1},
    ("softmax+cross_entropy", "stochastic"): {"sigmoid": 0.1, "tanh": 0.01, "relu": 0.01},
    ("sigmoid+mse", "full_batch"): {"sigmoid": 3.0, "tanh": 3.0, "relu": 3.0},
    ("sigmoid+mse", "mini_batch"): {"sigmoid": 10.0, "tanh": 3.0, "relu": 3.0},
    ("sigmoid+mse", "stochastic"): {"sigmoid": 3.0, "tanh": 0.3, "relu": 0.3},
    ("sigmoid+binary_cross_entropy", "full_batch"): {"sigmoid": 3.0, "tanh": 3.0, "relu": 3.0},
    ("sigmoid+binary_cross_entropy", "mini_batch"): {"sigmoid": 10.0, "tanh": 3.0, "relu": 1.0},
    ("sigmoid+binary_cross_entropy", "stochastic"): {"sigmoid": 1.0, "tanh": 0.1, "relu": 0.1},
    ("softmax+mse", "full_batch"): {"sigmoid": 10.0, "tanh": 3.0, "relu": 3.0},
    ("softmax+mse", "mini_batch"): {"sigmoid": 10.0, "tanh": 3.0, "relu": 3.0},
    ("softmax+mse", "stochastic"): {"sigmoid": 1.0, "tanh": 0.3, "relu": 0.1},
}


def _grid_from(start: float, size: int = 4) -> tuple[float, ...]:
    i = LR_LADDER.index(start)
    return LR_LADDER[i:i + size]


#: (output+loss, GD mode, hidden activation) -> the cell's learning rates (plain SGD)
LR_GRID: dict[tuple[str, str, str], tuple[float, ...]] = {
    (combo, mode, hidden): _grid_from(start) for (combo, mode), starts in LR_START.items()
    for hidden, start in starts.items()
}


def combo_name(output: str, loss: str) -> str:
    return f"{output}+{loss}"


@dataclass(frozen=True)
class Cell:
    """One cell of the grid: output activation + loss, GD mode, hidden activation."""

    output: str
    loss: str
    gd_mode: str
    hidden: str

    @property
    def combo(self) -> str:
        return combo_name(self.output, self.loss)

    def label(self) -> str:
        return f"{self.combo} {self.gd_mode} hidden={self.hidden}"


@dataclass(frozen=True)
class StudyConfig:
    """What the study runs. :func:`full_config` and :func:`quick_config` are the two profiles."""

    profile: str = "full"
    combos: tuple[tuple[str, str], ...] = COMBOS
    modes: tuple[str, ...] = GD_MODES
    hidden: tuple[str, ...] = HIDDEN
    hidden_units: int = 32
    batch_size: int = 32
    epochs: int = 30
    seeds: tuple[int, ...] = (0,)
    headline_combos: tuple[tuple[str, str], ...] = COMBOS[:2]
    headline_hidden: str = "sigmoid"
    headline_seeds: tuple[int, ...] = (0, 1, 2)
    lr_grid: Mapping[tuple[str, str, str], tuple[float, ...]] = field(default_factory=lambda: dict(LR_GRID))
    target_accuracy: float = 0.9
    lockstep_steps: int = 20
    max_train: int | None = None

    def cells(self) -> list[Cell]:
        return [Cell(o, l, m, h) for o, l in self.combos for m in self.modes for h in self.hidden]

    def is_headline(self, cell: Cell) -> bool:
        return (cell.output, cell.loss) in self.headline_combos and cell.hidden == self.headline_hidden

    def seeds_for(self, cell: Cell) -> tuple[int, ...]:
        return self.headline_seeds if self.is_headline(cell) else self.seeds

    def lrs_for(self, cell: Cell) -> tuple[float, ...]:
        try:
            return tuple(self.lr_grid[(cell.combo, cell.gd_mode, cell.hidden)])
        except KeyError:
            raise ValueError(f"no learning-rate grid for {cell.label()}") from None

    @property
    def plot_seed(self) -> int:
        """The seed whose runs the curve plots show (every cell has it)."""
        return self.seeds[0]

    def jobs(self) -> list[tuple[Cell, float, int]]:
        """Every run: ``(cell, lr, seed)``."""
        return [(cell, lr, seed) for cell in self.cells() for lr in self.lrs_for(cell) for seed in self.seeds_for(cell)]


def full_config(**changes: Any) -> StudyConfig:
    return replace(StudyConfig(), **changes)


def quick_config(**changes: Any) -> StudyConfig:
    """A small deterministic subset for CI: the headline cells only, the two middle learning rates of
    each grid, one seed, 400 training samples, 3 epochs, 5 lockstep steps."""
    grid = {key: lrs[1:3] for key, lrs in LR_GRID.items()}
    base = StudyConfig(profile="quick", combos=COMBOS[:2], hidden=("sigmoid",), epochs=3, headline_seeds=(0,),
                       lr_grid=grid, lockstep_steps=5, max_train=400)
    return replace(base, **changes)


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------

CURVE_KEYS = ("train_loss", "train_acc", "test_loss", "test_acc", "grad_z", "grad_z_wrong", "grad_w_out",
              "out_sum_mean", "out_none", "out_multi", "ece")
#: Runs of at most this many epochs are measured after every epoch; longer (full-batch) runs after
#: the first ones, then about every ``epochs / DENSE_EPOCHS``-th and at both checkpoints. Their
#: training loss and accuracy after *every* update still come from :class:`scratchnet.History`.
DENSE_EPOCHS = 100


@dataclass
class Run:
    """One training run.

    ``curve``: the measurements of :func:`_evaluate` at the epochs ``curve["epoch"]`` (0 is before
    training). ``trace``: the whole-training-set loss and accuracy after every epoch
    (``trace["loss"][k]`` after ``k`` epochs), dense for every mode — for full batch it is
    :class:`scratchnet.History`'s per-update loss and accuracy, which fit computes on the whole
    training set before each update."""

    cell: Cell
    lr: float
    seed: int
    batch_size: int | None
    steps_per_epoch: int
    epochs_planned: int
    curve: dict[str, np.ndarray]
    trace: dict[str, np.ndarray]
    diverged: bool
    diverged_at_update: int
    step_loss_head: np.ndarray
    final_test_output: np.ndarray
    seconds: float
    verification: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs_done(self) -> int:
        """Completed epochs (the last entry of ``trace``)."""
        return len(self.trace["loss"]) - 1

    def at(self, epoch: int) -> dict[str, float] | None:
        """The measurements after ``epoch`` epochs, or None if the run never got there."""
        hits = np.flatnonzero(self.curve["epoch"] == epoch)
        if not len(hits):
            return None
        return {k: float(self.curve[k][hits[0]]) for k in CURVE_KEYS}


def steps_per_epoch(gd_mode: str, n_train: int, batch_size: int) -> int:
    return {"full_batch": 1, "mini_batch": -(-n_train // batch_size), "stochastic": n_train}[gd_mode]


def batch_size_for(gd_mode: str, batch_size: int) -> int | None:
    return {"full_batch": None, "mini_batch": batch_size, "stochastic": 1}[gd_mode]


def update_budget(config: StudyConfig, n_train: int) -> int:
    """``U``: the mini-batch run's number of updates in ``config.epochs`` epochs."""
    return config.epochs * steps_per_epoch("mini_batch", n_train, config.batch_size)


def checkpoint_epochs(gd_mode: str, config: StudyConfig, n_train: int) -> dict[str, int]:
    """The epoch of each budget's checkpoint in ``gd_mode``."""
    per_epoch = steps_per_epoch(gd_mode, n_train, config.batch_size)
    updates = max(1, round(update_budget(config, n_train) / per_epoch))
    return {"equal_epochs": config.epochs, "equal_updates": updates}


def planned_epochs(gd_mode: str, config: StudyConfig, n_train: int) -> int:
    return max(checkpoint_epochs(gd_mode, config, n_train).values())


def output_delta(network: Network, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Loss and ``δ = ∂L/∂z`` of the output layer for the network's last forward pass, computed
    by scratchnet's own loss and activation code exactly as :meth:`Network._backward` does (the
    fused pair's ``p − y``, else the loss gradient through the activation's VJP)."""
    out = network.layers[-1]
    spec = network.spec
    if spec.fused:
        value, delta = scratchnet.fused.fused_loss_and_grad(spec.output["name"], network.loss_fn, out.z, out.a, target)
    else:
        value = network.loss_fn.value(out.a, target)
        delta = out.activation.backward(out.z, out.a, network.loss_fn.gradient(out.a, target))
    return float(value), np.asarray(delta)


def calibration_error(output: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the top output read as a probability: ``Σ_b (n_b/N)·|acc_b −
    conf_b|`` over ``bins`` equal-width confidence bins."""
    confidence = output.max(axis=1)
    correct = (output.argmax(axis=1) == labels).astype(np.float64)
    which = np.clip((confidence * bins).astype(np.intp), 0, bins - 1)
    gap = np.bincount(which, weights=correct - confidence, minlength=bins)
    return float(np.abs(gap).sum() / len(labels))


def _evaluate(network: Network, data: Any, train_target: np.ndarray, test_target: np.ndarray) -> dict[str, float]:
    """Full-train-set and test-set measurements at an epoch end (no update)."""
    n = data.n_train
    with np.errstate(all="ignore"):
        out_train = network.forward(data.x_train)
        hidden_out = network.layers[-1].x
        train_loss, delta = output_delta(network, train_target)
        grad_w = float(np.linalg.norm(delta.T @ hidden_out))
        per_sample = np.abs(delta) * n          # N·∂L/∂z: what each sample's own loss term gives
        wrong = out_train.argmax(axis=1) != data.y_train
        out_test = network.forward(data.x_test)
        test_loss, _ = output_delta(network, test_target)
        sums = out_test.sum(axis=1)
        above = (out_test > 0.5).sum(axis=1)
        finite = bool(np.all(np.isfinite(out_test)) and np.isfinite(train_loss))
        return {
            "train_loss": train_loss,
            "train_acc": float(np.mean(~wrong)),
            "test_loss": test_loss,
            "test_acc": float(np.mean(out_test.argmax(axis=1) == data.y_test)),
            "grad_z": float(per_sample.mean()),
            "grad_z_wrong": float(per_sample[wrong].mean()) if wrong.any() else math.nan,
            "grad_w_out": grad_w,
            "out_sum_mean": float(sums.mean()),
            "out_none": float(np.mean(above == 0)),
            "out_multi": float(np.mean(above >= 2)),
            "ece": calibration_error(out_test, data.y_test) if finite else math.nan,
        }


def make_spec(cell: Cell, data: Any, config: StudyConfig, seed: int) -> ModelSpec:
    return ModelSpec((data.n_features, config.hidden_units, data.n_classes), hidden=cell.hidden, output=cell.output,
                     loss=cell.loss, dtype="float64", seed=seed)


def evaluation_epochs(gd_mode: str, config: StudyConfig, n_train: int) -> set[int]:
    """The epochs after which :func:`train_run` measures everything (0 = before training)."""
    epochs = planned_epochs(gd_mode, config, n_train)
    if epochs <= DENSE_EPOCHS:
        return set(range(epochs + 1))
    stride = -(-epochs // DENSE_EPOCHS)
    keep = set(range(min(epochs, DENSE_EPOCHS // 2) + 1)) | set(range(0, epochs + 1, stride))
    return keep | set(checkpoint_epochs(gd_mode, config, n_train).values()) | {epochs}


def train_run(cell: Cell, lr: float, seed: int, data: Any, config: StudyConfig) -> tuple[Run, dict[str, np.ndarray]]:
    """Train one run with :func:`scratchnet.fit`, measuring at epoch ends. Returns the run and the
    initial state (for the lockstep verification)."""
    start = time.perf_counter()
    spec = make_spec(cell, data, config, seed)
    network = Network(spec)
    state0 = network.state_dict()
    n_classes = data.n_classes
    train_target = network.loss_fn.prepare_target(data.y_train, n_classes, network.dtype)
    test_target = network.loss_fn.prepare_target(data.y_test, n_classes, network.dtype)
    epochs = planned_epochs(cell.gd_mode, config, data.n_train)
    when = evaluation_epochs(cell.gd_mode, config, data.n_train)
    curve: dict[str, list[float]] = {k: [] for k in ("epoch", *CURVE_KEYS)}

    def record(epoch: int) -> bool:
        values = _evaluate(network, data, train_target, test_target)
        curve["epoch"].append(epoch)
        for key in CURVE_KEYS:
            curve[key].append(values[key])
        return bool(np.isfinite(values["train_loss"]))

    record(0)

    def on_epoch_end(epoch: int, history: scratchnet.History) -> bool:
        return record(epoch + 1) if epoch + 1 in when else True

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scratchnet.NonFiniteWarning)
        history = scratchnet.fit(network, data.x_train, data.y_train, epochs=epochs,
                                 batch_size=batch_size_for(cell.gd_mode, config.batch_size),
                                 optimizer={"name": "sgd", "lr": lr}, seed=seed, on_epoch_end=on_epoch_end)
    arrays = {k: np.asarray(v, dtype=np.int64 if k == "epoch" else np.float64) for k, v in curve.items()}
    done = len(history.epoch_loss)
    diverged = bool(history.diverged or not np.isfinite(arrays["train_loss"][-1]))
    if cell.gd_mode == "full_batch":
        # History: the whole-set loss and accuracy before each update = after 0..done-1 updates
        last = arrays["train_loss"][-1] if arrays["epoch"][-1] == done else math.inf
        last_acc = arrays["train_acc"][-1] if arrays["epoch"][-1] == done else math.nan
        trace = {"loss": np.array([*history.epoch_loss, last], dtype=np.float64),
                 "acc": np.array([*history.epoch_accuracy, last_acc], dtype=np.float64)}
    else:
        trace = {"loss": arrays["train_loss"].copy(), "acc": arrays["train_acc"].copy()}
    if diverged and np.isfinite(trace["loss"][-1]):
        trace = {"loss": np.append(trace["loss"], math.inf), "acc": np.append(trace["acc"], math.nan)}
    with np.errstate(all="ignore"):
        final_test = network.forward(data.x_test)
    run = Run(cell=cell, lr=float(lr), seed=seed, batch_size=batch_size_for(cell.gd_mode, config.batch_size),
              steps_per_epoch=steps_per_epoch(cell.gd_mode, data.n_train, config.batch_size), epochs_planned=epochs,
              curve=arrays, trace=trace, diverged=diverged, diverged_at_update=history.steps if diverged else -1,
              step_loss_head=np.asarray(history.step_loss[:max(config.lockstep_steps, 1)], dtype=np.float64),
              final_test_output=final_test, seconds=time.perf_counter() - start)
    return run, state0


#: A lockstep run whose tolerance breaks counts as "unstable" (not "fail") when a one-ulp nudge of
#: scratchnet's own initial weights moves its weights at least this fraction as far as torch's
#: weights differ: the learning rate amplifies rounding, no derivative is wrong.
CONTROL_FRACTION = 0.1


def rounding_control(spec: ModelSpec, state0: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray, lr: float,
                     schedule: list[np.ndarray]) -> float:
    """The largest weight difference after the SGD steps of ``schedule`` (the batches lockstep
    replayed) between scratchnet started from ``state0`` and from ``state0`` nudged by one ulp: how
    much this trajectory amplifies a rounding-sized perturbation."""
    finals = []
    for nudge in (False, True):
        network = Network(spec)
        network.load_state_dict({k: np.nextafter(v, np.inf) if nudge else v for k, v in state0.items()})
        optimizer = scratchnet.registry.make_optimizer({"name": "sgd", "lr": lr}, network.parameters())
        xs = np.ascontiguousarray(x, dtype=network.dtype)
        target = network.loss_fn.prepare_target(y, network.n_outputs, network.dtype)
        with np.errstate(all="ignore"):
            for idx in schedule:
                network.train_step(xs[idx], target[idx], optimizer)
        finals.append(network.state_dict())
    with np.errstate(all="ignore"):
        return float(max(np.max(np.abs(finals[0][k] - finals[1][k])) for k in finals[0]))


def verify_run(run: Run, state0: Mapping[str, np.ndarray], data: Any, config: StudyConfig) -> dict[str, Any]:
    """Train the identical torch model in lockstep for the run's first steps, replaying the run's
    own batches — ``fit``'s written order (:mod:`~scratchnet_reference.core.schedule`) for the
    run's batch size and seed over the whole training set — and return the worst ``tol_ratio``, the
    largest weight difference, how the steps relate to the study's, the schedule replayed
    (``lockstep_schedule``, in words) and, when the tolerance breaks, the :func:`rounding_control`."""
    from ..core.lockstep import lockstep
    from ..core.protocol import ScratchnetImplementation
    from ..core.schedule import flat_schedule

    steps = config.lockstep_steps
    result: dict[str, Any] = {"lockstep_steps": 0, "lockstep_batch": 0, "lockstep_replay": "skipped",
                              "lockstep_schedule": "none (skipped)",
                              "lockstep_max_ratio": math.nan, "lockstep_distance": math.nan,
                              "control_distance": math.nan, "lockstep_status": "skipped", "lockstep_note": ""}
    if steps <= 0:
        return result
    cell = run.cell
    spec = make_spec(cell, data, config, run.seed)
    x, y = data.x_train, data.y_train
    replay = "exact"
    n = x.shape[0]
    batch = run.batch_size if run.batch_size is None else min(int(run.batch_size), n)
    schedule = flat_schedule(n, batch, steps, shuffle=True, seed=run.seed)
    per_epoch = -(-n // (batch or n))
    size = "full batch" if batch is None else f"batch size {batch}"
    result.update(lockstep_steps=steps, lockstep_batch=n if batch is None else batch, lockstep_replay=replay,
                  lockstep_schedule=(f"the run's first {len(schedule)} batches ({size}, {per_epoch} per epoch over "
                                     f"all {n} training samples, shuffled with seed {run.seed})"))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            records = lockstep(ScratchnetImplementation(), spec, x, y, {"name": "sgd", "lr": run.lr},
                               gd_mode=cell.gd_mode, steps=steps, state=state0, seed=run.seed, schedule=schedule)
        except Exception as exc:  # noqa: BLE001 - a crash is a failed verification, recorded
            result.update(lockstep_max_ratio=math.inf, lockstep_status="fail",
                          lockstep_note=f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:200])
            return result
    ratios = np.array([r.tol_ratio for r in records], dtype=np.float64)
    distances = np.array([r.param_distance for r in records], dtype=np.float64)
    statuses = {r.status for r in records}
    status = "fail" if "fail" in statuses else ("unverified" if "unverified" in statuses else "pass")
    notes = []
    if replay == "exact":
        ours = np.array([r.actual_value for r in records if r.check == "training_step"], dtype=np.float64)
        head = run.step_loss_head[:len(ours)]
        if len(head) == len(ours) and len(ours):
            with np.errstate(all="ignore"):
                gap = float(np.max(np.abs(ours - head) / np.maximum(np.abs(head), 1e-300)))
            if not gap <= 1e-12:
                replay = "different steps"
                notes.append(f"lockstep losses differ from the study's by up to {gap:.1e} (relative)")
        else:
            replay = f"first {len(head)} steps"
    worst = float(np.max(ratios)) if len(ratios) and not np.any(np.isnan(ratios)) else math.inf
    distance = float(np.nanmax(distances)) if np.any(np.isfinite(distances)) else math.inf
    control = math.nan
    if status == "fail":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            control = rounding_control(spec, state0, x, y, run.lr, schedule)
        if np.isfinite(distance) and control >= CONTROL_FRACTION * distance:
            status = "unstable"
            notes.append(f"rounding amplified: a 1-ulp nudge of the initial weights moves scratchnet's own weights "
                         f"by {control:.1e} in {steps} steps; scratchnet and torch differ by {distance:.1e}")
        else:
            notes.append(f"not explained by rounding: a 1-ulp nudge moves scratchnet's weights by {control:.1e}, "
                         f"torch's differ by {distance:.1e}")
    elif status == "unverified":
        notes.append("no oracle could judge a step: torch's own arithmetic broke down (unverified)")
    result.update(lockstep_steps=sum(r.check == "training_step" for r in records), lockstep_replay=replay,
                  lockstep_max_ratio=worst, lockstep_distance=distance, control_distance=control,
                  lockstep_status=status, lockstep_note="; ".join(notes))
    return result


# --------------------------------------------------------------------------------------------
# The whole study
# --------------------------------------------------------------------------------------------

@contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """BLAS with one thread: these matrices are tiny, and on a shared 2-core machine a second
    OpenBLAS thread made a 1347×64 full-batch step ~20× slower (measured: 1.5 ms vs 34 ms)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is declared in the study extra
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _one_job(job: tuple[Cell, float, int], data: Any, config: StudyConfig) -> Run:
    cell, lr, seed = job
    run, state0 = train_run(cell, lr, seed, data, config)
    run.verification = verify_run(run, state0, data, config)
    return run


_WORKER: dict[str, Any] = {}


def _worker_init(data: Any, config: StudyConfig) -> None:  # pragma: no cover - runs in worker processes
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    _WORKER["data"], _WORKER["config"] = data, config


def _worker_job(job: tuple[Cell, float, int]) -> Run:  # pragma: no cover - runs in worker processes
    with _single_threaded_blas():
        return _one_job(job, _WORKER["data"], _WORKER["config"])


def run_study(data: Any, config: StudyConfig, progress: Any = None, jobs: int = 1) -> list[Run]:
    """Every run of ``config`` on ``data``, in the order of :meth:`StudyConfig.jobs` whatever
    ``jobs`` (worker processes) is. ``progress`` has ``update(done, label)``."""
    todo = config.jobs()
    runs: list[Run] = []
    if progress is not None:
        progress.update(0)
    if jobs <= 1:
        with _single_threaded_blas():
            for i, job in enumerate(todo, 1):
                runs.append(_one_job(job, data, config))
                if progress is not None:
                    progress.update(i, f"{job[0].label()} lr={job[1]:g}")
        return runs
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init, initargs=(data, config)) as pool:
        for i, run in enumerate(pool.map(_worker_job, todo, chunksize=1), 1):
            runs.append(run)
            if progress is not None:
                progress.update(i, f"{run.cell.label()} lr={run.lr:g}")
    return runs


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

#: a loss "rise" or "ended above its minimum" beyond this relative size counts as substantial
SUBSTANTIAL = 0.01


def rise_stats(loss: np.ndarray) -> dict[str, Any]:
    """How the training loss moved between consecutive measurements: ``loss_rises`` (times it
    rose by more than a relative 1e-9), ``loss_rises_1pct`` (by more than 1 %), ``max_rise`` (the
    largest relative rise), ``ended_above_start``, ``final_over_min`` (final / minimum − 1; inf
    once non-finite) and ``ended_above_min`` (``final_over_min`` > 1 %)."""
    loss = np.asarray(loss, dtype=np.float64)
    if len(loss) < 2:
        return {"loss_rises": 0, "loss_rises_1pct": 0, "max_rise": 0.0, "ended_above_start": False,
                "final_over_min": 0.0, "ended_above_min": False}
    with np.errstate(all="ignore"):
        prev, nxt = loss[:-1], loss[1:]
        rel = np.where(np.isfinite(prev) & np.isfinite(nxt), nxt / prev - 1.0, np.inf)
        rel = rel[np.isfinite(prev)]
        final = loss[-1]
        finite = loss[np.isfinite(loss)]
        over_min = float(final / finite.min() - 1.0) if len(finite) and np.isfinite(final) else math.inf
        return {"loss_rises": int(np.count_nonzero(rel > 1e-9)),
                "loss_rises_1pct": int(np.count_nonzero(rel > SUBSTANTIAL)),
                "max_rise": float(max(rel.max(initial=0.0), 0.0)),
                "ended_above_start": bool(not np.isfinite(final) or final > loss[0]),
                "final_over_min": over_min, "ended_above_min": bool(over_min > SUBSTANTIAL)}


def _first_reaching(acc: np.ndarray, target: float) -> int | None:
    hits = np.flatnonzero(np.nan_to_num(acc, nan=-1.0) >= target)
    return int(hits[0]) if len(hits) else None


def runs_frame(runs: Sequence[Run], data: Any, config: StudyConfig):
    """One row per run × budget: the measurements at the checkpoint, the loss-rise statistics
    up to it, the start of training and the lockstep verification."""
    import pandas as pd

    rows = []
    for run in runs:
        cp = checkpoint_epochs(run.cell.gd_mode, config, data.n_train)
        for budget in BUDGETS:
            epoch = cp[budget]
            measured = run.at(epoch)
            at = measured if measured is not None else dict.fromkeys(CURVE_KEYS, math.nan)
            diverged = measured is None or not np.isfinite(at["train_loss"])
            hit = _first_reaching(run.trace["acc"][:epoch + 1], config.target_accuracy)
            rises = rise_stats(run.trace["loss"][:epoch + 1])
            c = run.curve
            rows.append({
                "dataset": data.name, "combo": run.cell.combo, "output": run.cell.output, "loss": run.cell.loss,
                "gd_mode": run.cell.gd_mode, "hidden": run.cell.hidden, "headline": config.is_headline(run.cell),
                "budget": budget, "lr": run.lr, "seed": run.seed,
                "batch_size": data.n_train if run.batch_size is None else run.batch_size,
                "epochs": epoch, "updates": epoch * run.steps_per_epoch,
                "diverged": bool(diverged),
                "chance_level": bool(diverged or at["train_acc"] < 2.0 / data.n_classes),
                "diverged_at_update": run.diverged_at_update if diverged else -1,
                **{k: at[k] for k in ("train_loss", "train_acc", "test_loss", "test_acc")},
                "epochs_to_target": math.nan if hit is None else float(hit),
                "updates_to_target": math.nan if hit is None else float(hit * run.steps_per_epoch),
                **rises,
                "initial_train_loss": float(c["train_loss"][0]),
                "grad_z_init": float(c["grad_z"][0]), "grad_z_wrong_init": float(c["grad_z_wrong"][0]),
                "grad_z": at["grad_z"], "grad_z_wrong": at["grad_z_wrong"],
                "grad_w_out_init": float(c["grad_w_out"][0]), "grad_w_out": at["grad_w_out"],
                "out_sum_mean": at["out_sum_mean"], "out_none": at["out_none"], "out_multi": at["out_multi"],
                "ece": at["ece"], "seconds": run.seconds,
                **run.verification,
            })
    return pd.DataFrame(rows)


RESULT_MEAN_COLUMNS = ("train_acc", "test_acc", "train_loss", "test_loss", "out_sum_mean", "out_none", "out_multi",
                       "ece", "grad_z_init", "grad_z", "grad_z_wrong_init", "grad_z_wrong", "grad_w_out_init",
                       "grad_w_out")


def _choose_lr(group) -> float:
    """The learning rate with the highest mean training accuracy over seeds among those where no
    seed diverged; ties: the lower mean training loss, then the smaller rate. NaN if all diverged."""
    by_lr = group.groupby("lr").agg(acc=("train_acc", "mean"), loss=("train_loss", "mean"),
                                    bad=("diverged", "any"))
    ok = by_lr[~by_lr["bad"] & np.isfinite(by_lr["acc"]) & np.isfinite(by_lr["loss"])]
    if ok.empty:
        return math.nan
    ok = ok.reset_index().sort_values(["acc", "loss", "lr"], ascending=[False, True, True], kind="stable")
    return float(ok.iloc[0]["lr"])


def _lrs_text(values: Sequence[float]) -> str:
    return " ".join(f"{v:g}" for v in sorted(set(values)))


def results_frame(runs_df, config: StudyConfig):
    """One row per cell × budget: the best learning rate's measurements (mean over seeds, with
    standard deviation, min and max where there are several), the sweep's divergences and loss
    rises, and the worst lockstep ratio over all of the cell's runs."""
    import pandas as pd

    rows = []
    keys = ["dataset", "combo", "output", "loss", "gd_mode", "hidden", "budget"]
    for key, group in runs_df.groupby(keys, sort=False):
        info = dict(zip(keys, key))
        grid = sorted(group["lr"].unique())
        best = _choose_lr(group)
        sel = group[group["lr"] == best] if np.isfinite(best) else group.iloc[0:0]
        n = len(sel)
        row: dict[str, Any] = {**info, "headline": bool(group["headline"].iloc[0]),
                               "batch_size": int(group["batch_size"].iloc[0]),
                               "epochs": int(group["epochs"].iloc[0]), "updates": int(group["updates"].iloc[0]),
                               "n_seeds": int(group["seed"].nunique()), "lr_grid": _lrs_text(grid), "best_lr": best,
                               "best_lr_at_edge": bool(np.isfinite(best) and len(grid) > 1
                                                       and best in (grid[0], grid[-1]))}
        for col in RESULT_MEAN_COLUMNS:
            values = sel[col].to_numpy(dtype=np.float64)
            row[col] = float(np.mean(values)) if n else math.nan
        for col in ("train_acc", "test_acc"):
            values = sel[col].to_numpy(dtype=np.float64)
            row[f"{col}_std"] = float(np.std(values, ddof=1)) if n > 1 else math.nan
            row[f"{col}_min"] = float(np.min(values)) if n else math.nan
            row[f"{col}_max"] = float(np.max(values)) if n else math.nan
        reached = sel["epochs_to_target"].notna()
        row["target_reached"] = f"{int(reached.sum())}/{n}"
        row["epochs_to_target"] = float(sel["epochs_to_target"].mean()) if n and reached.all() else math.nan
        row["updates_to_target"] = float(sel["updates_to_target"].mean()) if n and reached.all() else math.nan
        row["diverged"] = bool(n == 0)
        row["diverged_lrs"] = _lrs_text(group.loc[group["diverged"], "lr"])
        row["loss_rose_lrs"] = _lrs_text(group.loc[group["loss_rises"] > 0, "lr"])
        row["loss_rose_1pct_lrs"] = _lrs_text(group.loc[group["loss_rises_1pct"] > 0, "lr"])
        row["ended_above_min_lrs"] = _lrs_text(group.loc[group["ended_above_min"], "lr"])
        row["ended_above_start_lrs"] = _lrs_text(group.loc[group["ended_above_start"], "lr"])
        row["chance_level_lrs"] = _lrs_text(group.loc[group["chance_level"], "lr"])
        row["loss_rises_at_best"] = int(sel["loss_rises"].max()) if n else -1
        row["max_rise_at_best"] = float(sel["max_rise"].max()) if n else math.nan
        ratios = group["lockstep_max_ratio"].to_numpy(dtype=np.float64)
        row["lockstep_runs"] = int(group[["lr", "seed"]].drop_duplicates().shape[0])
        row["lockstep_max_ratio"] = float(np.max(ratios)) if len(ratios) else math.nan
        statuses = set(group["lockstep_status"])
        row["lockstep_status"] = next((s for s in ("fail", "unstable", "unverified") if s in statuses),
                                      "skipped" if statuses == {"skipped"} else "pass")
        row["lockstep_replay"] = group["lockstep_replay"].iloc[0]
        row["lockstep_schedule"] = group["lockstep_schedule"].iloc[0]
        rows.append(row)
    frame = pd.DataFrame(rows)
    order = {
        "combo": {combo_name(o, l): i for i, (o, l) in enumerate(config.combos)},
        "gd_mode": {m: i for i, m in enumerate(config.modes)},
        "hidden": {h: i for i, h in enumerate(config.hidden)},
        "budget": {b: i for i, b in enumerate(BUDGETS)},
    }
    sort_keys = pd.DataFrame({k: frame[k].map(v) for k, v in order.items()})
    return frame.loc[sort_keys.sort_values(["budget", "combo", "gd_mode", "hidden"]).index].reset_index(drop=True)
