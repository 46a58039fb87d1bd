"""Forward, loss and gradient comparisons of an implementation against torch, with the
finite-difference oracle as the tie-breaker.

:func:`compare_model` runs one model on one batch through the implementation and through
torch in every applicable flavour, and returns one :class:`~scratchnet_reference.core.records.Record` per
compared tensor: the output, the loss, and each parameter's gradient.

Every record is judged by an oracle (:data:`~scratchnet_reference.core.records.ORACLES`): torch in the
record's flavour and dtype, or — where torch's own arithmetic broke down on that input — the first
second oracle that applies (:func:`_oracles`); ``unverified`` only when none does. Nothing on the
expected side comes from the implementation's code: targets are prepared here from the loss's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from scratchnet import ModelSpec, registry

from .boundary import call, intact_record, private
from .mapping import FLAVOURS, TORCH_FUSED_OPS, fused_loss, to_tensor
from .overflow import as_agreed, shared_overflow
from .protocol import Implementation, initial_state
from .records import Combination, Record, measure, vector_agreement, versions_string
from .stable import STABLE_PAIRS, stable_loss_and_logit_grad
from .tolerances import FD_TOLERANCES, NOISE_FACTOR, Tolerance, tolerance
from .torch_import import device_name, torch_module, versions
from .torch_model import MODES, build_torch_model, set_dropout_masks, torch_loss, torch_state_to_numpy

__all__ = ["compare_model", "flavours_for", "prepare_batch", "combination", "hidden_label", "fd_gradients",
           "central_differences", "fd_verdict", "fd_entries", "FD_ENTRIES", "TorchResult", "torch_forward_backward",
           "set_mode", "model_dropout_masks"]


def flavours_for(spec: ModelSpec) -> tuple[str, ...]:
    """``("modular", "fused")`` for pairs torch fuses, else ``("modular",)``."""
    return FLAVOURS if fused_loss(spec.output["name"], spec.loss) else ("modular",)


def prepare_batch(spec: ModelSpec, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Inputs cast to the spec's dtype and the target in the form torch's losses take, decided by
    the loss's name alone (the implementation validates its own targets):

    * integer labels ``(N,)`` for a class-index loss (:func:`scratchnet.registry.takes_class_indices`;
      torch's ``F.cross_entropy`` and ``F.nll_loss`` take them too): int64 indices;
    * integer labels for any other loss: one-hot rows ``(N, C)`` in the dtype — for a single output
      (``C = 1``) the labels 0/1 are that column itself;
    * dense rows ``(N, C)``: cast to the dtype.
    """
    dtype = np.dtype(spec.dtype)
    xs = np.ascontiguousarray(x, dtype=dtype)
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        return xs, np.ascontiguousarray(arr, dtype=dtype)
    labels = arr.astype(np.int64)
    if registry.takes_class_indices(spec.loss["name"]):
        return xs, labels
    c = spec.sizes[-1]
    if c == 1:
        return xs, np.ascontiguousarray(labels[:, None], dtype=dtype)
    return xs, (labels[:, None] == np.arange(c)).astype(dtype)


def hidden_label(spec: ModelSpec, mode: str = "train") -> str:
    """The ``hidden`` column of a record: one label per hidden layer, its activation and the layers
    after it (``"relu+batch_norm+dropout(p=0.25)"``), and for a network whose modes differ the mode
    compared (``"… [eval]"``). A dense-only network's label is its activations alone, as before
    these layers existed, so its rows keep their keys."""
    labels = ",".join(spec.hidden_labels()) or "-"
    return f"{labels} [{mode}]" if spec.has_modes else labels


def combination(spec: ModelSpec, flavour: str, device: str, impl: str, mode: str = "train",
                **training: Any) -> Combination:
    return Combination(
        hidden=hidden_label(spec, mode),
        output=registry.label(spec.output), loss=registry.label(spec.loss),
        reduction=spec.reduction, flavour=flavour, dtype=spec.dtype, device=device,
        sizes="-".join(map(str, spec.sizes)), seed=spec.seed, impl=impl, **training)


class TorchResult:
    """torch's output, loss and gradients for one flavour, plus whether its own arithmetic
    broke down (NaN/inf, or in the modular path a probability so close to 0 or 1 that the log
    of it, or of ``1 − p``, is decided by rounding)."""

    def __init__(self, output: np.ndarray, loss: float, grads: dict[str, np.ndarray], broken: str,
                 term_scales: dict[str, float] | None = None, oracle: str = "torch"):
        self.output, self.loss, self.grads, self.broken = output, loss, grads, broken
        self.term_scales = term_scales or {}
        self.oracle = oracle


