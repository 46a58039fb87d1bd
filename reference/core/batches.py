"""The three problems every matrix case is compared on (:data:`~scratchnet_reference.core.records.BATCHES`),
so that a user's network meets ``relu'(0)`` and overflowing logits without the property tests:

* ``random`` — the seeded batch of :func:`~scratchnet_reference.core.matrix.make_batch` at the spec's
  initial weights;
* ``kink`` — the same weights with every hidden layer's bias set to 0 and every other input row set
  to 0: on those rows each hidden pre-activation is exactly 0 — the kink of ReLU, leaky ReLU, ELU —
  and stays 0 in deeper layers wherever ``f(0) = 0``; torch's subgradient there is ``f'(0)`` as
  torch defines it (0 for ReLU);
* ``large_logits`` — the same batch with the output layer (weight and bias) scaled so that the
  largest ``|logit|`` is :data:`LARGE_LOGIT`: ``exp`` of it overflows in float64 and float32, and
  the probabilities of the other classes are 0 — an ``exp`` without the maximum subtracted, or a
  ``log`` of a probability, shows here.

Each is ``(batch, spec, state, x, y)``; the expected values still come from torch alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from scratchnet import ModelSpec

from .protocol import initial_state

__all__ = ["LARGE_LOGIT", "problems", "kink_problem", "large_logit_problem"]

#: The largest |logit| of the ``large_logits`` batch: above float64's exp overflow at ~709.8.
LARGE_LOGIT = 1000.0


def kink_problem(spec: ModelSpec, state: Mapping[str, np.ndarray], x: np.ndarray,
                 y: Any) -> tuple[dict[str, np.ndarray], np.ndarray, Any]:
    """``(state, x, y)`` with hidden biases 0 and every other row of ``x`` 0 (the first included)."""
    kinked = {k: np.array(v, copy=True) for k, v in state.items()}
    for k in range(len(spec.sizes) - 2):
        kinked[f"layers.{k}.bias"][...] = 0
    xs = np.array(x, dtype=np.float64, copy=True)
    xs[::2] = 0.0
    return kinked, xs, y


def large_logit_problem(spec: ModelSpec, state: Mapping[str, np.ndarray], x: np.ndarray,
                        y: Any) -> tuple[dict[str, np.ndarray], np.ndarray, Any]:
    """``(state, x, y)`` with the output layer scaled to a largest |logit| of :data:`LARGE_LOGIT`
    (the logits computed by torch from ``state``)."""
    from .mapping import to_tensor
    from .torch_model import build_torch_model

    model = build_torch_model(spec, state)
    model.eval()  # the logits' size only: dropout off, batch norm on its running statistics
    z, _ = model(to_tensor(np.asarray(x), "cpu", model.layers[0].weight.dtype))
    largest = float(z.detach().abs().max())
    scaled = {k: np.array(v, copy=True) for k, v in state.items()}
    if largest > 0:
        last = len(spec.sizes) - 2
        factor = LARGE_LOGIT / largest
        for name in (f"layers.{last}.weight", f"layers.{last}.bias"):
            scaled[name] = (scaled[name].astype(np.float64) * factor).astype(scaled[name].dtype)
    return scaled, np.array(x, copy=True), y


def problems(spec: ModelSpec, x: np.ndarray, y: Any,
             state: Mapping[str, np.ndarray] | None = None) -> list[tuple[str, ModelSpec, dict, np.ndarray, Any]]:
    """The ``random``, ``kink`` and ``large_logits`` problems of one case."""
    state = initial_state(spec) if state is None else dict(state)
    return [("random", spec, state, x, y),
            ("kink", spec, *kink_problem(spec, state, x, y)),
            ("large_logits", spec, *large_logit_problem(spec, state, x, y))]
