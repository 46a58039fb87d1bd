"""Loss functions with PyTorch's reductions and hand-written gradients.

A loss compares the network's output ``p`` (shape ``(N, C)``) with a prepared target and
returns a scalar; ``gradient`` returns ``dL/dp`` with the shape of ``p``. Reductions follow
torch: ``"mean"`` divides MSE, L1, Huber, smooth-L1 and binary cross-entropy by all ``N·C``
elements, cross-entropy and NLL by the batch size ``N``; ``"sum"`` divides by nothing.

Targets (:meth:`Loss.prepare_target`): a 1-D integer array is read as class labels — kept as
indices by cross-entropy and NLL, one-hot encoded for every other loss (with a single output
unit, labels 0/1 are the target column: the binary sigmoid case); a 2-D float array is
used as it is (for cross-entropy and NLL each row must be a probability distribution, for
binary cross-entropy every value must lie in [0, 1]).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ._checks import as_array, as_float_array, check_real

__all__ = [
    "Loss", "MSELoss", "L1Loss", "HuberLoss", "SmoothL1Loss", "CrossEntropyLoss",
    "NLLLoss", "BCELoss", "REDUCTIONS", "one_hot",
]

REDUCTIONS = ("mean", "sum")
_DISTRIBUTION_ATOL = 1e-5  # |row sum − 1| allowed for soft targets (float32 rounding of C terms)


def one_hot(labels: np.ndarray, n_classes: int, dtype: np.dtype) -> np.ndarray:
    """Rows ``e_{labels[i]}`` of the ``n_classes`` identity, in ``dtype``."""
    out = np.zeros((labels.shape[0], n_classes), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


class Loss:
    """Base class: ``value(p, y)`` and ``gradient(p, y) = dL/dp`` under ``reduction``.

    Class attributes for the registry: ``accepts`` — the activation output kinds the loss is
    defined on (see :class:`scratchnet.activations.Activation`); ``per_sample`` — True when
    ``"mean"`` divides by the batch size (cross-entropy, NLL) rather than by every element.
    """

    name: ClassVar[str]
    formula: ClassVar[str]
    accepts: ClassVar[frozenset[str]] = frozenset({"real", "probability", "log_probability"})
    per_sample: ClassVar[bool] = False

    def __init__(self, reduction: str = "mean"):
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    @property
    def params(self) -> dict[str, Any]:
        """Hyper-parameters other than the reduction."""
        return {}

    @property
    def kinks(self) -> tuple[float, ...]:
        """Values of ``p − y`` where the loss has a kink."""
        return ()

    def divisor(self, output: np.ndarray) -> int:
        """What the summed loss is divided by: 1, ``N`` or ``N·C``."""
        if self.reduction == "sum":
            return 1
        return output.shape[0] if self.per_sample else output.size

    # -- targets -------------------------------------------------------------------------
    def prepare_target(self, y: object, n_classes: int, dtype: np.dtype) -> np.ndarray:
        """Validate ``y`` against the output's width and return it in the form the loss uses:
        an int index vector (cross-entropy / NLL with labels) or a float ``(N, C)`` array."""
        arr = as_array(y, "y")
        if arr.ndim == 1 and arr.dtype.kind in "iu":
            # One output unit (a binary sigmoid model): labels 0/1 are the target column itself.
            binary = n_classes == 1 and not self.per_sample
            top = 1 if binary else n_classes - 1
            if arr.size and (arr.min() < 0 or arr.max() > top):
                bad = arr[(arr < 0) | (arr > top)][0]
                what = "a single output (binary labels 0/1)" if binary else f"{n_classes} classes"
                raise ValueError(f"y holds class label {bad}, but the network outputs {what} "
                                 f"(labels must lie in [0, {top}])")
            if binary:
                return np.ascontiguousarray(arr[:, None], dtype=dtype)
            return self._labels(arr.astype(np.intp), n_classes, dtype)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"y must hold numbers, got dtype {arr.dtype}")
        if arr.ndim != 2:
            raise ValueError(f"y must be a 1-D integer label vector or a 2-D (batch, {n_classes}) "
                             f"array, got shape {arr.shape} and dtype {arr.dtype}")
        if arr.shape[1] != n_classes:
            raise ValueError(f"y has {arr.shape[1]} columns, but the network outputs {n_classes} classes")
        if arr.shape[0] == 0:
            raise ValueError(f"y must have at least one row, got shape {arr.shape}")
        arr = as_float_array(arr, "y", dtype)
        self._check_dense(arr)
        return arr

    def _labels(self, labels: np.ndarray, n_classes: int, dtype: np.dtype) -> np.ndarray:
        return one_hot(labels, n_classes, dtype)

    def _check_dense(self, y: np.ndarray) -> None:
        """Hook for target-domain checks on dense targets."""

    # -- the loss ------------------------------------------------------------------------
    def value(self, output: np.ndarray, target: np.ndarray) -> np.floating:
        raise NotImplementedError

    def gradient(self, output: np.ndarray, target: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in {**self.params, "reduction": self.reduction}.items())
        return f"{type(self).__name__}({args})"


class MSELoss(Loss):
    """Squared error ``L = Σ (p − y)² / n``; ``dL/dp = 2(p − y)/n`` (``n = N·C`` for mean)."""

    name = "mse"
    formula = "L = Σ(p−y)²/n;  ∂L/∂p = 2(p−y)/n"

    def value(self, output, target):
        d = output - target
        return np.sum(d * d) / output.dtype.type(self.divisor(output))

    def gradient(self, output, target):
        return (output - target) * (2.0 / self.divisor(output))


class L1Loss(Loss):
    """Absolute error ``L = Σ |p − y| / n``; ``dL/dp = sign(p − y)/n`` (0 at ``p = y``, as torch)."""

    name = "l1"
    formula = "L = Σ|p−y|/n;  ∂L/∂p = sign(p−y)/n"

    @property
    def kinks(self):
        return (0.0,)

    def value(self, output, target):
        return np.sum(np.abs(output - target)) / output.dtype.type(self.divisor(output))

    def gradient(self, output, target):
        return np.sign(output - target) * (1.0 / self.divisor(output))


class HuberLoss(Loss):
    """Huber loss with threshold ``δ`` on ``d = p − y``: ``½d²`` if ``|d| < δ`` else
    ``δ(|d| − ½δ)``; ``dL/dd = clip(d, −δ, δ)``; divided by ``n``."""

    name = "huber"
    formula = "ℓ = ½d² if |d|<δ else δ(|d|−½δ);  ∂ℓ/∂d = clip(d, −δ, δ)"

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction)
        self.delta = check_real(delta, "delta", low=0.0, low_open=True)

    @property
    def params(self):
        return {"delta": self.delta}

    @property
    def kinks(self):
        return (-self.delta, self.delta)

    def value(self, output, target):
        a = np.abs(output - target)
        per = np.where(a < self.delta, 0.5 * a * a, self.delta * (a - 0.5 * self.delta))
        return np.sum(per) / output.dtype.type(self.divisor(output))

    def gradient(self, output, target):
        return np.clip(output - target, -self.delta, self.delta) * (1.0 / self.divisor(output))


class SmoothL1Loss(Loss):
    """Smooth L1 with ``β`` on ``d = p − y``: ``½d²/β`` if ``|d| < β`` else ``|d| − ½β``;
    ``dL/dd = clip(d/β, −1, 1)``; ``β = 0`` is plain L1 (as torch). Equals Huber(δ=β)/β."""

    name = "smooth_l1"
    formula = "ℓ = ½d²/β if |d|<β else |d|−½β;  ∂ℓ/∂d = clip(d/β, −1, 1)"

    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction)
        self.beta = check_real(beta, "beta", low=0.0)

    @property
    def params(self):
        return {"beta": self.beta}

    @property
    def kinks(self):
        return (-self.beta, self.beta) if self.beta else (0.0,)

    def value(self, output, target):
        a = np.abs(output - target)
        if self.beta == 0:
            per = a
        else:
            per = np.where(a < self.beta, 0.5 * a * a / self.beta, a - 0.5 * self.beta)
        return np.sum(per) / output.dtype.type(self.divisor(output))

    def gradient(self, output, target):
        d = output - target
        slope = np.sign(d) if self.beta == 0 else np.clip(d / self.beta, -1, 1)
        return slope * (1.0 / self.divisor(output))


class _DistributionTargets(Loss):
    """Shared target handling of cross-entropy and NLL: labels stay indices, dense rows must be
    distributions, and ``label_smoothing`` ε mixes the target with the uniform distribution:
    ``y' = (1 − ε)·y + ε/C``."""

    per_sample = True

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(reduction)
        self.label_smoothing = check_real(label_smoothing, "label_smoothing", low=0.0, high=1.0)

    @property
    def params(self):
        return {"label_smoothing": self.label_smoothing}

    def _labels(self, labels, n_classes, dtype):
        return labels

    def _check_dense(self, y):
        if np.any(y < 0):
            raise ValueError(f"y rows must be probability distributions for {self.name}, "
                             f"but y has a negative entry {float(y.min())!r}")
        sums = y.sum(axis=1, dtype=np.float64)
        bad = np.flatnonzero(np.abs(sums - 1) > _DISTRIBUTION_ATOL)   # every row is checked
        if bad.size:
            row = int(bad[0])
            raise ValueError(f"y rows must sum to 1 for {self.name} (one-hot or probability rows), "
                             f"but row {row} sums to {float(sums[row])!r}"
                             + (f" ({bad.size} rows are off)" if bad.size > 1 else ""))

    def smoothed(self, target: np.ndarray, n_classes: int, dtype: np.dtype) -> np.ndarray:
        """The dense target ``y'`` (labels one-hot encoded, then label smoothing applied)."""
        y = one_hot(target, n_classes, dtype) if target.ndim == 1 else target
        eps = self.label_smoothing
        return y if eps == 0 else y * (1 - eps) + eps / n_classes

    def _picked(self, values: np.ndarray, target: np.ndarray) -> np.ndarray:
        """``Σ_c y'_c · values_c`` per row, with a gather for unsmoothed labels."""
        if target.ndim == 1 and self.label_smoothing == 0:
            return values[np.arange(values.shape[0]), target]
        y = self.smoothed(target, values.shape[1], values.dtype)
        # 0 · (−inf) is 0 here: a class with no target mass contributes nothing. np.where
        # evaluates both branches, so the NaN of 0 · (−inf) is computed and discarded: silence it.
        with np.errstate(invalid="ignore"):
            return np.where(y != 0, y * values, 0).sum(axis=1)


