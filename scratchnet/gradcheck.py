"""Central finite differences: the gradient oracle that needs no second implementation.

``∂L/∂θᵢ`` from central differences with ``hᵢ = eps·max(1, |θᵢ|)``, evaluated in float64 (a
float32 network is copied to float64 first): the five-point stencil for parameters
(:func:`numerical_gradient`, truncation ``O(h⁴)``), the three-point one for activations
(:func:`numerical_vjp`, ``O(h²)``). The rounding error is ``O(δL/h)``, where ``δL`` is the rounding
noise of one evaluation of ``L``: ``ε_mach·|L|`` for a well-conditioned loss (with the default
``eps = 1e-6`` both errors stay near 1e-10 relative), far more where ``L`` is ill-conditioned — a
log of ``1 − p`` with ``p`` near 1 carries ``ε/(1 − p)`` of noise (``1 − p = 5e-5``: 4e-12, so a
difference quotient errs by ~1e-6). :func:`check_network_gradients` therefore measures the
stencil's own error instead of assuming it (:func:`_five_point`, :data:`FD_ERROR_FACTOR`). Near a kink (ReLU at 0, L1 at
``p = y``, …) a central difference straddles two slopes and is *not* the subgradient: callers
keep inputs away from kinks when they compare, and test kinks exactly against the documented
convention instead.

This is verification code, not the training path: it loops over parameter elements (one
forward pass each) on purpose.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ._checks import check_real
from .network import Network

__all__ = ["GradientCheck", "numerical_gradient", "numerical_vjp", "network_numerical_gradients",
           "compare_arrays", "check_network_gradients"]


#: The finite differences' error bound is this multiple of their measured noise (see :func:`_five_point`):
#: the noise of ``D(h)`` is a weighted difference of the rounding errors at ``±h, ±2h`` and the estimate
#: ``|D(h) − D(2h)|`` a different weighting of partly the same ones, so one estimate can come out a few
#: times smaller than the error it stands for. Measured: on the saturated softmax + BCE network of
#: issue 13 (``1 − p = 5.6e-5``) the worst error is 0.73 of the pooled estimate (tol_ratio 3.3 → 0.23);
#: over 50 random seeds of ``test_every_pair_backpropagates_exactly`` (``dev`` profile) the worst
#: tol_ratio is 0.32.
FD_ERROR_FACTOR = 3.0


def numerical_gradient(f: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Gradient of the scalar ``f()`` with respect to ``array`` by the five-point central
    stencil ``(−f(θ+2h) + 8f(θ+h) − 8f(θ−h) + f(θ−2h)) / 12h`` (truncation ``O(h⁴)``: a loss whose
    third derivative is 1e9 — ``log(1 − p)`` at ``p = 0.999`` — still differentiates to 1e-9),
    perturbing ``array`` in place one element at a time (restored exactly afterwards).

    ``array`` must be a float64 ``numpy.ndarray`` that ``f`` reads: an integer array cannot hold
    the steps (they would be truncated) and float32 rounds them (``h`` would not be the step
    taken). ``f`` reads ``array`` itself, so it cannot be converted here: pass
    ``array.astype(np.float64)`` and let ``f`` read that copy."""
    eps = _check_eps(eps)
    if not isinstance(array, np.ndarray):
        raise TypeError(f"array must be a numpy.ndarray that f() reads, got {type(array).__name__}")
    if array.dtype != np.float64:
        raise TypeError(f"array must be float64 (it is perturbed in place by steps of ~{eps:g}), got "
                        f"dtype {array.dtype}; pass array.astype(np.float64) and let f read that copy")
    if not callable(f):
        raise TypeError(f"f must be a callable returning the scalar loss, got {f!r}")
    return _five_point(f, array, eps)[0]


