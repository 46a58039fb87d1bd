"""Forward, loss and gradient comparisons of an implementation against torch, with the
finite-difference oracle as the tie-breaker.

:func:`compare_model` runs one model on one batch through the implementation and through
torch in every applicable flavour, and returns one :class:`~reference.records.Record` per
compared tensor: the output, the loss, and each parameter's gradient.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from scratchnet import ModelSpec, registry

from ._torch import device_name, torch_module, versions
from .mapping import FLAVOURS, fused_loss, to_tensor
from .protocol import Implementation, initial_state
from .records import Combination, Record, measure, vector_agreement, versions_string
from .tolerances import FD_TOLERANCES, Tolerance, tolerance
from .torch_model import build_torch_model, torch_loss

__all__ = ["compare_model", "flavours_for", "prepare_batch", "combination", "fd_gradients",
           "TorchResult", "torch_forward_backward"]


def flavours_for(spec: ModelSpec) -> tuple[str, ...]:
    """``("modular", "fused")`` for pairs torch fuses, else ``("modular",)``."""
    return FLAVOURS if fused_loss(spec.output["name"], spec.loss) else ("modular",)


def prepare_batch(spec: ModelSpec, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Inputs cast to the spec's dtype and the target in the form the loss uses."""
    dtype = np.dtype(spec.dtype)
    xs = np.ascontiguousarray(x, dtype=dtype)
    loss = registry.make_loss(spec.loss, spec.reduction)
    return xs, loss.prepare_target(y, spec.sizes[-1], dtype)


def combination(spec: ModelSpec, flavour: str, device: str, impl: str, **training: Any) -> Combination:
    return Combination(
        hidden=",".join(registry.label(h) for h in spec.hidden) or "-",
        output=registry.label(spec.output), loss=registry.label(spec.loss),
        reduction=spec.reduction, flavour=flavour, dtype=spec.dtype, device=device,
        sizes="-".join(map(str, spec.sizes)), seed=spec.seed, impl=impl, **training)


class TorchResult:
    """torch's output, loss and gradients for one flavour, plus whether its own arithmetic
    broke down (NaN/inf, or a probability rounded to 0/1 under a log in the modular path)."""

    def __init__(self, output: np.ndarray, loss: float, grads: dict[str, np.ndarray], broken: str):
        self.output, self.loss, self.grads, self.broken = output, loss, grads, broken


def torch_forward_backward(model: Any, spec: ModelSpec, flavour: str, x: Any, target: Any) -> TorchResult:
    """One forward/backward of a torch model built by :func:`build_torch_model`."""
    torch = torch_module()
    z, a = model(x)
    loss = torch_loss(spec, flavour, z, a, target)
    params = dict(model.named_parameters())
    grads = torch.autograd.grad(loss, list(params.values()))
    grads = {n: g.detach().cpu().numpy() for n, g in zip(params, grads)}
    out = a.detach().cpu().numpy()
    loss_value = float(loss.detach().cpu())
    broken = ""
    if not np.isfinite(loss_value) or not all(np.all(np.isfinite(g)) for g in grads.values()):
        broken = "torch produced NaN/inf"
    elif (flavour == "modular" and spec.loss["name"] in ("cross_entropy", "binary_cross_entropy")
          and np.any((out == 0) | (out == 1))):
        broken = "torch's modular path saturated: a probability rounded to exactly 0 or 1 under a log"
    return TorchResult(out, loss_value, grads, broken)


def fd_gradients(impl: Implementation, spec: ModelSpec, state: Mapping[str, np.ndarray], x: np.ndarray,
                 target: np.ndarray, names: Sequence[str], eps: float = 1e-6) -> dict[str, np.ndarray]:
    """Central differences in float64 of the implementation's own loss, for ``names``:
    ``(L(θ + h e_i) − L(θ − h e_i)) / 2h`` with ``h = eps·max(1, |θ_i|)``."""
    spec64 = spec.replace(dtype="float64")
    state64 = {k: np.asarray(v, dtype=np.float64).copy() for k, v in state.items()}
    model = impl.build(spec64, state64)
    x64 = np.asarray(x, dtype=np.float64)
    t64 = target.astype(np.float64) if target.dtype.kind == "f" else target
    out = {}
    for name in names:
        flat = state64[name].reshape(-1)
        grad = np.zeros(flat.size)
        for i in range(flat.size):
            orig = flat[i]
            h = eps * max(1.0, abs(orig))
            values = []
            for delta in (h, -h):
                flat[i] = orig + delta
                model.load_state_dict(state64)
                values.append(model.loss_and_grads(x64, t64)[0])
            flat[i] = orig
            grad[i] = (values[0] - values[1]) / (2 * h)
        out[name] = grad.reshape(state64[name].shape)
    return out