class CrossEntropyLoss(_DistributionTargets):
    """Cross-entropy on probabilities: ``L = −Σ_i Σ_c y'_ic log p_ic / N``;
    ``dL/dp = −y'/p / N`` (0 where ``y' = 0``). After softmax the pair is fused
    (:mod:`scratchnet.fused`): the loss comes from the logits and ``dL/dz = (p − y')/N``."""

    name = "cross_entropy"
    formula = "L = −Σ y log p / N;  ∂L/∂p = −y/(pN);  fused with softmax: ∂L/∂z = (p − y)/N"
    accepts = frozenset({"probability"})

    def value(self, output, target):
        with np.errstate(divide="ignore"):
            logp = np.log(output)
        return -np.sum(self._picked(logp, target)) / output.dtype.type(self.divisor(output))

    def gradient(self, output, target):
        y = self.smoothed(target, output.shape[1], output.dtype)
        with np.errstate(divide="ignore"):
            ratio = np.where(y != 0, y / np.where(y != 0, output, 1), 0)
        return ratio * (-1.0 / self.divisor(output))


class NLLLoss(_DistributionTargets):
    """Negative log-likelihood on log-probabilities ``ℓ = log p``: ``L = −Σ y' ℓ / N``;
    ``dL/dℓ = −y'/N``. Defined only after log-softmax."""

    name = "nll"
    formula = "L = −Σ y·logp / N;  ∂L/∂logp = −y/N"
    accepts = frozenset({"log_probability"})

    def value(self, output, target):
        return -np.sum(self._picked(output, target)) / output.dtype.type(self.divisor(output))

    def gradient(self, output, target):
        return self.smoothed(target, output.shape[1], output.dtype) * (-1.0 / self.divisor(output))