def _five_point(f: Callable[[], float], array: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """``D(h)`` per element (see :func:`numerical_gradient`) and its measured noise in units of
    ``f``: ``|D(h) − D(2h)|·h``. ``D(2h)`` (from ``±2h, ±4h``) has 16× the truncation error of
    ``D(h)`` and rounding noise of the same size, so their difference bounds both: for a smooth,
    well-conditioned ``f`` it is ``~ε|f|`` (times ``h``-independent constants), near a saturated
    probability it is the noise ``δf`` that the conditioning puts on every evaluation of ``f``."""
    grad = np.zeros(array.shape, dtype=np.float64)
    noise = np.zeros(array.shape, dtype=np.float64)
    for i in np.ndindex(array.shape):     # not array.reshape(-1): a copy for a column-major array
        orig = array[i]
        h = eps * max(1.0, abs(float(orig)))
        v = {}
        for k in (4, 2, 1, -1, -2, -4):
            array[i] = orig + k * h
            v[k] = f()
        array[i] = orig
        grad[i] = (-v[2] + 8 * v[1] - 8 * v[-1] + v[-2]) / (12 * h)
        twice = (-v[4] + 8 * v[2] - 8 * v[-2] + v[-4]) / (24 * h)
        noise[i] = abs(grad[i] - twice) * h
    return grad, noise


def numerical_vjp(f: Callable[[np.ndarray], np.ndarray], z: np.ndarray, g: np.ndarray,
                  eps: float = 1e-6, rowwise: bool = False) -> np.ndarray:
    """Central-difference ``∂/∂z Σ g ⊙ f(z)`` for a function applied to rows of ``z``.

    Elementwise ``f``: every element is perturbed at once (outputs depend on their own input
    only). Row-wise ``f`` (softmax): one column at a time across all rows (rows are
    independent), ``C`` evaluations — vectorised over the batch either way. Integer or float32
    ``z`` is converted to float64 first."""
    eps = _check_eps(eps)
    z = np.asarray(z, dtype=np.float64)
    h = eps * np.maximum(1.0, np.abs(z))
    columns = range(z.shape[1]) if rowwise else [slice(None)]
    grad = np.zeros_like(z)
    for col in columns:
        step = np.zeros_like(z)
        step[:, col] = h[:, col]
        diff = (g * (f(z + step) - f(z - step))).sum(axis=1) if rowwise else g * (f(z + step) - f(z - step))
        if rowwise:
            grad[:, col] = diff / (2 * h[:, col])
        else:
            grad = diff / (2 * h)
    return grad


def network_numerical_gradients(network: Network, x: object, y: object,
                                eps: float = 1e-6) -> dict[str, np.ndarray]:
    """``{name: central-difference ∂L/∂param}`` in float64 for every parameter, in the network's
    mode; in training mode with dropout, with the masks of its last forward pass."""
    eps = _check_eps(eps)
    return _network_differences(network, x, y, eps)[0]


def _network_differences(network: Network, x: object, y: object,
                         eps: float) -> tuple[dict[str, np.ndarray], float]:
    """:func:`network_numerical_gradients` and the loss's evaluation noise ``δL`` measured by
    :func:`_five_point`, pooled (max) over every parameter: the noise of ``L`` near ``θ`` is a
    property of the loss there, common to every perturbed element, so the pool is a far steadier
    estimate than any one element's."""
    net = Network.from_spec(network.spec.replace(dtype="float64"), network.state_dict())
    net.train(network.training)
    if network.training and network.dropout_layers():
        # the function differentiated is the one with the masks of the network's last pass
        masks = network.dropout_masks()
        if len(masks) != len(network.dropout_layers()):
            raise ValueError("finite differences through dropout in training mode differentiate the function of "
                             "fixed masks: run network.loss_and_grads(x, y) first (its masks are replayed), "
                             "or call network.eval()")
        net.replay_dropout_masks(masks)
    xs = net._inputs(x)
    target = net._targets(y, xs.shape[0])
    grads, noise = {}, 0.0
    for p in net.parameters():
        grads[p.name], element_noise = _five_point(lambda: net._loss_value(xs, target), p.value, eps)
        noise = max(noise, float(np.max(element_noise, initial=0.0)))
    return grads, noise


@dataclass(frozen=True)
class GradientCheck:
    """How far ``actual`` is from ``expected``: ``tol_ratio = max |a − e| / (atol + rtol·|e|)``;
    the check passes when ``tol_ratio <= 1``."""

    name: str
    max_abs_err: float
    max_rel_err: float
    tol_ratio: float
    worst_index: tuple[int, ...]
    rtol: float
    atol: float

    @property
    def passed(self) -> bool:
        return self.tol_ratio <= 1.0

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "WRONG"
        return (f"{self.name}: {verdict} tol_ratio={self.tol_ratio:.3g} max_abs_err={self.max_abs_err:.3g} "
                f"max_rel_err={self.max_rel_err:.3g} worst at {self.worst_index}")


def compare_arrays(name: str, actual: np.ndarray, expected: np.ndarray, rtol: float,
                   atol: float) -> GradientCheck:
    """Measure ``actual`` against ``expected`` elementwise (shapes must match). ``rtol`` and
    ``atol`` must be finite and ``>= 0``; with both 0 only exact equality passes."""
    rtol, atol = check_real(rtol, "rtol", low=0.0), check_real(atol, "atol", low=0.0)
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise ValueError(f"{name}: actual has shape {a.shape}, expected {e.shape}")
    if a.size == 0:
        return GradientCheck(name, 0.0, 0.0, 0.0, (), rtol, atol)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.where(a == e, 0.0, np.abs(a - e))   # equal infinities agree
        err = np.where(np.isnan(err), np.inf, err)   # any NaN is a disagreement
        ratio = np.where(err == 0, 0.0, err / (atol + rtol * np.abs(e)))
        rel = np.where(err == 0, 0.0, err / np.abs(e))
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    return GradientCheck(name, float(err.max()), float(rel.max()), float(ratio[worst]),
                         tuple(int(i) for i in worst), rtol, atol)


def check_network_gradients(network: Network, x: object, y: object, *, rtol: float = 1e-6,
                            atol: float = 1e-9, eps: float = 1e-6) -> list[GradientCheck]:
    """Compare the network's backprop gradients with central differences, per parameter.
    ``atol`` is scaled by ``max(1, |L|, max |∂L/∂θ|)`` of the parameter: a gradient of size 1e3
    is not held to 1e-9 absolute, and each difference quotient carries the rounding error
    ``~ε·|L|/h`` of the two loss values it subtracts (a true 0 reads as ``±1 ulp(L)/2h``). To it
    is added the differences' own measured error bound, ``FD_ERROR_FACTOR·δL/h`` (the smallest
    ``h`` of the parameter; ``δL`` from :func:`_network_differences`): where the loss is
    ill-conditioned (a probability near 1 under a log) its noise, not ``ε·|L|``, limits them.
    ``rtol``, ``atol`` must be finite and ``>= 0``, ``eps`` finite and ``> 0``."""
    if not isinstance(network, Network):
        raise TypeError(f"network must be a scratchnet Network, got {type(network).__name__}")
    rtol, atol = check_real(rtol, "rtol", low=0.0), check_real(atol, "atol", low=0.0)
    eps = _check_eps(eps)
    value, analytic = network.loss_and_grads(x, y)
    numeric, noise = _network_differences(network, x, y, eps)
    loss_scale = abs(value) if np.isfinite(value) else 0.0
    state = network.state_dict()
    checks = []
    for name in analytic:
        h = eps * max(1.0, float(np.abs(state[name]).min(initial=1.0)))
        bound = atol * max(1.0, loss_scale, float(np.abs(numeric[name]).max(initial=0.0))) + FD_ERROR_FACTOR * noise / h
        checks.append(compare_arrays(name, analytic[name], numeric[name], rtol, bound))
    return checks


def _check_eps(eps: object) -> float:
    return check_real(eps, "eps", low=0.0, low_open=True)


def assert_gradients_close(checks: Mapping[str, GradientCheck] | list[GradientCheck]) -> None:
    """Raise ``AssertionError`` naming every parameter whose gradient check failed."""
    items = checks.values() if isinstance(checks, Mapping) else checks
    bad = [str(c) for c in items if not c.passed]
    if bad:
        raise AssertionError("gradient mismatch:\n  " + "\n  ".join(bad))
