"""Shared helpers of the core tests: registry-driven cases, hypothesis strategies, the
finite-difference comparison and its worst-agreement recorder.

Everything that enumerates activations, losses or pairs reads :mod:`scratchnet.registry`;
``ACTIVATION_VARIANTS`` / ``LOSS_VARIANTS`` only *add* non-default hyper-parameters on top of
the registry's defaults (a variant whose name leaves the registry makes a test fail).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratchnet import registry
from scratchnet.gradcheck import GradientCheck, compare_arrays
from scratchnet.losses import one_hot

# -- registry-driven cases -------------------------------------------------------------------

#: Extra hyper-parameters tested besides each entry's defaults (a kink moved into range, the
#: other GELU, β = 0 smooth-L1 …).
ACTIVATION_VARIANTS: dict[str, list[dict]] = {
    "leaky_relu": [{"negative_slope": 0.2}],
    "elu": [{"alpha": 0.5}],
    "softplus": [{"beta": 2.0, "threshold": 5.0}],   # kink at z = 2.5, inside the FD range
    "gelu": [{"approximate": "tanh"}],
}
LOSS_VARIANTS: dict[str, list[dict]] = {
    "huber": [{"delta": 0.5}],
    "smooth_l1": [{"beta": 0.5}, {"beta": 0.0}],
    "cross_entropy": [{"label_smoothing": 0.1}],
    "nll": [{"label_smoothing": 0.2}],
}


def activation_specs() -> list[dict]:
    """Every registered activation with its defaults, then the variants."""
    return [{"name": name, **params} for name in registry.ACTIVATIONS
            for params in [{}, *ACTIVATION_VARIANTS.get(name, [])]]


def loss_specs(names=None) -> list[dict]:
    """Every registered loss (or those in ``names``) with its defaults, then the variants."""
    return [{"name": name, **params} for name in (names or registry.LOSSES)
            for params in [{}, *LOSS_VARIANTS.get(name, [])]]


def valid_pairs() -> list[tuple[str, str]]:
    """Every ``(output activation, loss)`` the registry allows."""
    return [(out, loss) for loss in registry.LOSSES for out in registry.outputs_for(loss)]


def invalid_pairs() -> list[tuple[str, str]]:
    allowed = set(valid_pairs())
    return [(out, loss) for loss in registry.LOSSES for out in registry.ACTIVATIONS
            if (out, loss) not in allowed]


def spec_id(spec) -> str:
    return registry.label(spec)


def pair_id(pair) -> str:
    return "+".join(pair)


# -- strategies ------------------------------------------------------------------------------

DTYPES = (np.float32, np.float64)


def floats(lo: float, hi: float, dtype=np.float64) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False,
                     width=32 if np.dtype(dtype) == np.float32 else 64)


def shapes(max_rows: int = 5, max_cols: int = 5, min_cols: int = 1) -> st.SearchStrategy[tuple[int, int]]:
    return st.tuples(st.integers(1, max_rows), st.integers(min_cols, max_cols))


def matrices(shape, lo: float, hi: float, dtype=np.float64) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(dtype, shape, elements=floats(lo, hi, dtype))


def upstream(shape, dtype=np.float64, seed: int = 0) -> np.ndarray:
    """A drawn upstream gradient ``∂L/∂a`` for a vector-Jacobian check: random signs, magnitudes in
    [0.5, 2], never uniform.

    Where this is guaranteed: every backward/VJP check of these tests back-propagates this, a draw of
    :func:`upstreams`, or a real loss's gradient on drawn targets — never ones or a ``.sum()`` loss
    (``tests/core/test_upstream.py`` holds the suite to it). A uniform upstream makes a row-wise VJP
    vacuous — softmax's ``a ⊙ (g − ⟨g, a⟩)`` is 0 for every constant ``g``, whatever the backward gets
    wrong in the second term — and cannot tell a backward that ignores ``g`` from one that uses it."""
    rng = np.random.default_rng(seed)
    return (rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, size=shape)).astype(dtype)


def upstreams(shape, dtype=np.float64) -> st.SearchStrategy[np.ndarray]:
    """Hypothesis draws of an upstream gradient in [−2, 2] (see :func:`upstream`), uniform ones excluded."""
    return matrices(shape, -2.0, 2.0, dtype).filter(
        lambda g: bool(np.ptp(g) > 0) if g.size > 1 else bool(np.all(g != 0)))


def output_bounds(loss) -> tuple[float, float]:
    """A range of outputs ``p`` the loss is defined (and smooth) on, from its ``accepts``."""
    if "real" in loss.accepts:
        return -3.0, 3.0
    if "probability" in loss.accepts:
        # away from BCE's log clamps; and where p = y (true gradient 0) the FD truncation error
        # h²·ℓ‴/6 ≈ h²/(3p²) stays ~1e-10 (with p ≥ 0.02 it reached 8e-10, a tol_ratio of 0.89)
        return 0.05, 0.95
    return -6.0, -0.01             # log-probabilities


def _accepts(loss, y, n_classes) -> bool:
    try:
        loss.prepare_target(y, n_classes, np.dtype(np.float64))
    except ValueError:
        return False
    return True


@st.composite
def targets(draw, loss, n_rows: int, n_classes: int) -> np.ndarray:
    """A target the loss accepts: class labels, probability rows, values in [0, 1] or real
    rows — each kind offered only when ``loss.prepare_target`` accepts it (probed, so a new
    loss needs no table here)."""
    kinds = ["labels", "distribution"]
    if _accepts(loss, np.array([[0.25, 0.9]]), 2):
        kinds.append("unit_interval")
    if _accepts(loss, np.array([[-2.0, 3.0]]), 2):
        kinds.append("real")
    kind = draw(st.sampled_from(kinds))
    if kind == "labels":
        return draw(hnp.arrays(np.int64, (n_rows,), elements=st.integers(0, n_classes - 1)))
    if kind == "distribution":
        w = draw(matrices((n_rows, n_classes), 0.0, 1.0))
        w[np.arange(n_rows), draw(st.integers(0, n_classes - 1))] += 0.5   # no all-zero row
        return w / w.sum(axis=1, keepdims=True)
    if kind == "unit_interval":
        return draw(matrices((n_rows, n_classes), 0.0, 1.0))
    return draw(matrices((n_rows, n_classes), -3.0, 3.0))


def dense_target(loss, target: np.ndarray, n_classes: int, dtype=np.float64) -> np.ndarray:
    """The target as ``(N, C)`` rows (labels one-hot encoded), the ``y`` in ``d = p − y``."""
    return one_hot(target, n_classes, dtype) if target.ndim == 1 else target


# -- fused pairs: a plain-math oracle ----------------------------------------------------------

def _lse(row):
    m = max(row)
    return m + math.log(sum(math.exp(v - m) for v in row))


def _softplus(v):
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


def _sigmoid(v):
    return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))


def _softmax_ce_row(z, y):
    lse = _lse(z)
    return -sum(t * (v - lse) for v, t in zip(z, y, strict=True))


def _softmax_ce_grad_row(z, y):
    lse = _lse(z)
    return [math.exp(v - lse) * sum(y) - t for v, t in zip(z, y, strict=True)]


#: per pair, the loss of one row of logits ``z`` against its dense target row ``y'`` and the
#: gradient of that row, in plain Python floats: the oracle for extreme logits, where no
#: composition of rounded numpy steps survives. Rows are summed, then divided by the reduction.
FUSED_REFERENCE = {
    ("softmax", "cross_entropy"): (_softmax_ce_row, _softmax_ce_grad_row),
    ("log_softmax", "nll"): (_softmax_ce_row, _softmax_ce_grad_row),
    ("sigmoid", "binary_cross_entropy"): (
        lambda z, y: sum(_softplus(v) - t * v for v, t in zip(z, y, strict=True)),
        lambda z, y: [_sigmoid(v) - t for v, t in zip(z, y, strict=True)]),
    ("sigmoid", "cross_entropy"): (                    # −y log σ(z) = y·softplus(−z)
        lambda z, y: sum(t * _softplus(-v) for v, t in zip(z, y, strict=True)),
        lambda z, y: [-t * _sigmoid(-v) for v, t in zip(z, y, strict=True)]),
}
#: DESIGN.md's canonical pairs, whose ``∂L/∂z`` is ``(p·Σy − y)/n`` (p the probabilities).
CANONICAL_PAIRS = (("softmax", "cross_entropy"), ("log_softmax", "nll"), ("sigmoid", "binary_cross_entropy"))


def dense_smoothed(loss, target, n_classes):
    """``y'``: labels one-hot encoded and label smoothing applied (where the loss has it)."""
    if hasattr(loss, "smoothed"):
        return loss.smoothed(target, n_classes, np.dtype(np.float64))
    return np.eye(n_classes)[target] if target.ndim == 1 else target


