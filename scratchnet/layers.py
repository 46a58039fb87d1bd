"""``Dense``: a fully connected layer followed by its activation.

Stored like ``torch.nn.Linear``: ``weight`` has shape ``(out_features, in_features)``,
``bias`` ``(out_features,)``. With inputs as rows ``x`` ``(N, in)``::

    z = x Wᵀ + b                 a = f(z)

and, given ``δ = ∂L/∂z`` ``(N, out)``, backward is::

    ∂L/∂W = δᵀ x   (out, in)     ∂L/∂b = Σ_rows δ   (out,)     ∂L/∂x = δ W   (N, in)

Gradients are written into preallocated buffers (``grad_weight``, ``grad_bias``), overwritten
by every backward pass, never accumulated. So are ``z``, ``a`` and ``∂L/∂x``: the layer keeps
one set of work arrays for the batch size it last saw (reallocated only when the batch size
changes), and the arrays :meth:`Dense.forward` and :meth:`Dense.backward_from_z` return are those
buffers — valid until the layer's next pass, like the caches ``x``, ``z`` and ``a``.

Memory layout. NumPy hands ``x Wᵀ`` to BLAS with a transposed right operand, which OpenBLAS's
sgemm runs 10–30 % slower than a plain row-major product (measured for the 784 × 256 layer at
batch 32–128, 1 and 2 threads; ``python -m benchmarks.profile``). A layer whose input gradient is
never needed (the network's first: the data needs none) therefore stores ``weight`` (and
``grad_weight``) column-major — the memory of ``Wᵀ`` row by row — so that both of its products
are plain: ``z = x·(Wᵀ)`` and ``∂L/∂Wᵀ = xᵀ·δ`` written straight into ``grad_weightᵀ``. Other
layers need ``δ W`` as well, and one of their two products has a transposed right operand
either way; they stay row-major. The layout is invisible otherwise: shapes, values and the
``(out, in)`` indexing are torch's.

Threads: scratchnet sets none. The products run on numpy's OpenBLAS with its own policy (all cores,
one thread for products below its size threshold); the elementwise work is NumPy's, one thread,
and with several BLAS threads it also pays for fetching the parts of each product's output that the
other cores wrote. Two threads still win on the 2-core machine of ``benchmarks/README.md`` (batch
128: 1281 against 1822 µs per step); pin a count with ``threadpoolctl.threadpool_limits(n, user_api="blas")``.
"""

from __future__ import annotations

import numpy as np

from .activations import Activation

__all__ = ["Dense"]


class Dense:
    """One layer ``a = f(x Wᵀ + b)``; caches ``x``, ``z`` and ``a`` of the last forward pass.

    ``input_grad=False`` declares that :meth:`backward` will never be asked for ``∂L/∂x`` (the
    first layer of a network): ``weight`` is then stored column-major (see the module notes)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, activation: Activation, *, input_grad: bool = True):
        if weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise ValueError(f"weight must be (out, in) and bias (out,), got {weight.shape} and {bias.shape}")
        self.weight = np.ascontiguousarray(weight) if input_grad else np.asfortranarray(weight)
        self.bias = np.ascontiguousarray(bias, dtype=weight.dtype)
        self.activation = activation
        self.grad_weight = np.zeros_like(self.weight)                  # same layout as weight
        self.grad_bias = np.zeros_like(self.bias)
        self.x = self.z = self.a = None
        self._rows = -1                     # the batch size the work arrays below are sized for
        self._z_buf = self._a_buf = self._dx_buf = np.empty((0, 0), self.weight.dtype)

    def _work_arrays(self, rows: int) -> None:
        """(Re)allocate ``z``, ``a`` ``(rows, out)`` and ``∂L/∂x`` ``(rows, in)`` for a batch size."""
        dtype = self.weight.dtype
        self._z_buf = np.empty((rows, self.out_features), dtype)
        self._a_buf = np.empty((rows, self.out_features), dtype)
        self._dx_buf = np.empty((rows, self.in_features), dtype)
        self._rows = rows

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """``z = x Wᵀ + b``, ``a = f(z)`` into the layer's work arrays; returns ``a``."""
        if x.dtype != self.weight.dtype:
            x = x.astype(self.weight.dtype)
        if x.shape[0] != self._rows:
            self._work_arrays(x.shape[0])
        z = np.dot(x, self.weight.T, out=self._z_buf)
        z += self.bias
        self.x, self.z = x, z
        self.a = self.activation.forward_into(z, self._a_buf)
        return self.a

    def weight_gradient_into(self, delta: np.ndarray) -> np.ndarray:
        """``grad_weight = δᵀ x`` (row-major weight) or ``grad_weightᵀ = xᵀ δ`` (column-major)."""
        if self.grad_weight.flags.c_contiguous:
            return np.dot(delta.T, self.x, out=self.grad_weight)
        return np.dot(self.x.T, delta, out=self.grad_weight.T).T

    def backward_from_z(self, delta: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Given ``δ = ∂L/∂z``, fill the parameter gradients and return ``∂L/∂x``."""
        self.weight_gradient_into(delta)
        # Σ over the batch accumulated in float64 and rounded once: numpy adds the rows of a
        # float32 array one after another (error ~N·ε), torch's vectorised sum is tighter.
        self.grad_bias[...] = delta.sum(axis=0, dtype=np.float64)
        return np.dot(delta, self.weight, out=self._dx_buf) if need_input_grad else None

    def backward(self, grad_a: np.ndarray, need_input_grad: bool = True,
                 overwrite_grad_a: bool = False) -> np.ndarray | None:
        """Given ``∂L/∂a``, apply the activation's VJP ``δ = f'ᵀ ∂L/∂a``, then
        :meth:`backward_from_z`. ``overwrite_grad_a=True`` lets the VJP reuse ``grad_a``'s memory
        (the network passes its own work array, which nobody reads afterwards)."""
        if overwrite_grad_a:
            delta = self.activation.backward_into(self.z, self.a, grad_a, out=grad_a)
        else:
            delta = self.activation.backward(self.z, self.a, grad_a)
        return self.backward_from_z(delta, need_input_grad)
