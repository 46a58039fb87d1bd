"""Activation functions with hand-written backward passes.

Every activation maps pre-activations ``z`` of shape ``(batch, units)`` to ``a = f(z)`` of the
same shape and dtype. ``backward(z, a, grad)`` returns the vector-Jacobian product
``grad_z = J_f(z)^T grad`` — for elementwise functions ``grad * f'(z)``; for softmax and
log-softmax the row-wise product, computed without ever forming the C x C Jacobian.

At kinks the subgradient is PyTorch's (e.g. ``relu'(0) = 0``, ``leaky_relu'(0) = slope``,
``elu'(0) = alpha``). All functions are stable for ``|z|`` up to 1e4 in float32 and float64:
no overflow warnings, no NaN, and no infinity where the true value is finite.

The training hot path (:class:`scratchnet.layers.Dense`) calls ``forward_into(z, out)`` and
``backward_into(z, a, grad, out)`` instead: the same numbers, bit for bit, written into
preallocated arrays. identity, sigmoid, tanh, relu and softmax implement them with in-place
ufuncs; every other activation (and any subclass that redefines ``forward`` or ``backward``)
falls back to the allocating ``forward``/``backward``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ._checks import check_real
from .special import erfc

__all__ = [
    "Activation", "Identity", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "Softplus",
    "GELU", "SiLU", "Softmax", "LogSoftmax", "sigmoid", "softplus", "row_max",
]


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function ``σ(z) = 1 / (1 + exp(-z))``, computed from ``exp(-|z|)`` so that it
    never overflows: ``σ(z) = 1/(1+e)`` for ``z >= 0`` and ``e/(1+e)`` for ``z < 0``."""
    z = np.asarray(z)
    if z.dtype.kind != "f":
        z = z.astype(np.float64)
    return _sigmoid_into(z, np.empty_like(z), np.empty_like(z), np.empty(z.shape, dtype=bool))


def _sigmoid_into(z: np.ndarray, out: np.ndarray, denom: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """:func:`sigmoid` into ``out``, with ``denom`` (like ``z``) and ``mask`` (bool) as scratch.

    The numerator is ``max(e, [z >= 0])``: 1 where ``z >= 0`` (as ``e <= 1``), ``e`` elsewhere
    (as ``e >= 0``), NaN where ``z`` is NaN — the value ``np.where(z >= 0, 1, e)`` picks, without
    ``np.where``'s branchy loop (20× slower on random signs)."""
    e = np.exp(np.negative(np.abs(z, out=out), out=out), out=out)      # e = exp(−|z|) in (0, 1]
    np.add(e, 1, out=denom)                                             # 1 + e
    np.maximum(e, np.greater_equal(z, 0, out=mask), out=out)            # 1 if z >= 0 else e
    return np.divide(out, denom, out=out)


def softplus(z: np.ndarray) -> np.ndarray:
    """``log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|))``, finite for every finite ``z``."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def row_max(z: np.ndarray) -> np.ndarray:
    """``m_i = max_j z_ij`` as an ``(N, 1)`` column (the shift of softmax and log-sum-exp).

    A maximum is exact whatever the order, so for short rows (a few classes) it is taken down
    the columns of ``zᵀ`` — one vectorised pass — rather than by NumPy's per-row reduction loop,
    which is ~10× slower for 10 columns and 1024 rows. NaN propagates either way."""
    if z.ndim == 2 and z.shape[1] <= 32 and z.shape[0] >= 16:
        return np.maximum.reduce(np.ascontiguousarray(z.T), axis=0)[:, None]
    return z.max(axis=1, keepdims=True)


class Activation:
    """Base class. Subclasses set ``name``, ``formula`` and implement ``forward``/``backward``.

    Class attributes describe the function for the registry:

    * ``output_kind`` — ``"real"``, ``"probability"`` (values in [0, 1]) or
      ``"log_probability"`` (row-wise log of a distribution); losses declare which kinds they
      accept, and a model pairing a loss with an output it is undefined on is refused.
    * ``kinks`` — points where ``f`` is not differentiable (tests feed them exactly).
    * ``rowwise`` — True when each output depends on its whole row (softmax family).
    """

    name: ClassVar[str]
    formula: ClassVar[str]
    output_kind: ClassVar[str] = "real"
    rowwise: ClassVar[bool] = False

    @property
    def params(self) -> dict[str, Any]:
        """Hyper-parameters, as keyword arguments that rebuild this activation."""
        return {}

    @property
    def kinks(self) -> tuple[float, ...]:
        """Pre-activation values where ``f`` has a kink (empty if smooth)."""
        return ()

    def forward(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, z: np.ndarray, a: np.ndarray, grad: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- the training hot path ------------------------------------------------------------
    def forward_into(self, z: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``f(z)`` written into ``out`` (preallocated, the shape and dtype of ``z``) by the
        activations that have an in-place form; the others return :meth:`forward`'s new array.
        Returns the result either way."""
        return self.forward(z)

    def backward_into(self, z: np.ndarray, a: np.ndarray, grad: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The VJP of :meth:`backward` written into ``out`` (which may be ``grad`` itself) by the
        activations that have an in-place form; the others return :meth:`backward`'s new array."""
        return self.backward(z, a, grad)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A subclass that redefines forward (or backward) but not its in-place twin must not
        # inherit its parent's twin, which computes the parent's function: fall back to the
        # allocating default, so the hot path always computes what forward/backward say.
        if "forward" in cls.__dict__ and "forward_into" not in cls.__dict__:
            cls.forward_into = Activation.forward_into  # type: ignore[method-assign]
        if "backward" in cls.__dict__ and "backward_into" not in cls.__dict__:
            cls.backward_into = Activation.backward_into  # type: ignore[method-assign]

    def _scratch(self, key: str, like: np.ndarray, dtype: Any = None, fill: float | None = None) -> np.ndarray:
        """A work array shaped like ``like`` (of ``like``'s dtype unless ``dtype`` is given) kept
        between calls, reallocated only when the shape or dtype changes; ``fill`` initialises
        a new one."""
        buf = self.__dict__.get(key)
        dtype = like.dtype if dtype is None else dtype
        if buf is None or buf.shape != like.shape or buf.dtype != dtype:
            buf = np.empty(like.shape, dtype) if fill is None else np.full(like.shape, fill, dtype)
            self.__dict__[key] = buf
        return buf

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return self.forward(z)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.params == other.params  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), tuple(self.params.items())))