def _modular_precision_loss(spec: ModelSpec, p: np.ndarray, judged_dtype: str | None = None) -> str:
    """Why torch's *modular* log-loss on probabilities ``p`` cannot be trusted to the tolerance,
    or ``""``:

    * a probability within 4 ulp of 0 or 1 went into a log — one rounding step moves the loss
      (and torch's clamp of ``log`` at −100 turns a saturated ``p`` into a different number);
    * binary cross-entropy inside torch's clamps: ``log`` clamped at −100 in the forward pass,
      ``p(1 − p)`` clamped at 1e-12 in the backward pass — there torch's numbers are no longer
      the loss and its derivative (a fused implementation is right and torch is not);
    * binary cross-entropy with ``1 − p`` so small that it keeps fewer digits than the gradient
      tolerance needs: torch's backward divides by ``p(1 − p)``, whose relative error is
      ``ε/(1 − p)`` (e.g. ``1 − p = 1e-13`` in float64 leaves three digits).

    ``judged_dtype``: the dtype of the comparison whose gradient rtol the digits must meet
    (default the spec's; a float64 oracle for a float32 comparison needs float32's).
    """
    loss = spec.loss["name"]
    if loss not in ("cross_entropy", "binary_cross_entropy"):
        return ""
    eps, tiny = np.finfo(p.dtype).eps, np.finfo(p.dtype).tiny
    if np.any((p <= tiny) | (1 - p <= 4 * eps)):
        return "torch's modular path saturated: a probability within 4 ulp of 0 or 1 went into a log"
    if loss == "binary_cross_entropy":
        # torch's log clamp needs p or 1 − p below e^−100 ≈ 3.7e-44, where p(1 − p) < 1e-12 already holds
        # (or, in float32, where p is subnormal or 1: saturated above); the product test covers both clamps
        if np.any(p * (1 - p) < 1e-12):
            return "torch's BCE clamps are active (log at −100, p(1 − p) at 1e-12): not the true loss/derivative"
        digits_needed = tolerance(judged_dtype or spec.dtype, "gradient").rtol
        if np.any(1 - p < eps / digits_needed):
            return (f"torch's modular BCE lost precision: 1 − p < {eps / digits_needed:.2g}, so p(1 − p) "
                    f"carries a relative error above the gradient rtol {digits_needed:g}")
    return ""


def _gradient_term_scales(model: Any, upstream: Sequence[Any]) -> dict[str, float]:
    """``Σ|terms|`` of every parameter gradient — what its rounding error is proportional to.

    Backprop's rounding enters at each layer as an absolute error of about ``ε·|∂L/∂a_k|``
    (``f'`` evaluated from a rounded ``a``, sums that cancel) and is carried down through
    ``|W|``. So the magnitude that bounds it is a backward pass of absolute values,
    ``e_k = |∂L/∂a_k| + e_{k+1}|W_{k+1}|``, and the gradients' term sums ``e_kᵀ|x_k|`` (weight)
    and ``Σ_rows e_k`` (bias); activation slopes are bounded by a constant, absorbed in the
    tolerance. For a saturated unit this is far larger than the gradient itself: its tiny
    slope is known only to ``ε·|∂L/∂a|``.
    """
    torch = torch_module()
    scales: dict[str, float] = {}
    with torch.no_grad():
        e = None
        for k in range(len(model.trace) - 1, -1, -1):
            g = upstream[k]
            g = torch.zeros_like(model.trace[k][1]) if g is None else torch.nan_to_num(g.abs(), 0, 0, 0)
            if e is not None:
                back = e @ torch.nan_to_num(model.layers[k + 1].weight.abs(), 0, 0, 0)
                for module, inp in reversed(model.after_trace[k]):
                    back = _abs_backward(module, inp, back, scales, f"batch_norms.{k}")
                g = g + back
            e = g
            x = torch.nan_to_num(model.trace[k][0].abs(), 0, 0, 0)
            scales[f"layers.{k}.weight"] = float((e.T @ x).max())
            scales[f"layers.{k}.bias"] = float(e.sum(dim=0).max())
        # the output's terms: |x_K||W_K|ᵀ + |b_K| bounds what rounding moves z_K by (and the
        # output, every activation being 1-Lipschitz up to a constant)
        last = model.layers[-1]
        x = torch.nan_to_num(model.trace[-1][0].abs(), 0, 0, 0)
        scales["output"] = float((x @ last.weight.abs().T + last.bias.abs()).max())
    return scales