def probabilities(act, a):
    """The probabilities the output activation encodes: ``a`` itself, or ``exp(a)``."""
    return np.exp(a) if act.output_kind == "log_probability" else a


def _rows(loss, z, target):
    y = dense_smoothed(loss, target, z.shape[1])
    return zip([[float(v) for v in r] for r in z], [[float(v) for v in r] for r in y], strict=True)


def fused_reference_value(pair, loss, z, target) -> float:
    """The reduced loss of ``pair`` at logits ``z``, in plain Python floats."""
    value_row, _ = FUSED_REFERENCE[pair]
    return sum(value_row(zr, yr) for zr, yr in _rows(loss, z, target)) / loss.divisor(z)


def fused_reference_gradient(pair, loss, z, target) -> np.ndarray:
    """``∂L/∂z`` of ``pair`` at logits ``z``, in plain Python floats."""
    _, grad_row = FUSED_REFERENCE[pair]
    return np.array([grad_row(zr, yr) for zr, yr in _rows(loss, z, target)]) / loss.divisor(z)


# -- kinks -----------------------------------------------------------------------------------

KINK_MARGIN = 1e-3  # FD steps are ≤ 1e-6·max(1, |x|) ≪ margin, so no difference straddles a kink


def away_from_kinks(values: np.ndarray, kinks, offset: np.ndarray | float = 0.0,
                    margin: float = KINK_MARGIN) -> np.ndarray:
    """Move every element of ``values`` whose ``values − offset`` lies within ``margin`` of a
    kink to ``kink ± 2·margin`` (on its own side), so central differences never straddle it."""
    v = np.array(values, dtype=np.float64)
    for k in kinks:
        d = v - offset - k
        near = np.abs(d) < margin
        v = np.where(near, offset + k + np.where(d < 0, -2 * margin, 2 * margin), v)
    return v


