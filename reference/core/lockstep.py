"""Training curves in lockstep: the implementation and torch start from the same weights,
see the same mini-batches in the same order (the written schedule of
:mod:`~scratchnet_reference.core.schedule`, or the batches a caller replays) and use the same
optimizer settings (``torch.optim``); after every step the losses and the parameters are compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from scratchnet import ModelSpec

from .boundary import private
from .compare import combination, flavours_for, model_dropout_masks, prepare_batch, set_mode, torch_forward_backward
from .mapping import to_tensor, torch_optimizer
from .protocol import Implementation, initial_state
from .records import Record, measure, versions_string
from .schedule import flat_schedule
from .tolerances import training_tolerance
from .torch_import import device_name, versions
from .torch_model import build_torch_model, set_dropout_masks, torch_state_to_numpy

__all__ = ["GD_MODES", "lockstep", "optimizer_label"]

def _partial_batch_size(n: int) -> int:
    """About a third of ``n``, never dividing ``n``: at least two batches, the last one partial
    (for ``n >= 3``; ``n = 13`` gives 5, 5, 3)."""
    if n < 3:
        return 1
    size = n // 3 + 1
    return size + 1 if n % size == 0 else size


#: name -> batch size as a function of the number of samples
GD_MODES: dict[str, Any] = {
    "full_batch": lambda n: None,
    "mini_batch": _partial_batch_size,
    "stochastic": lambda n: 1,
}


def optimizer_label(spec: Mapping[str, Any]) -> str:
    """``"sgd(lr=0.1, momentum=0.9)"``: name and the settings given."""
    params = {k: v for k, v in spec.items() if k != "name"}
    return f"{spec['name']}({', '.join(f'{k}={v}' for k, v in params.items())})"


def lockstep(impl: Implementation, spec: ModelSpec, x: Any, y: Any, optimizer: Mapping[str, Any], *,
             gd_mode: str = "mini_batch", steps: int = 20, device: str = "cpu", flavour: str | None = None,
             state: Mapping[str, np.ndarray] | None = None, shuffle: bool = True, seed: int = 0,
             schedule: list[np.ndarray] | None = None) -> list[Record]:
    """Train ``steps`` steps on both sides and return one ``training_step`` record per step
    and one ``final_params`` record per parameter, carrying the first step at which the
    tolerance broke (−1 if none).

    ``schedule``: the batches (index arrays into ``x``) to replay, e.g. a run's own; default the
    first ``steps`` batches of :func:`~scratchnet_reference.core.schedule.flat_schedule` for
    ``gd_mode``'s batch size, ``shuffle`` and ``seed``.

    A ``training_step`` record compares the loss before the update (``actual_value`` vs
    ``expected_value``; ``max_abs_err``, ``max_rel_err`` and ``atol`` are the loss's) and every
    parameter after it (``param_distance`` = the largest parameter difference); its
    ``tol_ratio`` is the worst of the two.

    Batch norm and dropout train in training mode: after each step the implementation's dropout
    masks are replayed by torch, and the running statistics are compared with the parameters
    (``param_distance``; the ``final_params`` records name them).
    """
    if gd_mode not in GD_MODES:
        raise ValueError(f"gd_mode must be one of {sorted(GD_MODES)}, got {gd_mode!r}")
    flavour = flavour or flavours_for(spec)[-1]  # torch's fused form where it has one
    state = initial_state(spec) if state is None else state
    xs, target = prepare_batch(spec, x, y)
    n = xs.shape[0]
    if schedule is None:
        schedule = flat_schedule(n, GD_MODES[gd_mode](n), steps, shuffle=shuffle, seed=seed)

    model = impl.build(spec, private(dict(state)))  # the user's own copy: its updates reach nothing of ours
    set_mode(model, spec, "train")
    model.configure_optimizer(dict(optimizer))
    torch_model = build_torch_model(spec, state, device)
    opt = torch_optimizer(optimizer, torch_model.parameters())
    dtype = torch_model.layers[0].weight.dtype
    xt, tt = to_tensor(xs, device, dtype), to_tensor(target, device, dtype)

    combo = combination(spec, flavour, device, impl.name, "train", optimizer=optimizer_label(optimizer),
                        gd_mode=gd_mode)
    meta = {"device_name": device_name(device), "versions": versions_string(versions())}
    records: list[Record] = []
    first_break = -1
    for step, idx in enumerate(schedule):
        loss_impl, _ = model.loss_and_grads(xs[idx], target[idx])
        masks = model_dropout_masks(model, spec, "train")
        model.step()
        opt.zero_grad(set_to_none=False)
        if masks is not None:
            set_dropout_masks(torch_model, masks)
        idx_t = to_tensor(idx, device)
        ref = torch_forward_backward(torch_model, spec, flavour, xt[idx_t], tt[idx_t])
        for p, g in zip(torch_model.parameters(), ref.grads.values(), strict=True):
            p.grad = to_tensor(g, device, dtype)
        opt.step()

        tol = training_tolerance(spec.dtype, "training_step", step)
        loss_atol = tol.atol_for(abs(ref.loss))
        loss_stats = measure(loss_impl, ref.loss, tol.rtol, loss_atol)
        params_impl, params_ref = model.state_dict(), torch_state_to_numpy(torch_model)
        param_ratio, distance = 0.0, 0.0
        for name, expected in params_ref.items():
            actual = np.asarray(params_impl[name])
            stats = measure(actual, expected, tol.rtol, tol.atol_for(float(np.abs(expected).max())))
            param_ratio = max(param_ratio, stats["tol_ratio"])
            distance = max(distance, stats["max_abs_err"])
        ratio = max(loss_stats["tol_ratio"], param_ratio)
        passed = ratio <= 1
        status = "pass" if passed else ("unverified" if ref.broken else "fail")
        if status == "fail" and first_break < 0:
            first_break = step
        records.append(Record(
            check="training_step", param="loss+params", shape=f"({len(idx)},)", **combo.__dict__,
            max_abs_err=loss_stats["max_abs_err"], max_rel_err=loss_stats["max_rel_err"], tol_ratio=ratio,
            atol=loss_atol, rtol=tol.rtol, passed=status != "fail", status=status, worst_index="()",
            step=step, actual_value=float(loss_impl), expected_value=ref.loss, param_distance=distance,
            note=ref.broken if not passed else "", **meta))

    final_tol = training_tolerance(spec.dtype, "final_params", len(schedule))
    params_impl, params_ref = model.state_dict(), torch_state_to_numpy(torch_model)
    for name, expected in params_ref.items():
        actual = np.asarray(params_impl[name])
        atol = final_tol.atol_for(float(np.abs(expected).max()))
        stats = measure(actual, expected, final_tol.rtol, atol)
        passed = stats["tol_ratio"] <= 1
        records.append(Record(
            check="final_params", param=name, shape=str(expected.shape), **combo.__dict__, atol=atol,
            rtol=final_tol.rtol, passed=passed, status="pass" if passed else "fail", step=len(schedule),
            first_break_step=first_break, param_distance=stats["max_abs_err"], **stats, **meta))
    return records
