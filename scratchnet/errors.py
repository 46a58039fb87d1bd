"""The exceptions and warnings scratchnet raises beyond Python's own.

They live in this bottom module so that every other module can raise them without importing
the module that happens to use them most (no import cycles).
"""

from __future__ import annotations

__all__ = ["NonFiniteWarning", "DivergenceWarning", "ModelFileError"]


class NonFiniteWarning(RuntimeWarning):
    """A loss or gradient came out NaN or infinite (divergence, or a non-fused pair pushed past
    its floating-point range)."""


class DivergenceWarning(NonFiniteWarning):
    """Training stopped because the loss became NaN or infinite."""


class ModelFileError(ValueError):
    """A saved model file is unreadable, corrupted or inconsistent; the message names the file
    and what is wrong with it."""