_LOG_CLAMP = -100.0  # torch clamps each log of binary_cross_entropy at −100
_BCE_EPS = 1e-12  # torch's lower bound on p(1 − p) in the BCE backward


class BCELoss(Loss):
    """Binary cross-entropy on probabilities, torch's form:
    ``ℓ = −[y·max(log p, −100) + (1 − y)·max(log(1 − p), −100)]`` and
    ``∂ℓ/∂p = (p − y) / max(p(1 − p), 1e-12)``, divided by ``n = N·C``. After sigmoid the pair
    is fused: ``ℓ = softplus(z) − y·z`` and ``∂ℓ/∂z = σ(z) − y``."""

    name = "binary_cross_entropy"
    formula = "ℓ = −[y log p + (1−y) log(1−p)];  ∂ℓ/∂p = (p−y)/(p(1−p));  fused: ∂ℓ/∂z = σ(z) − y"
    accepts = frozenset({"probability"})

    def _check_dense(self, y):
        if np.any((y < 0) | (y > 1)):
            bad = y[(y < 0) | (y > 1)][0]
            raise ValueError(f"y must lie in [0, 1] for binary_cross_entropy, got {float(bad)!r}")

    def value(self, output, target):
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(output), _LOG_CLAMP)
            log_q = np.maximum(np.log1p(-output), _LOG_CLAMP)
        per = (target - 1) * log_q - target * log_p
        return np.sum(per) / output.dtype.type(self.divisor(output))

    def gradient(self, output, target):
        denom = np.maximum((1 - output) * output, _BCE_EPS)
        return (output - target) / denom * (1.0 / self.divisor(output))