class Identity(Activation):
    """``f(z) = z``, ``f'(z) = 1``."""

    name = "identity"
    formula = "f(z) = z;  f'(z) = 1"

    def forward(self, z):
        return z.copy()

    def backward(self, z, a, grad):
        return grad

    def forward_into(self, z, out):
        np.copyto(out, z)
        return out

    def backward_into(self, z, a, grad, out):
        return grad


def _bell(z: np.ndarray, scale: float, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """``e/(1 + e)²`` with ``e = exp(−scale·|z|)`` into ``out`` (``tmp``: scratch like ``z``).

    ``σ'(z) = σ(z)σ(−z) = _bell(z, 1)`` and ``tanh'(z) = 1 − tanh²(z) = 4·_bell(z, 2)``, evaluated
    from ``z``: the textbook ``a(1 − a)`` and ``1 − a²`` subtract from 1 an output ``a`` already
    rounded near 1, keeping only ``ε/(1 − a)`` of relative precision (three digits of float32's
    seven at ``tanh(z) = 0.99995``). ``e ≤ 1``, so nothing overflows."""
    e = np.exp(np.multiply(np.abs(z, out=tmp), -scale, out=tmp), out=tmp)
    np.add(e, 1, out=out)
    np.multiply(out, out, out=out)
    return np.divide(e, out, out=out)


class Sigmoid(Activation):
    """Logistic sigmoid ``σ(z) = 1/(1+exp(-z))``, ``σ'(z) = σ(z)(1 − σ(z)) = e/(1+e)²`` with
    ``e = exp(−|z|)`` (computed from ``z``, see :func:`_bell`); range (0, 1)."""

    name = "sigmoid"
    formula = "σ(z) = 1/(1+exp(−z));  σ'(z) = σ(z)(1−σ(z))"
    output_kind = "probability"

    def forward(self, z):
        return sigmoid(z)

    def backward(self, z, a, grad):
        # Sigmoid's own twin, not self.backward_into: a subclass that redefines backward and
        # calls super().backward() gets the allocating backward_into, which would call back.
        return Sigmoid.backward_into(self, z, a, grad, np.empty_like(grad))

    def forward_into(self, z, out):
        return _sigmoid_into(z, out, self._scratch("_tmp", z), self._scratch("_mask", z, np.bool_))

    def backward_into(self, z, a, grad, out):
        slope = _bell(z, 1.0, self._scratch("_slope", z), self._scratch("_tmp", z))
        return np.multiply(grad, slope, out=out)


class Tanh(Activation):
    """``tanh(z)``, ``tanh'(z) = 1 − tanh(z)² = 4e/(1+e)²`` with ``e = exp(−2|z|)`` (computed from
    ``z``, see :func:`_bell`); range (−1, 1)."""

    name = "tanh"
    formula = "f(z) = tanh(z);  f'(z) = 1 − tanh(z)²"

    def forward(self, z):
        return np.tanh(z)

    def backward(self, z, a, grad):
        return Tanh.backward_into(self, z, a, grad, np.empty_like(grad))     # see Sigmoid.backward

    def forward_into(self, z, out):
        return np.tanh(z, out=out)

    def backward_into(self, z, a, grad, out):
        slope = _bell(z, 2.0, self._scratch("_slope", z), self._scratch("_tmp", z))
        slope *= 4
        return np.multiply(grad, slope, out=out)


_SAME_SIZE_INT = {2: np.dtype(np.int16), 4: np.dtype(np.int32), 8: np.dtype(np.int64)}


class ReLU(Activation):
    """``max(z, 0)``; ``f'(z) = 1`` for ``z > 0`` else 0 (torch: ``relu'(0) = 0``)."""

    name = "relu"
    formula = "f(z) = max(z, 0);  f'(z) = [z > 0]"

    @property
    def kinks(self):
        return (0.0,)

    def forward(self, z):
        return np.maximum(z, 0)

    def backward(self, z, a, grad):
        return np.where(z > 0, grad, 0).astype(grad.dtype, copy=False)

    def forward_into(self, z, out):
        # max against an array of zeros, not the scalar 0: NumPy's SIMD loop for maximum only
        # covers two array operands here (5× faster at 128 × 256); same values.
        return np.maximum(z, self._scratch("_zeros", z, fill=0), out=out)

    def backward_into(self, z, a, grad, out):
        """``grad`` where ``z > 0``, else +0 — bit for bit ``np.where(z > 0, grad, 0)`` (NaN and
        ±inf gradients of dead units included) — as ``grad`` AND a bit mask of all ones / all
        zeros: three SIMD passes instead of ``np.where``'s branchy loop (6× faster at 128 × 256,
        15× at 1024 × 256 on random signs)."""
        if grad.size < 2048:                  # small: np.where's fixed cost is the lower one
            return self.backward(z, a, grad)
        bits = _SAME_SIZE_INT[grad.dtype.itemsize]
        mask = np.greater(z, 0, out=self._scratch("_mask", z, bits), casting="unsafe")  # 1 / 0
        np.negative(mask, out=mask)                                                   # −1 = all ones
        np.bitwise_and(grad.view(bits), mask, out=out.view(bits))
        return out


class LeakyReLU(Activation):
    """``z`` for ``z > 0`` else ``negative_slope·z``; derivative 1 or ``negative_slope``
    (torch takes ``negative_slope`` at 0)."""

    name = "leaky_relu"
    formula = "f(z) = z if z > 0 else s·z;  f'(z) = 1 if z > 0 else s"

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = check_real(negative_slope, "negative_slope")

    @property
    def params(self):
        return {"negative_slope": self.negative_slope}

    @property
    def kinks(self):
        return (0.0,)

    def forward(self, z):
        return np.where(z > 0, z, z * self.negative_slope).astype(z.dtype, copy=False)

    def backward(self, z, a, grad):
        return np.where(z > 0, grad, grad * self.negative_slope).astype(grad.dtype, copy=False)


class ELU(Activation):
    """``z`` for ``z > 0`` else ``α(exp(z) − 1)``; derivative 1 or ``α·exp(z)`` (torch takes
    ``α`` at 0)."""

    name = "elu"
    formula = "f(z) = z if z > 0 else α(eᶻ−1);  f'(z) = 1 if z > 0 else α·eᶻ"

    def __init__(self, alpha: float = 1.0):
        self.alpha = check_real(alpha, "alpha", low=0.0)

    @property
    def params(self):
        return {"alpha": self.alpha}

    @property
    def kinks(self):
        return (0.0,)

    def forward(self, z):
        # z where z ≤ 0, else 0: keeps expm1() of large positive z from overflowing, and keeps −0.0 (torch's
        # α·expm1(−0.0) = −0.0; np.minimum(z, 0) would give +0.0 there)
        neg = np.where(z > 0, 0, z)
        return np.where(z > 0, z, self.alpha * np.expm1(neg)).astype(z.dtype, copy=False)

    def backward(self, z, a, grad):
        neg = np.minimum(z, 0)
        return np.where(z > 0, grad, grad * (self.alpha * np.exp(neg))).astype(grad.dtype, copy=False)


class Softplus(Activation):
    """``log(1 + exp(βz))/β``, linear (``z``) where ``βz > threshold``, as torch;
    derivative ``σ(βz)``, or 1 past the threshold."""

    name = "softplus"
    formula = "f(z) = log(1+exp(βz))/β  (z if βz > threshold);  f'(z) = σ(βz)"

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        self.beta = check_real(beta, "beta", low=0.0, low_open=True)
        self.threshold = check_real(threshold, "threshold")

    @property
    def params(self):
        return {"beta": self.beta, "threshold": self.threshold}

    @property
    def kinks(self):
        return (self.threshold / self.beta,)

    def forward(self, z):
        bz = z * self.beta
        return np.where(bz > self.threshold, z, softplus(bz) / self.beta).astype(z.dtype, copy=False)

    def backward(self, z, a, grad):
        bz = z * self.beta
        return np.where(bz > self.threshold, grad, grad * sigmoid(bz)).astype(grad.dtype, copy=False)


_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_KAPPA = 0.044715


class GELU(Activation):
    """Gaussian error linear unit, torch's ``approximate='none'|'tanh'``.

    * ``none``: ``f(z) = z·Φ(z)``, ``Φ(z) = ½(1 + erf(z/√2)) = ½·erfc(−z/√2)``;
      ``f'(z) = Φ(z) + z·φ(z)``.
    * ``tanh``: ``f(z) = ½z(1 + tanh(u)) = z·σ(2u)``, ``u = √(2/π)(z + 0.044715z³)``;
      ``f'(z) = σ(2u) + ½z(1 − tanh²u)·√(2/π)(1 + 3·0.044715z²)``.

    ``Φ`` through ``erfc`` and ``½(1 + tanh u)`` as ``σ(2u)`` avoid the cancellation of
    ``1 + erf`` and ``1 + tanh`` for negative ``z`` (torch's formulas, equal in exact arithmetic).
    """

    name = "gelu"
    formula = "f(z) = z·Φ(z);  f'(z) = Φ(z) + z·φ(z)   (tanh: ½z(1+tanh(√(2/π)(z+0.044715z³))))"

    def __init__(self, approximate: str = "none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    @property
    def params(self):
        return {"approximate": self.approximate}

    def _inner(self, z):
        return _SQRT_2_OVER_PI * (z + _KAPPA * z * z * z)

    def forward(self, z):
        if self.approximate == "tanh":
            return z * sigmoid(2 * self._inner(z))
        return z * (0.5 * erfc(z * -_SQRT1_2))

    def backward(self, z, a, grad):
        if self.approximate == "tanh":
            u = self._inner(z)
            sech2 = 4 * _bell(u, 2.0, np.empty_like(u), np.empty_like(u))
            slope = sigmoid(2 * u) + 0.5 * z * sech2 * _SQRT_2_OVER_PI * (1 + 3 * _KAPPA * z * z)
        else:
            cdf = 0.5 * erfc(z * -_SQRT1_2)
            slope = cdf + z * (np.exp(-0.5 * z * z) * _INV_SQRT_2PI)
        return grad * slope


class SiLU(Activation):
    """Sigmoid-weighted linear unit (swish): ``f(z) = z·σ(z)``,
    ``f'(z) = σ(z)(1 + z(1 − σ(z)))``, with ``1 − σ(z)`` evaluated as ``σ(−z)``."""

    name = "silu"
    formula = "f(z) = z·σ(z);  f'(z) = σ(z)(1 + z(1−σ(z)))"

    def forward(self, z):
        return z * sigmoid(z)

    def backward(self, z, a, grad):
        return grad * (sigmoid(z) * (1 + z * sigmoid(-z)))


class Softmax(Activation):
    """Row-wise ``s_i = exp(z_i − m) / Σ_j exp(z_j − m)`` with ``m = max_j z_j`` (so no
    ``exp`` overflows). Backward is the vector-Jacobian product
    ``grad_z = s ⊙ (g − Σ_j g_j s_j)`` per row — never the C x C Jacobian
    ``diag(s) − s sᵀ``, and never the elementwise ``s(1 − s)``, which drops the cross terms."""

    name = "softmax"
    formula = "s = exp(z−max z)/Σ exp(z−max z);  VJP: s ⊙ (g − ⟨g, s⟩)"
    output_kind = "probability"
    rowwise = True

    def forward(self, z):
        e = np.exp(z - row_max(z))
        e /= e.sum(axis=1, keepdims=True)
        return e

    def backward(self, z, a, grad):
        return a * (grad - (grad * a).sum(axis=1, keepdims=True))

    def forward_into(self, z, out):
        e = np.exp(np.subtract(z, row_max(z), out=out), out=out)
        e /= e.sum(axis=1, keepdims=True)
        return e


class LogSoftmax(Activation):
    """Row-wise ``log s_i = (z_i − m) − log Σ_j exp(z_j − m)``; backward
    ``grad_z = g − softmax(z) · Σ_j g_j``."""

    name = "log_softmax"
    formula = "log s = z − m − log Σ exp(z − m);  VJP: g − s·Σg"
    output_kind = "log_probability"
    rowwise = True

    def forward(self, z):
        shifted = z - row_max(z)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    def backward(self, z, a, grad):
        return grad - np.exp(a) * grad.sum(axis=1, keepdims=True)
