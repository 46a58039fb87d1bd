"""Comparison records: one plain dataclass per compared tensor, ready for ``pandas.DataFrame``.

Every record measures ``actual`` (the implementation under test) against ``expected`` (torch)::

    max_abs_err = max |a − b|          max_rel_err = max |a − b| / |b|
    tol_ratio   = max |a − b| / (atol + rtol·|b|)            passed ⇔ tol_ratio ≤ 1

Ratios, not booleans, go into reports, so a drift shows long before a failure.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

__all__ = ["Record", "Combination", "measure", "tol_ratios", "CHECKS", "BATCHES", "STATUSES", "ORACLES"]

#: ``inputs``: whether the implementation's calls left the arrays they were handed unchanged
#: (:mod:`~scratchnet_reference.core.boundary`).
CHECKS = ("forward", "loss", "gradient", "inputs", "training_step", "final_params", "fit_step", "fit_epoch")
#: The batches each matrix case is compared on (the ``batch`` field): a seeded random batch; the same
#: with half its rows zero and the hidden biases zero, so hidden pre-activations sit exactly on the
#: kink at 0 (``relu'(0)``); the same with the output layer scaled to logits of ±``LARGE_LOGIT``
#: (overflowing ``exp``, ``log 0``). Training and fit records have ``batch = ""``.
BATCHES = ("random", "kink", "large_logits")
#: pass; fail; unverified — no oracle could judge this record: torch's own arithmetic broke down
#: (NaN/±inf, a saturated probability under a log, BCE's clamps) and none of the second oracles
#: (:data:`ORACLES`) applied. Neither a pass nor a failure; the gate treats it as a regression from pass.
STATUSES = ("pass", "fail", "unverified")

#: Who computed a record's expected value (the ``oracle`` field), first applicable wins:
#:
#: * ``torch`` — torch in the record's flavour and dtype (modular: the loss on the output activation;
#:   fused: torch's stable form on the logits);
#: * ``torch_fused`` / ``torch_stable`` — for a pair the spec fuses, where torch's modular path broke
#:   down: torch's fused op (``F.cross_entropy``, ``binary_cross_entropy_with_logits``,
#:   ``log_softmax`` + ``nll_loss``) or, for sigmoid + cross-entropy, which torch does not fuse, the
#:   loss written with ``logsigmoid`` — the function a fused implementation computes;
#: * ``torch_float64`` — for a float32 comparison: the same torch path in float64 on the same numbers;
#: * ``torch_stable_float64`` — the loss and ``∂L/∂z`` written stably from the logits in float64
#:   (:mod:`scratchnet_reference.core.stable`), the rest of the network by autograd.
#: * ``harness_copy`` — for the ``inputs`` check: the arrays as the harness handed them to the user's code.
ORACLES = ("torch", "torch_fused", "torch_stable", "torch_float64", "torch_stable_float64", "harness_copy")


@dataclass(frozen=True)
class Combination:
    """What was compared: the model and, for training checks, how it was trained."""

    hidden: str
    output: str
    loss: str
    reduction: str
    flavour: str
    dtype: str
    device: str
    sizes: str = ""
    optimizer: str = ""
    gd_mode: str = ""
    seed: int = 0
    impl: str = "scratchnet"
    batch: str = ""

    @property
    def key(self) -> str:
        """Identifies a row of the conformance matrix (training setup excluded)."""
        return "|".join((self.hidden, self.output, self.loss, self.reduction, self.flavour, self.dtype, self.device))


@dataclass(frozen=True, kw_only=True)
class Record:
    """One compared tensor: what was compared (``check``, ``param``, ``shape`` and, flattened in, every
    field of :class:`Combination`, all required, in its order: a tidy DataFrame row), then what was
    measured. The field types are the CSV schema of every report table that carries the field
    (:mod:`scratchnet_reference.reports.schema` reads them from here)."""

    check: str
    param: str
    shape: str
    # -- the Combination, flattened (same names, same order; test_record_flattens_combination) --
    hidden: str
    output: str
    loss: str
    reduction: str
    flavour: str
    dtype: str
    device: str
    sizes: str
    optimizer: str
    gd_mode: str
    seed: int
    impl: str
    batch: str = ""  # (a default: a records.csv from before the field reads back)
    # -- the measurement ------------------------------------------------------------------------
    max_abs_err: float
    max_rel_err: float
    tol_ratio: float
    atol: float
    rtol: float
    passed: bool
    status: str
    worst_index: str
    oracle: str = "torch"
    step: int = -1
    actual_value: float = float("nan")
    expected_value: float = float("nan")
    param_distance: float = float("nan")
    cosine: float = float("nan")
    norm_ratio: float = float("nan")
    noise_floor: float = 0.0
    fd_verdict: str = ""
    first_break_step: int = -1
    note: str = ""
    device_name: str = ""
    versions: str = ""
    #: which derivative is wrong and how (the diagnosis's root causes, encoded); "" when it passed
    diagnosis: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def columns(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def tol_ratios(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float | np.ndarray) -> np.ndarray:
    """Elementwise ``|a − b| / (atol + rtol·|b|)`` (float64): 0 where the two agree exactly (equal
    infinities, NaN on both sides), ``inf`` where only one side is NaN or the tolerance is 0/NaN."""
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"actual has shape {a.shape}, expected {b.shape}")
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        err = np.where((a == b) | (np.isnan(a) & np.isnan(b)), 0.0, np.abs(a - b))
        err = np.where(np.isnan(err), np.inf, err)
        ratio = err / (atol + rtol * np.abs(b))
        # agreeing elements (err = 0) have ratio 0 whatever the tolerance: 0/0 (atol = 0, b = 0)
        # and 0/(0·inf) (rtol = 0, b = ±inf) must not become NaN and then an infinite disagreement
        return np.where(err == 0, 0.0, np.where(np.isnan(ratio), np.inf, ratio))


def measure(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float | np.ndarray) -> dict[str, Any]:
    """Error statistics of ``actual`` against ``expected`` (equal infinities agree; any NaN
    on either side, unless on both, is a disagreement of infinite size). ``atol`` may be an
    array (elementwise floor)."""
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(expected, dtype=np.float64)
    ratio = tol_ratios(a, b, rtol, atol)
    if a.size == 0:
        return dict(max_abs_err=0.0, max_rel_err=0.0, tol_ratio=0.0, worst_index="()")
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        err = np.where((a == b) | (np.isnan(a) & np.isnan(b)), 0.0, np.abs(a - b))
        err = np.where(np.isnan(err), np.inf, err)
        rel = np.where(err == 0, 0.0, err / np.abs(b))
        rel = np.where(np.isnan(rel), np.inf, rel)  # a finite value against ±inf: inf/inf
    worst = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    return dict(max_abs_err=float(err.max()), max_rel_err=float(rel.max()), tol_ratio=float(ratio[worst]),
                worst_index=str(tuple(int(i) for i in worst)))


def vector_agreement(actual: np.ndarray, expected: np.ndarray) -> dict[str, float]:
    """Cosine similarity and norm ratio ``‖a‖/‖b‖`` of two gradients (1 and 1 when equal);
    a transposed or rescaled gradient shows up here at a glance."""
    a = np.asarray(actual, dtype=np.float64).ravel()
    b = np.asarray(expected, dtype=np.float64).ravel()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if not (np.isfinite(na) and np.isfinite(nb)):
        return dict(cosine=float("nan"), norm_ratio=float("nan"))
    if na == 0 and nb == 0:
        return dict(cosine=1.0, norm_ratio=1.0)
    cosine = float(a @ b / (na * nb)) if na and nb else 0.0
    return dict(cosine=cosine, norm_ratio=na / nb if nb else float("inf"))


def versions_string(versions: dict[str, str]) -> str:
    return json.dumps(versions, sort_keys=True)
