"""``Dropout``: inverted dropout, as ``torch.nn.Dropout``.

In training mode each element is kept with probability ``1 − p`` and the kept ones are scaled
up, so that the expected output equals the input and evaluation needs no rescaling::

    v_ij uniform on {0, …, 65535}  (the network's seeded generator)     m_ij = [v_ij ≥ t],  t = round(65536·p)
    y = x ⊙ m / (1 − p)                                                  ∂L/∂x = ∂L/∂y ⊙ m / (1 − p)

so an element is dropped with probability ``t/65536``, within ``2⁻¹⁷ ≈ 7.6e-6`` of ``p`` (exactly
``p`` for multiples of 1/65536: 0.5, 0.25, 0.125, …). In evaluation mode dropout is the identity
(``y = x``, ``∂L/∂x = ∂L/∂y``).

The ``v`` are the 16-bit words (native byte order) of ``⌈N·features/4⌉`` raw 64-bit outputs of
the generator's bit generator (``rng.bit_generator.random_raw``), row by row — one draw per
training-mode forward pass, in layer order — from the generator the network hands the layer
(seeded by the spec, see :class:`scratchnet.Network`), so the same seed gives the same masks.
Four mask elements per 64 random bits: 33 µs for a 128 × 384 batch where
``rng.random(shape, float32) ≥ p`` takes 98 µs (one core, ``python -m benchmarks.step --layers``
needs the difference to keep the step with dropout within 20 % of the dense one). The twin in
``reference/`` replays the mask; it never draws one. ``m / (1 − p)`` is formed in
the layer's dtype as ``m · (1 / (1 − p))`` with the quotient rounded once; a reference that
multiplies by that same array reproduces the output bit for bit. :attr:`Dropout.mask` is the
mask of the last training-mode pass; :meth:`Dropout.replay` makes the following passes use a
given mask instead of drawing (what a finite-difference check needs).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._checks import check_real

__all__ = ["Dropout"]


class Dropout:
    """Inverted dropout with drop probability ``p`` (``0 ≤ p < 1``, default 0.5, torch's).

    Shape: input ``(N, features)``, output the same, in the layer's dtype.

    Example::

        >>> d = Dropout(4, np.float64, p=0.5, rng=np.random.default_rng(0))
        >>> y = d.forward(np.ones((2, 4)), training=True)
        >>> sorted(set(y.ravel().tolist())) == [0.0, 2.0] and np.array_equal(y != 0, d.mask)
        True
    """

    name = "dropout"
    container = "dropouts"
    buffers = ()

    def __init__(self, features: int, dtype: Any = np.float64, *, p: float = 0.5,
                 rng: np.random.Generator | None = None):
        self.p = check_real(p, "p", low=0.0, high=1.0, high_open=True)
        self.features = features
        self.dtype = np.dtype(dtype)
        self.rng = rng if rng is not None else np.random.default_rng(0)
        #: the kept elements of the last training-mode pass ((N, features) bool), None before one
        self.mask: np.ndarray | None = None
        self._replay: np.ndarray | None = None
        self._scaled = np.empty((0, 0), self.dtype)      # u, then m / (1 − p) of the last training pass
        self._y = np.empty((0, 0), self.dtype)
        self._keep = np.empty((0, 0), np.bool_)
        self._active = False
        self._scale = self.dtype.type(1.0) / self.dtype.type(1.0 - self.p)
        #: t of the module notes (at most 65535: p within 2⁻¹⁷ of 1 drops all but 1/65536)
        self.threshold = np.uint16(min(round(self.p * 65536), 65535))

    @property
    def params(self) -> dict[str, Any]:
        return {"p": self.p}

    @property
    def scale(self) -> np.generic:
        """``1 / (1 − p)`` rounded once to the layer's dtype."""
        return self._scale

    def replay(self, mask: np.ndarray | None) -> None:
        """Use ``mask`` (bool, ``(N, features)``) in every following training-mode pass instead of
        drawing one; ``None`` draws again."""
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != np.bool_ or mask.ndim != 2 or mask.shape[1] != self.features:
                raise ValueError(f"mask must be a bool array (N, {self.features}), got dtype {mask.dtype} "
                                 f"shape {mask.shape}")
            mask = mask.copy()
        self._replay = mask

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        """``x ⊙ m/(1 − p)`` in training mode (into the layer's work array), ``x`` itself otherwise."""
        self._active = training and self.p > 0
        if not self._active:
            return x
        if self._y.shape != x.shape:
            self._y = np.empty(x.shape, self.dtype)
            self._scaled = np.empty(x.shape, self.dtype)
            self._keep = np.empty(x.shape, np.bool_)
        if self._replay is not None:
            if self._replay.shape != x.shape:
                raise ValueError(f"the replayed dropout mask has shape {self._replay.shape}, but x has {x.shape}")
            mask = self._replay
        else:
            n = x.size
            words = self.rng.bit_generator.random_raw((n + 3) // 4).view(np.uint16)[:n].reshape(x.shape)
            mask = np.greater_equal(words, self.threshold, out=self._keep)
        self.mask = mask
        np.multiply(mask, self.scale, out=self._scaled)
        return np.multiply(x, self._scaled, out=self._y)

    def backward(self, dy: np.ndarray, overwrite_dy: bool = False) -> np.ndarray:
        """``∂L/∂y ⊙ m/(1 − p)`` of the last pass (``dy`` itself in evaluation mode);
        ``overwrite_dy=True`` writes it into ``dy``."""
        if not self._active:
            return dy
        if dy.shape != self._scaled.shape:
            raise ValueError(f"dy must have the shape {self._scaled.shape} of the last forward pass, got {dy.shape}")
        return np.multiply(dy, self._scaled, out=dy if overwrite_dy else None)
