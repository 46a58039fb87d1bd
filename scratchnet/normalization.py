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

Computed as torch's CPU kernel arranges it: the output as ``y = x·α + (β − μ·α)`` with
``α = γ/σ`` (two passes over the batch); ``x̂`` is never formed (the backward pass uses
``x − μ`` and ``1/σ``); and ``∂L/∂x`` as ``dy·α − x̂·(α/N)·Σ(dy·x̂) − (α/N)·Σdy`` (the compact
form above, distributed). Sums over the
batch are matrix–vector products with a vector of ones (BLAS, in the layer's dtype: 5× faster
than ``sum(axis=0, dtype=float64)`` on a 128 × 384 float32 batch), and the per-feature arithmetic
(statistics, ``α``, the running averages) stays in the layer's dtype, in place: at these widths
each NumPy call costs more than its arithmetic (``python -m benchmarks.step --layers``).
Parameter names follow torch: ``weight`` (γ), ``bias`` (β) and the buffers ``running_mean``,
``running_var`` (torch's ``num_batches_tracked`` only counts, and with a fixed momentum changes
nothing: it is not kept).
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
        self._xhat = self._y = np.empty((0, 0), dt)
        self._dx: np.ndarray | None = None
        self._inv_std: np.ndarray | None = None   # 1/σ of the last forward pass, per feature
        self._trained = True                      # whether the last forward pass used batch statistics

    @property
    def params(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "eps": self.eps}

    @property
    def features(self) -> int:
        return self.weight.shape[0]

    def _work_arrays(self, rows: int) -> None:
        """Two ``(rows, features)`` arrays: ``x − μ`` (``x̂`` once backward needs it) and the output
        ``y``, which :meth:`backward` reuses as scratch (the layer after has consumed it by then)."""
        shape, dt = (rows, self.features), self.weight.dtype
        self._xhat, self._y = np.empty(shape, dt), np.empty(shape, dt)     # _xhat holds x − μ
        self._dx = None
        self._ones = np.ones(rows, dt)
        self._rows = rows

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """``y = γ x̂ + β`` into the layer's work array (valid until its next forward or backward pass); in training
        mode also updates the running statistics."""
        n = x.shape[0]
        if n != self._rows:
            self._work_arrays(n)
        if np.may_share_memory(x, self._y):   # the layer's own last output fed back: it is overwritten below
            x = x.copy()
        dt = self.weight.dtype
        if training:
            if n < 2:
                raise ValueError(f"batch norm in training mode needs at least 2 rows per batch (the "
                                 f"unbiased variance of 1 row is undefined), got x of shape {x.shape}; "
                                 f"use eval() for single samples")
            mean = np.dot(self._ones, x)
            mean *= dt.type(1.0 / n)
            centred = np.subtract(x, mean, out=self._xhat)
            var = np.dot(self._ones, np.square(centred, out=self._y))
            var *= dt.type(1.0 / n)                                                # biased
            m = self.momentum
            self.running_mean *= dt.type(1 - m)
            self.running_mean += dt.type(m) * mean
            self.running_var *= dt.type(1 - m)
            self.running_var += dt.type(m * n / (n - 1)) * var                     # unbiased
        else:
            mean, var = self.running_mean, self.running_var
            np.subtract(x, mean, out=self._xhat)
        inv_std = var + dt.type(self.eps)
        np.sqrt(inv_std, out=inv_std)
        np.reciprocal(inv_std, out=inv_std)
        self._inv_std = inv_std
        self._alpha = alpha = self.weight * inv_std          # γ/σ
        self._trained = training
        y = np.multiply(x, alpha, out=self._y)
        y += self.bias - mean * alpha
        return y

    def backward(self, dy: np.ndarray, overwrite_dy: bool = False) -> np.ndarray:
        """Fill ``grad_weight`` (∂L/∂γ) and ``grad_bias`` (∂L/∂β) and return ``∂L/∂x`` for
        ``dy = ∂L/∂y`` of the last forward pass (its mode decides the formula): written into ``dy``
        with ``overwrite_dy=True`` (the network's own work array), else into a work array of the
        layer. Overwrites the forward output."""
        if self._inv_std is None or dy.shape != self._xhat.shape:
            raise ValueError(f"dy must have the shape {self._xhat.shape} of the last forward pass, got {dy.shape}")
        centred, tmp, alpha = self._xhat, self._y, self._alpha       # x − μ; x̂ = (x − μ)/σ is not formed
        if overwrite_dy:
            dx = dy
        else:
            if self._dx is None:
                self._dx = np.empty_like(self._xhat)
            dx = self._dx
        sum_dy = np.dot(self._ones, dy)
        sum_dy_xhat = np.dot(self._ones, np.multiply(dy, centred, out=tmp))
        sum_dy_xhat *= self._inv_std                                 # Σ dy·x̂ = (1/σ)·Σ dy·(x − μ)
        self.grad_bias[...] = sum_dy
        self.grad_weight[...] = sum_dy_xhat
        np.multiply(dy, alpha, out=dx)                       # dy·γ/σ
        if not self._trained:
            return dx
        alpha_n = alpha * dy.dtype.type(1.0 / dy.shape[0])
        dx -= np.multiply(centred, sum_dy_xhat * self._inv_std * alpha_n, out=tmp)   # x̂·(α/N)·Σ dy·x̂
        dx -= sum_dy * alpha_n
        return dx
