"""Weight initialisers, drawn from a seeded ``numpy.random.Generator`` in the model's dtype.

Each initialiser fills ``weight`` ``(fan_out, fan_in)`` and ``bias`` ``(fan_out,)`` and takes
``dtype``: float64 draws use ``Generator.uniform``/``normal``; float32 draws come straight from
``Generator.random``/``standard_normal(dtype=float32)`` (no float64 draw rounded afterwards).
Either way the same seed gives the same bits; float32 and float64 networks of one seed are
different draws.

==================  ====================================================  ====================
name                weight                                                bias
==================  ====================================================  ====================
torch_default       U(−1/√fan_in, 1/√fan_in)  (kaiming-uniform, a=√5)      U(−1/√fan_in, 1/√fan_in)
xavier_uniform      U(−√(6/(fan_in+fan_out)), +√(6/(fan_in+fan_out)))     0
xavier_normal       N(0, 2/(fan_in+fan_out))                              0
kaiming_normal      N(0, 2/fan_in)                                        0
normal              N(0, std²)   (Nielsen's book: std = 1)                N(0, std²)
zeros               0                                                     0
==================  ====================================================  ====================
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ._checks import check_real

__all__ = ["INITIALIZERS", "Initializer"]

Initializer = Callable[..., tuple[np.ndarray, np.ndarray]]
F64 = np.dtype(np.float64)


def _uniform(rng: np.random.Generator, bound: float, shape, dtype) -> np.ndarray:
    """``U(−bound, bound)`` of ``shape`` in ``dtype`` (float64: ``Generator.uniform`` itself)."""
    if np.dtype(dtype) == F64:
        return rng.uniform(-bound, bound, shape)
    t = np.dtype(dtype).type
    return t(-bound) + t(2 * bound) * rng.random(shape, dtype=dtype)


def _normal(rng: np.random.Generator, std: float, shape, dtype) -> np.ndarray:
    """``N(0, std²)`` of ``shape`` in ``dtype`` (float64: ``Generator.normal`` itself)."""
    if np.dtype(dtype) == F64:
        return rng.normal(0.0, std, shape)
    return rng.standard_normal(shape, dtype=dtype) * np.dtype(dtype).type(std)


def torch_default(rng: np.random.Generator, fan_in: int, fan_out: int, *, dtype=F64):
    bound = 1.0 / math.sqrt(fan_in)
    return _uniform(rng, bound, (fan_out, fan_in), dtype), _uniform(rng, bound, fan_out, dtype)


def xavier_uniform(rng, fan_in, fan_out, *, dtype=F64):
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return _uniform(rng, bound, (fan_out, fan_in), dtype), np.zeros(fan_out, dtype)


def xavier_normal(rng, fan_in, fan_out, *, dtype=F64):
    return _normal(rng, math.sqrt(2.0 / (fan_in + fan_out)), (fan_out, fan_in), dtype), np.zeros(fan_out, dtype)


def kaiming_normal(rng, fan_in, fan_out, *, dtype=F64):
    return _normal(rng, math.sqrt(2.0 / fan_in), (fan_out, fan_in), dtype), np.zeros(fan_out, dtype)


def normal(rng, fan_in, fan_out, *, dtype=F64, std: float = 1.0):
    std = check_real(std, "std", low=0.0, low_open=True)
    return _normal(rng, std, (fan_out, fan_in), dtype), _normal(rng, std, fan_out, dtype)


def zeros(rng, fan_in, fan_out, *, dtype=F64):
    return np.zeros((fan_out, fan_in), dtype), np.zeros(fan_out, dtype)


#: name -> function(rng, fan_in, fan_out, *, dtype=float64, **params) -> (weight, bias) in dtype
INITIALIZERS: dict[str, Initializer] = {
    f.__name__: f for f in (torch_default, xavier_uniform, xavier_normal, kaiming_normal, normal, zeros)
}