def _fd_verdict(fd: np.ndarray, actual: np.ndarray, expected: np.ndarray, dtype: str) -> str:
    """Which side the finite differences agree with: ``both``, ``impl``, ``torch`` or ``neither``."""
    tol = FD_TOLERANCES[dtype]
    atol = tol.atol_for(float(np.abs(fd).max(initial=0.0)))
    ok_impl = measure(actual, fd, tol.rtol, atol)["tol_ratio"] <= 1
    ok_torch = measure(expected, fd, tol.rtol, atol)["tol_ratio"] <= 1
    return {(True, True): "both", (True, False): "impl", (False, True): "torch"}.get((ok_impl, ok_torch), "neither")


def _record(combo: Combination, check: str, param: str, actual: Any, expected: Any, tol: Tolerance,
            broken: str, meta: dict[str, str], **extra: Any) -> Record:
    actual, expected = np.asarray(actual), np.asarray(expected)
    atol = tol.atol_for(float(np.nanmax(np.abs(expected), initial=0.0)) if np.isfinite(expected).all() else 1.0)
    stats = measure(actual, expected, tol.rtol, atol)
    passed = stats["tol_ratio"] <= 1
    status = "pass" if passed else ("ref_nonfinite" if broken else "fail")
    return Record(check=check, param=param, shape=str(tuple(expected.shape)), **combo.__dict__,
                  atol=atol, rtol=tol.rtol, passed=status != "fail", status=status,
                  note=broken if not passed else "", **stats, **meta, **extra)


def compare_model(impl: Implementation, spec: ModelSpec, x: Any, y: Any, *, device: str = "cpu",
                  state: Mapping[str, np.ndarray] | None = None, flavours: Sequence[str] | None = None,
                  fd: str = "on_failure") -> list[Record]:
    """Compare ``impl`` with torch on one batch: output, loss and every parameter gradient,
    in each flavour (``modular``; ``fused`` where torch has a fused form).

    ``fd``: ``"never"``, ``"on_failure"`` (finite differences for the parameters whose gradient
    disagrees, to say which side is wrong) or ``"always"``.
    """
    if fd not in ("never", "on_failure", "always"):
        raise ValueError(f"fd must be 'never', 'on_failure' or 'always', got {fd!r}")
    state = initial_state(spec) if state is None else state
    xs, target = prepare_batch(spec, x, y)
    model = impl.build(spec, state)
    out_impl = np.asarray(model.forward(xs))
    loss_impl, grads_impl = model.loss_and_grads(xs, target)

    torch_model = build_torch_model(spec, state, device)
    xt = to_tensor(xs, device, torch_model.layers[0].weight.dtype)
    tt = to_tensor(target, device, xt.dtype)
    meta = {"device_name": device_name(device), "versions": versions_string(versions())}
    records: list[Record] = []
    fd_cache: dict[str, np.ndarray] = {}
    for flavour in flavours or flavours_for(spec):
        ref = torch_forward_backward(torch_model, spec, flavour, xt, tt)
        combo = combination(spec, flavour, device, impl.name)
        records.append(_record(combo, "forward", "output", out_impl, ref.output,
                               tolerance(spec.dtype, "forward"), ref.broken, meta))
        records.append(_record(combo, "loss", "loss", loss_impl, ref.loss, tolerance(spec.dtype, "loss"),
                               ref.broken, meta, actual_value=float(loss_impl), expected_value=ref.loss))
        for name, expected in ref.grads.items():
            actual = np.asarray(grads_impl[name])
            rec = _record(combo, "gradient", name, actual, expected, tolerance(spec.dtype, "gradient"),
                          ref.broken, meta, **vector_agreement(actual, expected))
            if fd == "always" or (fd == "on_failure" and rec.status != "pass"):
                if name not in fd_cache:
                    fd_cache.update(fd_gradients(impl, spec, state, xs, target, [name]))
                rec.fd_verdict = _fd_verdict(fd_cache[name], actual, expected, spec.dtype)
            records.append(rec)
    return records
