"""``BatchNorm1d``: batch normalisation of a dense layer's outputs, as ``torch.nn.BatchNorm1d``.

For a batch ``x`` ``(N, C)`` in training mode, per feature ``j``::

    μ_j  = (1/N) Σ_i x_ij                     σ²_j = (1/N) Σ_i (x_ij − μ_j)²   (biased)
    x̂_ij = (x_ij − μ_j) / √(σ²_j + ε)         y_ij = γ_j x̂_ij + β_j

and the running statistics, with torch's momentum convention (``m`` weighs the *new* batch) and
the *unbiased* variance (the batch is normalised with the biased one)::

    running_mean ← (1 − m)·running_mean + m·μ
    running_var  ← (1 − m)·running_var  + m·σ²·N/(N − 1)

In evaluation mode the running statistics replace the batch's:
``y = γ (x − running_mean)/√(running_var + ε) + β``, and nothing is updated.

Backward, given ``dy = ∂L/∂y`` (training mode; ``σ = √(σ² + ε)``)::

    ∂L/∂γ = Σ_i dy_i · x̂_i          ∂L/∂β = Σ_i dy_i
    ∂L/∂x = (γ/σ)/N · (N·dy − Σ_i dy_i − x̂·Σ_i(dy_i·x̂_i))

the compact form of the chain rule through μ and σ² (both depend on every row of ``x``). In
evaluation mode μ and σ are constants: ``∂L/∂x = dy·γ/√(running_var + ε)``.

Sums over the batch are accumulated in float64 and rounded once, as torch's CPU kernel does
(its accumulation type for float32 is double). Parameter names follow torch: ``weight`` (γ),
``bias`` (β) and the buffers ``running_mean``, ``running_var`` (torch's ``num_batches_tracked``
only counts, and with a fixed momentum changes nothing: it is not kept).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._checks import check_real

__all__ = ["BatchNorm1d"]

F64 = np.float64


class BatchNorm1d:
    """Batch normalisation over the rows of ``(N, features)`` inputs, affine (γ, β).

    ``momentum`` (torch's: the weight of the new batch, default 0.1) and ``eps`` (added to the
    variance inside the square root, default 1e-5). Training mode needs ``N ≥ 2`` (the unbiased
    variance of one row is undefined), as torch does.

    Shape: input ``(N, features)``, output the same, in the layer's dtype.

    Example::

        >>> bn = BatchNorm1d(3, np.float64)
        >>> y = bn.forward(np.arange(12.0).reshape(4, 3), training=True)
        >>> np.allclose(y.mean(axis=0), 0) and np.allclose(bn.running_mean, [0.45, 0.55, 0.65])
        True
    """

    name = "batch_norm"
    #: the torch container attribute the twin and ``state_dict`` name these layers under
    container = "batch_norms"
    buffers = ("running_mean", "running_var")

    def __init__(self, features: int, dtype: Any = F64, *, momentum: float = 0.1, eps: float = 1e-5):
        self.momentum = check_real(momentum, "momentum", low=0.0, high=1.0)
        self.eps = check_real(eps, "eps", low=0.0, low_open=True)
        dt = np.dtype(dtype)
        self.weight = np.ones(features, dt)
        self.bias = np.zeros(features, dt)
        self.grad_weight = np.zeros_like(self.weight)
        self.grad_bias = np.zeros_like(self.bias)
        self.running_mean = np.zeros(features, dt)
        self.running_var = np.ones(features, dt)
        self._rows = -1
        self._xhat = self._y = self._tmp = self._dx = np.empty((0, 0), dt)
        self._inv_std: np.ndarray | None = None   # 1/σ of the last forward pass, per feature
        self._trained = True                      # whether the last forward pass used batch statistics

    @property
    def params(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "eps": self.eps}

    @property
    def features(self) -> int:
        return self.weight.shape[0]

    def _work_arrays(self, rows: int) -> None:
        shape, dt = (rows, self.features), self.weight.dtype
        self._xhat, self._y, self._tmp, self._dx = (np.empty(shape, dt) for _ in range(4))
        self._rows = rows

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """``y = γ x̂ + β`` into the layer's work array (valid until its next pass); in training
        mode also updates the running statistics."""
        n = x.shape[0]
        if n != self._rows:
            self._work_arrays(n)
        dt = self.weight.dtype
        xhat = self._xhat
        if training:
            if n < 2:
                raise ValueError(f"batch norm in training mode needs at least 2 rows per batch (the "
                                 f"unbiased variance of 1 row is undefined), got x of shape {x.shape}; "
                                 f"use eval() for single samples")
            mean = x.sum(axis=0, dtype=F64) / n
            np.subtract(x, mean.astype(dt), out=xhat)
            var = np.square(xhat, out=self._tmp).sum(axis=0, dtype=F64) / n       # biased
            inv_std = 1.0 / np.sqrt(var + self.eps)
            m = self.momentum
            self.running_mean[...] = (1 - m) * self.running_mean + m * mean
            self.running_var[...] = (1 - m) * self.running_var + m * var * (n / (n - 1))
        else:
            np.subtract(x, self.running_mean, out=xhat)
            inv_std = 1.0 / np.sqrt(self.running_var.astype(F64) + self.eps)
        self._inv_std = inv_std.astype(dt)
        self._trained = training
        xhat *= self._inv_std
        y = np.multiply(xhat, self.weight, out=self._y)
        y += self.bias
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Fill ``grad_weight`` (∂L/∂γ) and ``grad_bias`` (∂L/∂β) and return ``∂L/∂x`` (the layer's
        work array) for ``dy = ∂L/∂y`` of the last forward pass (its mode decides the formula)."""
        if self._inv_std is None or dy.shape != self._xhat.shape:
            raise ValueError(f"dy must have the shape {self._xhat.shape} of the last forward pass, got {dy.shape}")
        dt = self.weight.dtype
        xhat, tmp, dx = self._xhat, self._tmp, self._dx
        self.grad_bias[...] = sum_dy = dy.sum(axis=0, dtype=F64)
        self.grad_weight[...] = sum_dy_xhat = np.multiply(dy, xhat, out=tmp).sum(axis=0, dtype=F64)
        scale = self.weight * self._inv_std                 # γ/σ
        if not self._trained:
            return np.multiply(dy, scale, out=dx)
        n = dy.shape[0]
        np.multiply(xhat, sum_dy_xhat.astype(dt), out=tmp)  # x̂·Σ(dy·x̂)
        np.multiply(dy, dt.type(n), out=dx)                 # N·dy
        dx -= sum_dy.astype(dt)
        dx -= tmp
        dx *= scale / dt.type(n)
        return dx
