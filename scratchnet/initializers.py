"""Weight initialisers, drawn from a seeded ``numpy.random.Generator``.

Each initialiser fills ``weight`` ``(fan_out, fan_in)`` and ``bias`` ``(fan_out,)``. Values are
drawn in float64 and rounded once to the model's dtype, so the same seed gives the same
network in float32 and float64 (up to that rounding).

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

__all__ = ["INITIALIZERS", "Initializer"]

Initializer = Callable[..., tuple[np.ndarray, np.ndarray]]


def torch_default(rng: np.random.Generator, fan_in: int, fan_out: int):
    bound = 1.0 / math.sqrt(fan_in)
    return (rng.uniform(-bound, bound, (fan_out, fan_in)), rng.uniform(-bound, bound, fan_out))


def xavier_uniform(rng, fan_in, fan_out):
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, (fan_out, fan_in)), np.zeros(fan_out)


def xavier_normal(rng, fan_in, fan_out):
    return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), (fan_out, fan_in)), np.zeros(fan_out)


def kaiming_normal(rng, fan_in, fan_out):
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), (fan_out, fan_in)), np.zeros(fan_out)


def normal(rng, fan_in, fan_out, std: float = 1.0):
    if not (isinstance(std, (int, float)) and std > 0 and math.isfinite(std)):
        raise ValueError(f"std must be a positive finite number, got {std!r}")
    return rng.normal(0.0, std, (fan_out, fan_in)), rng.normal(0.0, std, fan_out)


def zeros(rng, fan_in, fan_out):
    return np.zeros((fan_out, fan_in)), np.zeros(fan_out)


#: name -> function(rng, fan_in, fan_out, **params) -> (weight, bias) in float64
INITIALIZERS: dict[str, Initializer] = {
    f.__name__: f for f in (torch_default, xavier_uniform, xavier_normal, kaiming_normal, normal, zeros)
}