def _abs_backward(module: Any, inp: Any, e: Any, scales: dict[str, float], name: str) -> Any:
    """The term-scale recursion of :func:`_gradient_term_scales` through a layer after a dense one,
    given ``e`` at its output: dropout ``e·m/(1 − p)``; batch norm (training mode) the absolute terms of
    its compact backward, ``|γ|/σ·(|e| + mean|e| + |x̂|·mean(|e||x̂|))``, in evaluation mode
    ``|γ|/√(running_var + ε)·|e|``; and the term sums of its ``γ`` (``Σ|e||x̂|``) and ``β`` (``Σ|e|``)."""
    torch = torch_module()
    if not hasattr(module, "running_mean"):  # ReplayDropout
        if not module.training or module.p == 0:
            return e
        return e * module.mask.to(e.dtype) / (1.0 - module.p)
    if module.training:
        mean, var = inp.mean(dim=0), inp.var(dim=0, unbiased=False)
    else:
        mean, var = module.running_mean, module.running_var
    inv_std = 1.0 / torch.sqrt(var + module.eps)
    xhat = torch.nan_to_num(((inp - mean) * inv_std).abs(), 0, 0, 0)
    gamma = module.weight.abs()
    scales[f"{name}.weight"] = float((e * xhat).sum(dim=0).max())
    scales[f"{name}.bias"] = float(e.sum(dim=0).max())
    if not module.training:
        return e * gamma * inv_std
    return gamma * inv_std * (e + e.mean(dim=0) + xhat * (e * xhat).mean(dim=0))


def torch_forward_backward(model: Any, spec: ModelSpec, flavour: str, x: Any, target: Any,
                           judged_dtype: str | None = None) -> TorchResult:
    """One forward/backward of a torch model built by :func:`build_torch_model` (``judged_dtype``:
    see :func:`_modular_precision_loss`)."""
    torch = torch_module()
    z, a = model(x)
    loss = torch_loss(spec, flavour, z, a, target)
    params = dict(model.named_parameters())
    # ∂L/∂a_k of every layer (∂L/∂z for a fused output, whose activation the loss skips)
    outputs = [a_k for _, _, a_k in model.trace[:-1]] + [z if flavour == "fused" else a]
    found = torch.autograd.grad(loss, list(params.values()) + outputs, allow_unused=True)
    grads = {n: g.detach().cpu().numpy() for n, g in zip(params, found)}
    term_scales = _gradient_term_scales(model, found[len(params):])
    out = a.detach().cpu().numpy()
    loss_value = float(loss.detach().cpu())
    broken = ""
    if not np.isfinite(loss_value) or not all(np.all(np.isfinite(g)) for g in grads.values()):
        broken = "torch produced NaN/inf"
    elif flavour == "modular":
        broken = _modular_precision_loss(spec, out, judged_dtype)
    return TorchResult(out, loss_value, grads, broken, term_scales)


def stable_forward_backward(spec: ModelSpec, state: Mapping[str, np.ndarray], x: np.ndarray, target: np.ndarray,
                            device: str, mode: str = "train",
                            masks: Mapping[str, np.ndarray] | None = None) -> TorchResult:
    """The ``torch_stable_float64`` oracle: the network in float64 torch on the same numbers, the
    loss and ``∂L/∂z`` from :func:`~scratchnet_reference.core.stable.stable_loss_and_logit_grad`,
    every parameter gradient by autograd from there."""
    torch = torch_module()
    spec64 = spec.replace(dtype="float64")
    model = build_torch_model(spec64, {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}, device,
                              mode, masks)
    xt = to_tensor(np.asarray(x, dtype=np.float64), device, torch.float64)
    tt = to_tensor(target.astype(np.float64) if target.dtype.kind == "f" else target, device, torch.float64)
    z, a = model(xt)
    loss, dz = stable_loss_and_logit_grad(spec.output["name"], spec.loss, spec.reduction, z, tt)
    params = dict(model.named_parameters())
    hidden = [a_k for _, _, a_k in model.trace[:-1]]
    found = torch.autograd.grad(z, list(params.values()) + hidden, grad_outputs=dz, allow_unused=True)
    grads = {n: g.detach().cpu().numpy() for n, g in zip(params, found)}
    term_scales = _gradient_term_scales(model, [*found[len(params):], dz])
    loss_value = float(loss.cpu())
    finite = np.isfinite(loss_value) and all(np.all(np.isfinite(g)) for g in grads.values())
    return TorchResult(a.detach().cpu().numpy(), loss_value, grads, "" if finite else "torch produced NaN/inf",
                       term_scales, oracle="torch_stable_float64")


#: Finite differences are taken on at most this many entries of a gradient (the worst disagreeing
#: half, the rest spread evenly): 2 loss evaluations each, so a 784 × 30 weight stays quick.
FD_ENTRIES = 48


