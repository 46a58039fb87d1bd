"""scratchnet's public ``Network.fit`` in lockstep with a torch training loop.

:func:`~scratchnet_reference.core.lockstep.lockstep` drives an implementation step by step through
the adapter protocol; this drives what users call — ``fit(x, y, epochs, batch_size, optimizer,
shuffle, seed)`` — and replays the same run in torch from the *written* batch order of
:mod:`~scratchnet_reference.core.schedule`, derived by the reference's own code (never by calling
``scratchnet.batch_schedule``). So a ``fit`` that batches, shuffles, seeds, averages a partial
batch or counts epochs differently from its contract parts from torch.

``fit`` exposes the loss of every step (``History.step_loss``, before that step's update) and an
``on_epoch_end`` callback; no per-step parameter hook is needed:

* ``fit_step`` records, one per step: ``step_loss[i]`` against torch's loss on the same batch
  before its update — a wrong update at step ``i`` shows in the loss of step ``i + 1``;
* ``fit_epoch`` records, one per epoch: every parameter at the epoch's end (snapshot in
  ``on_epoch_end``), ``History.epoch_loss`` against the sample-weighted mean of torch's step losses
  (the plain sum for ``reduction="sum"``) and, for class labels, ``History.epoch_accuracy`` against
  the fraction of torch's predictions (arg-max, or ``output > 0.5`` for one output) that were right
  before their update.

The first record that breaks its tolerance names the step (epoch, batch) where the curves part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from scratchnet import ModelSpec, Network

from .compare import combination, flavours_for, prepare_batch, torch_forward_backward
from .lockstep import optimizer_label
from .mapping import to_tensor, torch_optimizer
from .protocol import initial_state
from .records import Record, measure, versions_string
from .schedule import epoch_batches
from .tolerances import training_tolerance
from .torch_import import device_name, torch_module, versions
from .torch_model import build_torch_model, torch_state_to_numpy

__all__ = ["fit_lockstep", "predicted_classes", "FIT_CHECKS"]

FIT_CHECKS = ("fit_step", "fit_epoch")


def predicted_classes(output: np.ndarray) -> np.ndarray:
    """The documented ``predict`` rule: arg-max of each row; ``output > 0.5`` for a single output."""
    output = np.asarray(output)
    return (output[:, 0] > 0.5).astype(np.int64) if output.shape[1] == 1 else output.argmax(axis=1)


def _torch_run(spec: ModelSpec, state: Mapping[str, np.ndarray], xs: np.ndarray, target: np.ndarray,
               optimizer: Mapping[str, Any], batches: list[list[np.ndarray]], device: str) -> dict[str, list]:
    """The torch loop over ``batches``: per step the loss and output before the update, per epoch
    the parameters after it."""
    torch = torch_module()
    flavour = flavours_for(spec)[-1]
    model = build_torch_model(spec, state, device)
    opt = torch_optimizer(optimizer, model.parameters())
    dtype = model.layers[0].weight.dtype
    xt, tt = to_tensor(xs, device, dtype), to_tensor(target, device, dtype)
    out: dict[str, list] = {"loss": [], "output": [], "params": []}
    for epoch in batches:
        for idx in epoch:
            opt.zero_grad(set_to_none=False)
            idx_t = to_tensor(idx, device)
            ref = torch_forward_backward(model, spec, flavour, xt[idx_t], tt[idx_t])
            for p, g in zip(model.parameters(), ref.grads.values()):
                p.grad = torch.as_tensor(g, device=device, dtype=dtype)
            opt.step()
            out["loss"].append(ref.loss)
            out["output"].append(ref.output)
        out["params"].append(torch_state_to_numpy(model))
    return out


def _labels(y: Any) -> np.ndarray | None:
    """Class labels when ``y`` is a label vector, else None (accuracy is not compared)."""
    y = np.asarray(y)
    return y.astype(np.int64) if y.ndim == 1 and y.dtype.kind in "iu" else None


def fit_lockstep(spec: ModelSpec, x: Any, y: Any, optimizer: Mapping[str, Any], *, batch_size: int | None,
                 epochs: int = 3, shuffle: bool = True, seed: int = 0, gd_mode: str = "", device: str = "cpu",
                 state: Mapping[str, np.ndarray] | None = None,
                 network_factory: Callable[[ModelSpec], Network] = Network) -> list[Record]:
    """Train ``network_factory(spec)`` (loaded with ``state``) by ``fit`` and torch by the written
    schedule; return the ``fit_step`` and ``fit_epoch`` records (see the module docstring)."""
    state = initial_state(spec) if state is None else state
    xs, target = prepare_batch(spec, x, y)
    n = xs.shape[0]
    batches = epoch_batches(n, batch_size, epochs, shuffle=shuffle, seed=seed)
    sizes = [[len(idx) for idx in epoch] for epoch in batches]

    network = network_factory(spec)
    network.load_state_dict(state)
    snapshots: list[dict[str, np.ndarray]] = []
    history = network.fit(x, y, epochs=epochs, batch_size=batch_size, optimizer=dict(optimizer), shuffle=shuffle,
                          seed=seed, on_epoch_end=lambda epoch, h: snapshots.append(network.state_dict()))
    ref = _torch_run(spec, state, xs, target, optimizer, batches, device)

    combo = combination(spec, flavours_for(spec)[-1], device, "scratchnet", optimizer=optimizer_label(optimizer),
                        gd_mode=gd_mode)
    meta = {"device_name": device_name(device), "versions": versions_string(versions())}
    where = [(e, b, len(epoch)) for e, epoch in enumerate(batches) for b in range(len(epoch))]
    records: list[Record] = []

    def add(check: str, step: int, ratio: float, stats: dict[str, Any], tol_rtol: float, atol: float,
            note: str, **extra: Any) -> None:
        passed = ratio <= 1
        if not passed:
            e, b, per = where[min(step, len(where) - 1)] if where else (0, 0, 0)
            note = f"curves part at step {step} (epoch {e}, batch {b + 1} of {per}): {note}"
        records.append(Record(check=check, param="fit", shape="()", **combo.__dict__, max_abs_err=stats["max_abs_err"],
                              max_rel_err=stats["max_rel_err"], tol_ratio=ratio, atol=atol, rtol=tol_rtol,
                              passed=passed, status="pass" if passed else "fail", worst_index="()", step=step,
                              note=note if not passed else "", **meta, **extra))

    steps = len(where)
    if len(history.step_loss) != steps:
        first = min(len(history.step_loss), steps)
        add("fit_step", first, float("inf"), dict(max_abs_err=float("inf"), max_rel_err=float("inf")), 0.0, 0.0,
            f"fit ran {len(history.step_loss)} steps, the schedule "
            f"({epochs} epochs of batches {sizes[0] if sizes else []})"
            f" has {steps}")
    for step in range(min(len(history.step_loss), steps)):
        tol = training_tolerance(spec.dtype, "training_step", step)
        atol = tol.atol_for(abs(ref["loss"][step]))
        stats = measure(history.step_loss[step], ref["loss"][step], tol.rtol, atol)
        add("fit_step", step, stats["tol_ratio"], stats, tol.rtol, atol,
            f"loss {history.step_loss[step]!r} vs torch {ref['loss'][step]!r}",
            actual_value=float(history.step_loss[step]), expected_value=float(ref["loss"][step]))

    labels = _labels(y)
    end = 0
    for epoch, epoch_sizes in enumerate(sizes):
        first, end = end, end + len(epoch_sizes)
        if epoch >= len(snapshots):
            break  # fit stopped early: the step-count record above already failed
        tol = training_tolerance(spec.dtype, "final_params", end)
        ratio, distance, problems = 0.0, 0.0, []
        for name, expected in ref["params"][epoch].items():
            s = measure(np.asarray(snapshots[epoch][name]), expected, tol.rtol,
                        tol.atol_for(float(np.abs(expected).max())))
            ratio, distance = max(ratio, s["tol_ratio"]), max(distance, s["max_abs_err"])
            if s["tol_ratio"] > 1:
                problems.append(f"{name} differs by {s['max_abs_err']:.3g}")
        losses = np.asarray(ref["loss"][first:end], dtype=np.float64)
        weights = np.asarray(epoch_sizes, dtype=np.float64) if spec.reduction == "mean" else np.ones(len(losses))
        expected_loss = float(losses @ weights / (n if spec.reduction == "mean" else 1))
        loss_tol = training_tolerance(spec.dtype, "training_step", end)
        loss_stats = measure(history.epoch_loss[epoch], expected_loss, loss_tol.rtol,
                             loss_tol.atol_for(abs(expected_loss)))
        if loss_stats["tol_ratio"] > 1:
            problems.append(f"epoch loss {history.epoch_loss[epoch]!r} vs {expected_loss!r}")
        ratio = max(ratio, loss_stats["tol_ratio"])
        if labels is not None:
            right = sum(int(np.count_nonzero(predicted_classes(out) == labels[idx]))
                        for out, idx in zip(ref["output"][first:end], batches[epoch]))
            accuracy = history.epoch_accuracy[epoch] if epoch < len(history.epoch_accuracy) else float("nan")
            if not accuracy == right / n:
                ratio = float("inf")
                problems.append(f"epoch accuracy {accuracy!r} vs torch's {right / n!r}")
        add("fit_epoch", end - 1, ratio, loss_stats, tol.rtol, tol.atol, "; ".join(problems),
            actual_value=float(history.epoch_loss[epoch]), expected_value=expected_loss, param_distance=distance)
    first_break = min((r.step for r in records if r.status == "fail"), default=-1)
    return [replace(r, first_break_step=first_break) for r in records]
