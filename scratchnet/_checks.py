"""Input validation shared by the public API: every error names the argument, what was
expected and what came."""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Real

import numpy as np

FLOAT_DTYPES = {"float32": np.float32, "float64": np.float64}


def as_dtype(dtype: object, *, name: str = "dtype") -> np.dtype:
    """Return the numpy float dtype for ``"float32"``/``"float64"`` (or the numpy types)."""
    key = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    if key not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be one of {sorted(FLOAT_DTYPES)}, got {dtype!r}")
    return np.dtype(FLOAT_DTYPES[key])


def check_real(value: object, name: str, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float:
    """Check a real hyper-parameter lies in an interval and return it as float."""
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    v = float(value)
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {v!r}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {v!r}")
    return v


def check_int(value: object, name: str, *, low: int | None = None) -> int:
    """Check an integer parameter (``bool`` is refused) and return it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return int(value)


def check_choice(value: object, name: str, choices: Iterable[str]) -> str:
    """Check a string names one of ``choices``; the error lists them."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(choices)}")
    return str(value)


def check_finite(array: np.ndarray, name: str) -> None:
    """Refuse NaN and infinity: they would silently poison every later number."""
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"{name} must be finite, got {array[tuple(bad)]!r} at index {tuple(bad.tolist())}")


def as_matrix(x: object, name: str, dtype: np.dtype, columns: int | None = None) -> np.ndarray:
    """Convert to a C-contiguous 2-D float array of ``dtype`` (rows = samples), checking shape
    and finiteness. Other float or integer dtypes are cast (float64 data meeting a float32
    model is rounded to float32, as ``torch.Tensor.to`` would)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (batch, features), got shape {arr.shape}")
    if columns is not None and arr.shape[1] != columns:
        raise ValueError(f"{name} has {arr.shape[1]} columns, but {columns} were expected "
                         f"(shape {arr.shape})")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must have at least one row, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    check_finite(arr, name)
    return arr