def fd_entries(actual: np.ndarray, expected: np.ndarray, limit: int = FD_ENTRIES) -> np.ndarray:
    """Flat indices of the entries to difference: all of them when there are at most ``limit``, else
    the ``limit // 2`` where ``|actual − expected|`` is largest and ``limit // 2`` evenly spread."""
    size = int(np.asarray(expected).size)
    if size <= limit:
        return np.arange(size)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(np.asarray(actual, dtype=np.float64) - np.asarray(expected, dtype=np.float64)).reshape(-1)
    worst = np.argsort(-np.nan_to_num(diff, nan=np.inf), kind="stable")[:limit // 2]
    spread = np.linspace(0, size - 1, limit - limit // 2).astype(np.int64)
    return np.unique(np.concatenate([worst, spread]))


def fd_gradients(impl: Implementation, spec: ModelSpec, state: Mapping[str, np.ndarray], x: np.ndarray,
                 target: np.ndarray, names: Sequence[str], eps: float = 1e-6, mode: str = "train",
                 masks: Mapping[str, np.ndarray] | None = None,
                 entries: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Central differences in float64 of the implementation's own loss, for ``names``:
    ``(L(θ + h e_i) − L(θ − h e_i)) / 2h`` with ``h = eps·max(1, |θ_i|)`` — the whole gradient, or
    the flat ``entries[name]`` only (then a 1-D array of those entries). Every call gets private
    copies of the weights and the batch. In training mode with dropout every evaluation must use
    the same ``masks``: the model must offer ``replay_dropout_masks(masks)`` (``NotImplementedError``
    otherwise)."""
    spec64 = spec.replace(dtype="float64")
    state64 = {k: np.asarray(v, dtype=np.float64).copy() for k, v in state.items()}
    model = impl.build(spec64, private(state64))
    set_mode(model, spec, mode)
    if masks:
        if not callable(getattr(model, "replay_dropout_masks", None)):
            raise NotImplementedError("finite differences through dropout need the model's replay_dropout_masks()")
        model.replay_dropout_masks(masks)
    x64 = np.asarray(x, dtype=np.float64)
    t64 = target.astype(np.float64) if target.dtype.kind == "f" else target

    def loss_at(name: str) -> Callable[[np.ndarray], float]:
        def loss(value: np.ndarray) -> float:
            model.load_state_dict(private({**state64, name: value}))
            return model.loss_and_grads(x64.copy(), t64.copy())[0]
        return loss

    return {name: central_differences(loss_at(name), state64[name], eps, (entries or {}).get(name))
            for name in names}


def central_differences(f: Callable[[np.ndarray], Any], x: np.ndarray, eps: float = 1e-6,
                        entries: np.ndarray | None = None) -> np.ndarray:
    """``(f(x + h e_i) − f(x − h e_i)) / 2h`` for every element ``i`` of ``x``, ``h = eps·max(1, |x_i|)``,
    in float64: one perturbation per element, for ``f`` is a black box (a learner's loss). ``entries``:
    only those flat indices (then a 1-D array of them, in that order)."""
    x = np.array(x, dtype=np.float64, copy=True)
    flat = x.reshape(-1)
    chosen = np.arange(flat.size) if entries is None else np.asarray(entries)
    grad = np.zeros(chosen.size)
    for j, i in enumerate(chosen):
        orig = flat[i]
        h = eps * max(1.0, abs(orig))
        values = []
        for delta in (h, -h):
            flat[i] = orig + delta
            values.append(float(f(x.copy())))
        flat[i] = orig
        grad[j] = (values[0] - values[1]) / (2 * h)
    return grad.reshape(x.shape) if entries is None else grad


def fd_verdict(fd: np.ndarray, actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> str:
    """Which side the finite differences ``fd`` agree with, to ``rtol``/``atol``: ``both``,
    ``impl`` (``actual``), ``torch`` (``expected``) or ``neither``."""
    if not np.all(np.isfinite(fd)):  # NaN differences vouch for nobody (NaN = NaN "agrees" in measure)
        return "neither"
    ok_impl = bool(np.all(np.isfinite(actual))) and measure(actual, fd, rtol, atol)["tol_ratio"] <= 1
    ok_torch = measure(expected, fd, rtol, atol)["tol_ratio"] <= 1
    return {(True, True): "both", (True, False): "impl", (False, True): "torch"}.get((ok_impl, ok_torch), "neither")


def _fd_verdict(fd: np.ndarray, actual: np.ndarray, expected: np.ndarray, dtype: str) -> str:
    """:func:`fd_verdict` to the finite-difference tolerance of ``dtype``."""
    tol = FD_TOLERANCES[dtype]
    return fd_verdict(fd, actual, expected, tol.rtol, tol.atol_for(float(np.abs(fd).max(initial=0.0))))


def _record(combo: Combination, check: str, param: str, actual: Any, expected: Any, tol: Tolerance,
            broken: str, meta: dict[str, str], noise: Any = None, term_scale: float = 0.0, oracle: str = "torch",
            conditioning: float = 0.0, same_dtype: Any = None, **extra: Any) -> Record:
    agreed = shared_overflow(actual, same_dtype, combo.dtype, expected) if same_dtype is not None else ""
    if agreed:  # torch in this dtype overflows exactly as the implementation does (core.overflow)
        expected, broken, noise, oracle, conditioning = same_dtype, "", None, "torch", 0.0
        actual = as_agreed(actual, same_dtype)
        if "expected_value" in extra:
            extra["expected_value"] = float(np.asarray(same_dtype))
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:  # a wrongly shaped gradient is a failure, named, not a crash
        return Record(check=check, param=param, shape=str(tuple(expected.shape)), **combo.__dict__,
                      max_abs_err=float("inf"), max_rel_err=float("inf"), tol_ratio=float("inf"),
                      atol=tol.atol, rtol=tol.rtol, passed=False, status="fail", worst_index="()",
                      note=f"{param}: implementation gave shape {actual.shape}, torch {expected.shape}",
                      oracle=oracle, **meta)
    scale = float(np.nanmax(np.abs(expected), initial=0.0)) if np.isfinite(expected).all() else 1.0
    atol = tol.atol_for(max(scale, term_scale))
    floor = 0.0
    if noise is not None:  # the probe's distance from torch: this computation's rounding noise
        probe, noise_scale = noise
        with np.errstate(invalid="ignore"):
            diff = np.abs(np.asarray(probe, dtype=np.float64) - expected)
        floor = NOISE_FACTOR * noise_scale * float(np.max(np.nan_to_num(diff, nan=0.0, posinf=0.0), initial=0.0))
    stats = measure(actual, expected, tol.rtol + conditioning, atol + floor)
    passed = stats["tol_ratio"] <= 1
    if not broken and oracle != "torch" and floor > max(scale, atol):
        # a second oracle, but torch's own path is farther from it than the value is large: rounding
        # (a clamp it switched on, 1 − p of a rounded p) decides this value, and any answer within the
        # floor would pass — no verdict is better than a vacuous one
        broken = (f"rounding decides this value in {combo.dtype}: torch's own distance from the {oracle} oracle "
                  f"(noise floor {floor:.3g}) exceeds the value's size {scale:.3g}")
    # Where every oracle's arithmetic broke down their numbers are no yardstick, even when they agree.
    status = "unverified" if broken else ("pass" if passed else "fail")
    return Record(check=check, param=param, shape=str(tuple(expected.shape)), **combo.__dict__,
                  atol=atol, rtol=tol.rtol, passed=status != "fail", status=status,
                  note=broken or agreed, noise_floor=floor, oracle="" if broken else oracle,
                  **stats, **meta, **extra)


class _Probe:
    """torch once more, in the *other* precision, on the same numbers rounded to float32:

    * for a float32 comparison the probe runs in float64, so ``|probe − torch|`` is float32's
      own rounding error on this very computation;
    * for a float64 comparison the probe runs in float32, and ``|probe − torch|·ε₆₄/ε₃₂`` estimates
      float64's: rounding error scales with ε for a given conditioning, and the float32 run sees
      every amplification — of the inputs' rounding and of the intermediate results' (``1 − p``
      after a saturated softmax, sums that cancel) — that float64 hides below its tolerance.

    A correct implementation's distance from torch is of that size; :data:`NOISE_FACTOR` times
    the tensor's largest such distance is added to the absolute tolerance.
    """

    def __init__(self, spec: ModelSpec, state: Mapping[str, np.ndarray], xs: np.ndarray, target: np.ndarray,
                 device: str, mode: str = "train", masks: Mapping[str, np.ndarray] | None = None):
        self.judged_dtype = spec.dtype
        other = "float64" if spec.dtype == "float32" else "float32"
        self.spec = spec.replace(dtype=other)
        self.scale = 1.0 if other == "float64" else float(np.finfo(np.float64).eps / np.finfo(np.float32).eps)
        rounded = {k: np.asarray(v, dtype=np.float32).astype(other) for k, v in state.items()}
        self.model = build_torch_model(self.spec, rounded, device, mode, masks)
        self.x = to_tensor(xs.astype(np.float32).astype(other), device)
        self.target = to_tensor(target.astype(np.float32).astype(other) if target.dtype.kind == "f" else target,
                                device)

    def run(self, flavour: str) -> TorchResult:
        return torch_forward_backward(self.model, self.spec, flavour, self.x, self.target, self.judged_dtype)


def _relabelled(result: TorchResult, oracle: str) -> TorchResult:
    return TorchResult(result.output, result.loss, result.grads, result.broken, result.term_scales, oracle)


def _oracles(spec: ModelSpec, flavour: str, refs: Mapping[str, TorchResult], probes: Mapping[str, TorchResult],
             probe_scale: float, stable: Any) -> Any:
    """``(expected, noise)`` candidates for one flavour's records, in order; the first whose
    ``broken`` is empty judges. ``noise`` is ``(probe result, scale)`` for the noise floor.

    The function under test is fixed first: a *fused* flavour record, or a *modular* one of a pair
    the spec fuses (the implementation computes the loss from the logits), is judged by the fused
    function; a modular record of an unfused pair by torch's modular function, BCE's clamps included.

    1. ``torch`` — torch in the flavour and dtype; noise: the other precision's run (:class:`_Probe`).
    2. modular record, fused pair: torch's fused form in the dtype (``torch_fused``, or ``torch_stable``
       for sigmoid + cross-entropy, which torch does not fuse); the modular path differs from it only
       where rounding or a clamp broke the modular path down — what the fused form exists to avoid.
    3. float32: the same torch path in float64 on the same numbers (``torch_float64``); its
       breakdown is judged at float32's precision. Noise: float32 torch's distance from it — the
       rounding any float32 implementation of this path carries. A modular float64 run is only
       taken when none of BCE's clamps is active in it, so it is the fused function there too.
    4. modular record, unfused pair: ``torch_stable_float64`` (:mod:`~scratchnet_reference.core.stable`),
       the modular function clamps included, from the logits. Noise: torch's modular distance from it.
    """
    pair = (spec.output["name"], spec.loss["name"])
    ref = refs[flavour]
    yield ref, (probes[flavour], probe_scale)
    if flavour == "modular" and spec.fused and "fused" in refs:
        fused = _relabelled(refs["fused"], "torch_fused" if pair in TORCH_FUSED_OPS else "torch_stable")
        yield fused, (probes["fused"], probe_scale)
    if spec.dtype == "float32":
        yield _relabelled(probes[flavour], "torch_float64"), (ref, 1.0)
    if flavour == "modular" and not spec.fused and pair in STABLE_PAIRS:
        yield stable(), (ref, 1.0)


#: Headroom over the ``C·ε/(1 − p)`` conditioning bound of :func:`_modular_conditioning` (measured up to 1×).
CONDITIONING_FACTOR = 10.0


def _modular_conditioning(spec: ModelSpec, p: np.ndarray) -> float:
    """The relative error that the modular binary cross-entropy itself carries at probabilities
    ``p``, whoever computes it: ``1 − p`` of a ``p`` rounded by one ulp is off by ``ε/(1 − p)``
    relative, and the gradient ``(p − y)/(p(1 − p))`` inherits it (``p(1 − p)`` below torch's 1e-12
    clamp is a constant). Two correct implementations whose softmax rounds ``p`` differently differ
    by a multiple of that — the softmax VJP mixes the terms of all C classes, BCE's clamped ones
    included — so the stable float64 oracle, exact for *its* rounding of ``p``, judges a modular
    record only to within ``CONDITIONING_FACTOR·C·ε/(1 − p)``. Measured on the three dev-profile
    examples that failed without it (difference of scratchnet from the oracle, in units of
    ``ε/(1 − p)``): C = 12, logits 44, ``1 − p = 1.3e-11``: 0.38; C = 11, logits 68, ``1 − p = 2.9e-7``
    beside clamped classes: 3.1; C = 25, logits 69, ``1 − p = 7.4e-11``: 25 — at most 1·C."""
    if spec.loss["name"] != "binary_cross_entropy" or spec.dtype != "float64":
        return 0.0  # float32 keeps its rule: torch in float64, or unverified where rounding decides
    p = np.asarray(p, dtype=np.float64)
    q = (1 - p)[p * (1 - p) >= 1e-12]
    classes = p.shape[-1] if p.ndim else 1
    return CONDITIONING_FACTOR * classes * float(np.finfo(np.float64).eps / q.min()) if q.size else 0.0


def _judge(candidates: Any) -> tuple[TorchResult, Any]:
    """The first candidate of :func:`_oracles` that is not broken, else the first (``unverified``,
    with the reason torch's path broke down)."""
    first = None
    for result, noise in candidates:
        first = first or (result, noise)
        if not result.broken:
            return result, noise
    return first


def set_mode(model: Any, spec: ModelSpec, mode: str) -> None:
    """Put an implementation's model in ``mode`` (``"train"``/``"eval"``) when its spec has layers
    whose modes differ; such a model must offer ``train()`` and ``eval()`` (``NotImplementedError``)."""
    if mode not in MODES:
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    if not spec.has_modes:
        return
    switch = getattr(model, mode, None)
    if not callable(switch):
        raise NotImplementedError(f"batch norm and dropout need the model's train() and eval(); it has no {mode}()")
    switch()


def model_dropout_masks(model: Any, spec: ModelSpec, mode: str) -> dict[str, np.ndarray] | None:
    """The masks of the model's last forward pass (``dropout_masks()``), when the spec has dropout
    and runs in training mode; else ``None``."""
    if mode != "train" or not spec.layer_positions("dropout"):
        return None
    get = getattr(model, "dropout_masks", None)
    if not callable(get):
        raise NotImplementedError("dropout in training mode needs the model's dropout_masks() (the masks of its "
                                  "last forward pass, {'dropouts.{k}': bool array}) for torch to replay")
    return {k: np.asarray(v).copy() for k, v in dict(get()).items()}


def _buffer_records(impl_state: Mapping[str, np.ndarray], spec: ModelSpec, state: Mapping[str, np.ndarray],
                    xs: np.ndarray, passes: Sequence[dict[str, np.ndarray] | None], device: str, mode: str,
                    combo: Combination, meta: dict[str, str]) -> list[Record]:
    """The running statistics after the implementation's forward passes against a fresh torch twin
    that made the same passes (same inputs, same masks): one ``forward`` record per buffer, held to
    the forward tolerance."""
    torch = torch_module()
    buffers = spec.buffer_shapes()
    if not buffers:
        return []
    twin = build_torch_model(spec, state, device, mode)
    xt = to_tensor(xs, device, twin.layers[0].weight.dtype)
    with torch.no_grad():
        for masks in passes:
            if masks is not None:
                set_dropout_masks(twin, masks)
            twin(xt)
    expected = torch_state_to_numpy(twin)
    records = []
    for name in buffers:
        if name not in impl_state:
            raise NotImplementedError(f"the model's state_dict() has no {name!r} (batch norm's running statistics)")
        records.append(_record(combo, "forward", name, np.asarray(impl_state[name]), expected[name],
                               tolerance(spec.dtype, "forward"), "", meta,
                               term_scale=float(np.abs(expected[name]).max(initial=0.0))))
    return records


def compare_model(impl: Implementation, spec: ModelSpec, x: Any, y: Any, *, device: str = "cpu",
                  state: Mapping[str, np.ndarray] | None = None, flavours: Sequence[str] | None = None,
                  fd: str = "on_failure", mode: str = "train", batch: str = "") -> list[Record]:
    """Compare ``impl`` with torch on one batch: output, loss and every parameter gradient,
    in each flavour (``modular``; ``fused`` where torch has a fused form), and whether the
    implementation's ``forward`` and ``loss_and_grads`` left their inputs unchanged (``check =
    "inputs"``). ``batch`` labels the records (:data:`~scratchnet_reference.core.records.BATCHES`).

    The implementation gets private copies of the weights, ``x`` and the targets, and what it returns
    is copied out (:mod:`~scratchnet_reference.core.boundary`); torch's tensors are copies too.

    ``fd``: ``"never"``, ``"on_failure"`` (finite differences for the parameters whose gradient
    disagrees, to say which side is wrong; at most :data:`FD_ENTRIES` entries of each) or ``"always"``.

    ``mode``: for a spec with batch norm or dropout, the mode both sides run in. The output comes
    from the implementation's ``forward`` and the loss and gradients from its ``loss_and_grads``:
    in training mode two passes, each with its own dropout masks (read after each, replayed by torch)
    and each updating the running statistics, which are then compared with a torch twin that made
    the same two passes (``forward`` records named ``batch_norms.{k}.running_*``).

    The upstream gradient of every check is the loss's own gradient at the batch's targets (drawn by
    :func:`~scratchnet_reference.core.matrix.make_batch`), never uniform: no ``.sum()`` loss, so a
    row-wise VJP right only for constant upstreams fails (``tests/reference/test_drawn_upstream.py``).
    """
    if fd not in ("never", "on_failure", "always"):
        raise ValueError(f"fd must be 'never', 'on_failure' or 'always', got {fd!r}")
    state = initial_state(spec) if state is None else state
    xs, target = prepare_batch(spec, x, y)
    model = impl.build(spec, private(dict(state)))
    set_mode(model, spec, mode)
    forward = call(model.forward, "forward(x)", ("x",), xs)
    out_impl = np.asarray(forward.result)
    masks_out = model_dropout_masks(model, spec, mode)
    backward = call(model.loss_and_grads, "loss_and_grads(x, y)", ("x", "y"), xs, target)
    loss_impl, grads_impl = backward.result
    masks = model_dropout_masks(model, spec, mode)
    impl_state = model.state_dict() if spec.buffer_shapes() else {}

    meta = {"device_name": device_name(device), "versions": versions_string(versions())}
    all_flavours = flavours_for(spec)  # the fused form judges a fused pair's modular records too

    def references(pass_masks: dict[str, np.ndarray] | None) -> tuple[dict, dict, Any, Any]:
        torch_model = build_torch_model(spec, state, device, mode, pass_masks)
        xt = to_tensor(xs, device, torch_model.layers[0].weight.dtype)
        tt = to_tensor(target, device, xt.dtype)
        probe = _Probe(spec, state, xs, target, device, mode, pass_masks)
        refs = {f: torch_forward_backward(torch_model, spec, f, xt, tt) for f in all_flavours}
        probes = {f: probe.run(f) for f in all_flavours}
        stable_cache: list[TorchResult] = []

        def stable() -> TorchResult:
            if not stable_cache:
                stable_cache.append(stable_forward_backward(spec, state, xs, target, device, mode, pass_masks))
            return stable_cache[0]

        return refs, probes, probe.scale, stable

    refs, probes, probe_scale, stable = references(masks)
    # a training pass with dropout: the output's own pass had other masks
    same_pass = masks_out is None or all(np.array_equal(masks_out[k], masks[k]) for k in masks)
    out_refs = (refs, probes, probe_scale, stable) if same_pass else references(masks_out)
    records: list[Record] = []
    fd_cache: dict[str, np.ndarray] = {}
    wanted_flavours = tuple(flavours or all_flavours)
    for flavour in wanted_flavours:
        ref, (other, noise_scale) = _judge(_oracles(spec, flavour, refs, probes, probe_scale, stable))
        out_ref, (out_other, out_noise_scale) = _judge(_oracles(spec, flavour, *out_refs))
        combo = combination(spec, flavour, device, impl.name, mode, batch=batch)
        judged = dict(oracle=ref.oracle)
        if ref.oracle == "torch_stable_float64":
            judged["conditioning"] = _modular_conditioning(spec, refs[flavour].output)
        out_judged = dict(oracle=out_ref.oracle)
        if out_ref.oracle == "torch_stable_float64":
            out_judged["conditioning"] = _modular_conditioning(spec, out_refs[0][flavour].output)
        records.append(intact_record(combo, (forward, backward), meta))
        records.append(_record(combo, "forward", "output", out_impl, out_ref.output,
                               tolerance(spec.dtype, "forward"), out_ref.broken, meta,
                               noise=(out_other.output, out_noise_scale), term_scale=out_ref.term_scales["output"],
                               same_dtype=out_refs[0][flavour].output, **out_judged))
        records.append(_record(combo, "loss", "loss", loss_impl, ref.loss, tolerance(spec.dtype, "loss"),
                               ref.broken, meta, noise=(other.loss, noise_scale), same_dtype=refs[flavour].loss,
                               actual_value=float(loss_impl), expected_value=ref.loss, **judged))
        for name, expected in ref.grads.items():
            actual = np.asarray(grads_impl[name])
            same_shape = actual.shape == expected.shape
            rec = _record(combo, "gradient", name, actual, expected, tolerance(spec.dtype, "gradient"),
                          ref.broken, meta, noise=(other.grads[name], noise_scale),
                          term_scale=ref.term_scales.get(name, 0.0), same_dtype=refs[flavour].grads[name], **judged,
                          **(vector_agreement(actual, expected) if same_shape else {}))
            wanted = fd == "always" or (fd == "on_failure" and rec.status != "pass")
            if wanted and same_shape:
                entries = fd_entries(actual, expected)
                if name not in fd_cache:
                    try:
                        fd_cache.update(fd_gradients(impl, spec, state, xs, target, [name], mode=mode, masks=masks,
                                                     entries={name: entries}))
                    except NotImplementedError:
                        fd_cache[name] = None
                if fd_cache[name] is not None:
                    rec = replace(rec, fd_verdict=_fd_verdict(fd_cache[name], actual.reshape(-1)[entries],
                                                              expected.reshape(-1)[entries], spec.dtype))
            records.append(rec)
        if flavour == wanted_flavours[0]:
            passes = [masks_out, masks] if mode == "train" else [None, None]
            records += _buffer_records(impl_state, spec, state, xs, passes, device, mode, combo, meta)
    return records