def min_kink_distance(values: np.ndarray, kinks, offset: np.ndarray | float = 0.0) -> float:
    return min((float(np.abs(values - offset - k).min()) for k in kinks), default=math.inf)


# -- FD comparison and its recorder -----------------------------------------------------------

FD_RTOL = 1e-6   # float64 central differences: truncation O(h²) + rounding O(ε/h) ≈ 1e-10 rel.
FD_ATOL = 1e-9   # scaled by max(1, |L|, max |expected|) like check_network_gradients
# Measured worst float64 agreement (printed after every run by conftest.py):
#   CI profile, all of tests/core (~4700 comparisons): max tol_ratio 0.28 (abs err 7.8e-10 on a
#     vanishing gradient 11 layers deep); max abs err 9.2e-9 (relative 3.4e-8).
#   3 random `dev` runs: max tol_ratio 0.28; max abs err 2.6e-7 (relative 2.2e-8).
#   `thorough` (1000 examples) on the unit-level activation/loss/fused checks: max tol_ratio 0.19
#     (BCE where p = y, true gradient 0); it was 0.89 before probabilities were kept ≥ 0.05.


@dataclass
class _Worst:
    tol_ratio: float = 0.0
    max_abs_err: float = 0.0
    ratio_where: str = ""
    abs_where: str = ""
    n: int = 0


FD_WORST = _Worst()


def _describe(check: GradientCheck, where: str) -> str:
    return str(check) if check.name == where else f"{where}: {check}"


def record(check: GradientCheck, where: str) -> GradientCheck:
    """Remember the worst float64 FD agreement of the session (printed in the summary)."""
    FD_WORST.n += 1
    if check.tol_ratio > FD_WORST.tol_ratio:
        FD_WORST.tol_ratio, FD_WORST.ratio_where = check.tol_ratio, _describe(check, where)
    if check.max_abs_err > FD_WORST.max_abs_err:
        FD_WORST.max_abs_err, FD_WORST.abs_where = check.max_abs_err, _describe(check, where)
    return check


def assert_fd_close(where: str, actual: np.ndarray, numeric: np.ndarray, magnitude: float = 1.0,
                    rtol: float = FD_RTOL, atol: float = FD_ATOL, recorded: bool = True) -> None:
    """``actual`` (analytic) against central differences ``numeric``, recorded; the failure
    message names the case and the worst element.

    ``atol`` is scaled by ``max(1, max |numeric|, magnitude)``: ``magnitude`` is the size of the
    function values that were differenced (a loss value, a row of ``g ⊙ f``), whose rounding
    error ``~ε·magnitude`` divided by the step ``h ≈ 1e-6`` is what central differences add."""
    scale = max(1.0, float(np.abs(numeric).max(initial=0.0)), float(magnitude))
    check = compare_arrays(where, actual, numeric, rtol, atol * scale)
    if recorded:  # teeth tests feed deliberately wrong derivatives: keep them out of the record
        record(check, where)
    assert check.passed, f"{check}\nanalytic:\n{np.asarray(actual)!r}\nnumeric:\n{numeric!r}"


def assert_checks_pass(where: str, checks: list[GradientCheck]) -> None:
    for c in checks:
        record(c, where)
    bad = [str(c) for c in checks if not c.passed]
    assert not bad, f"{where}: gradient mismatch:\n  " + "\n  ".join(bad)

