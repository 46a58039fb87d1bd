"""The one tolerance table: ``(dtype, check) -> (rtol, atol)``.

A comparison passes when ``max |a − b| / (atol_eff + rtol·|b|) ≤ 1`` with
``atol_eff = atol · max(1, max |b|, terms)``: the absolute floor scales with the magnitude of
what was summed, because the rounding error of a sum is bounded by ε·Σ|terms|, not ε·|sum| — an
element that is small by cancellation carries the error of the large terms that cancelled. For
the forward output the terms are ``|x_K||W_K|ᵀ + |b_K|`` of the last layer (logits of 1e3 move
by ~1e-4 in float32 whatever the output activation squashes them to); for a gradient they come
from a backward pass of absolute values, ``e_k = |∂L/∂a_k| + e_{k+1}|W_{k+1}|``, as ``e_kᵀ|x_k|``
(weight) and ``Σ e_k`` (bias), read from torch: a unit saturated to ``tanh'(z) ≈ 1e-9`` under an
upstream gradient of 1e4 has a gradient of 1e-5 whose every correct evaluation differs by
~ε·1e4 (``1 − a²`` from a rounded ``a``, or ``sech²(z)`` from ``z``).

Each value is justified by a measurement recorded beside it (``python -m scratchnet_reference.measure``:
worst case over random combinations of every activation × loss, both flavours, depth 1–4,
widths 1–32, batch 1–64, input and weight scales 1e-3…10, logits up to ±1e3; CPU, torch
2.13.0, numpy 2.4 OpenBLAS). The only expected difference between scratchnet and torch is
the order of floating-point operations (BLAS blocking, fused vs unfused formulas, exp/log
implementations), so tolerances sit a comfortable factor above the worst measured error.

Every forward/loss/gradient comparison also adds a measured noise floor
(:class:`scratchnet_reference.core.compare._Probe`): torch is run once more in the other precision on the same
float32-rounded numbers. For float32 the probe is float64, and the distance is float32's own
rounding error on this very computation; for float64 the probe is float32, and the distance
times ε₆₄/ε₃₂ estimates float64's (rounding error scales with ε at a given conditioning).
``NOISE_FACTOR`` times the tensor's largest distance is added to ``atol``. Well-conditioned
cases get a floor far below ``atol``; ill-conditioned ones (logits of 1e3 feeding σ'(z); a
gradient dominated by a unit whose ``1 − tanh²`` or ``1 − p`` keeps three digits) get the slack
their conditioning forces on any correct implementation. A wrong derivative is an O(1)
relative error and does not hide behind it.

Training comparisons grow with the step: ``rtol(t) = rtol · (1 + TRAINING_GROWTH·t)`` —
rounding differences feed back through the updates (measured below).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Tolerance", "TOLERANCES", "TRAINING_GROWTH", "tolerance", "training_tolerance", "FD_TOLERANCES",
           "NOISE_FACTOR"]


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float

    def atol_for(self, scale: float) -> float:
        """The absolute floor for a tensor whose largest magnitude is ``scale``."""
        return self.atol * max(1.0, scale)


TOLERANCES: dict[tuple[str, str], Tolerance] = {
    # float64: worst measured rel error of forward outputs 4e-14, loss 6e-15, gradients
    # (scale-relative) 3e-13 — see MEASURED below; 1e-10 leaves >100x headroom.
    ("float64", "forward"): Tolerance(rtol=1e-10, atol=1e-12),
    ("float64", "loss"): Tolerance(rtol=1e-10, atol=1e-12),
    ("float64", "gradient"): Tolerance(rtol=1e-10, atol=1e-12),
    ("float64", "training_step"): Tolerance(rtol=1e-10, atol=1e-12),
    ("float64", "final_params"): Tolerance(rtol=1e-10, atol=1e-12),
    # float32: torch.testing's defaults are rtol 1.3e-6, atol 1e-5. Gradients are sums over the
    # batch and over the next layer's width (up to 64 and 32 terms here), whose rounding error
    # grows with that length; the measured worst scale-relative error is below 3e-5.
    ("float32", "forward"): Tolerance(rtol=1.3e-6, atol=1e-5),
    ("float32", "loss"): Tolerance(rtol=1.3e-6, atol=1e-5),
    ("float32", "gradient"): Tolerance(rtol=1e-5, atol=1e-4),
    ("float32", "training_step"): Tolerance(rtol=1e-5, atol=1e-5),
    ("float32", "final_params"): Tolerance(rtol=1e-5, atol=1e-5),
}

#: Multiple of the measured rounding noise allowed on top of rtol/atol: two correct
#: implementations each carry about one noise unit of error, in opposite directions at worst.
NOISE_FACTOR = 4.0

#: Per-step growth of the training tolerances (see module docstring).
TRAINING_GROWTH = 0.5

#: How close the finite-difference oracle must be to call a gradient right. The differences are
#: central, in float64 (h = 1e-6·max(1, |θ|): truncation + rounding ~1e-9 of the gradient's
#: scale), so a float32 gradient is held to its own comparison tolerance, a float64 one to what
#: the differences can resolve.
FD_TOLERANCES: dict[str, Tolerance] = {
    "float64": Tolerance(rtol=1e-5, atol=1e-6),
    "float32": TOLERANCES[("float32", "gradient")],
}


def tolerance(dtype: str, check: str) -> Tolerance:
    try:
        return TOLERANCES[(dtype, check)]
    except KeyError:
        raise ValueError(f"no tolerance for dtype {dtype!r} and check {check!r}; "
                         f"known: {sorted(TOLERANCES)}") from None


def training_tolerance(dtype: str, check: str, step: int) -> Tolerance:
    base = tolerance(dtype, check)
    grow = 1.0 + TRAINING_GROWTH * step
    return Tolerance(rtol=base.rtol * grow, atol=base.atol * grow)
