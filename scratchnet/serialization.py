"""Model files: the spec (JSON), the weights and a checksum in one ``.npz``, no pickle.

The archive holds ``__spec__`` (:meth:`ModelSpec.to_json`, a JSON string), ``__checksum__``
(SHA-256, hex) and one array per ``state_dict`` entry. The checksum covers the spec text and,
for every array in name order, its name, dtype, shape and bytes, so any change after saving is
detected, including one that keeps the zip's own CRCs valid.

:func:`read` verifies a file before anything is built from it and raises
:class:`~scratchnet.errors.ModelFileError` (a ``ValueError``) naming the path and the problem:
not a zip archive, truncated, a bad CRC, no spec or an invalid one, missing or unexpected
arrays, a wrong shape, a dtype other than the spec's (never silently rounded), a checksum
mismatch. Files saved before checksums existed load with a :class:`UserWarning` saying so —
save them again to add one.

Paths: ``.npz`` is appended unless the name already ends in it (in any case: ``m.NPZ`` stays),
by :func:`save` and :func:`read` alike, so ``save(net, "m")`` and ``load("m")`` meet at ``m.npz``.
Files are written atomically (:mod:`scratchnet.atomic`) with the normal file mode.

This module works on a spec and a state dict; it does not import ``Network``
(``Network.save``/``Network.load`` and ``scratchnet.load`` build on it).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import numpy as np

from .atomic import atomic_write
from .errors import ModelFileError
from .spec import ModelSpec

__all__ = ["save", "read", "model_path", "checksum", "ModelFileError"]

_SPEC_KEY = "__spec__"
_CHECKSUM_KEY = "__checksum__"
#: What numpy and zipfile raise on a damaged archive: not a zip, truncated, a bad CRC, a
#: pickled member (refused by ``allow_pickle=False``), a broken deflate stream.
_UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError)


class Saveable(Protocol):
    """What :func:`save` needs: a spec and an ordered state dict (a ``Network`` has both)."""

    spec: ModelSpec

    def state_dict(self) -> dict[str, np.ndarray]:
        """``{name: array}`` in parameter order."""


def model_path(path: str | os.PathLike) -> Path:
    """``path`` with ``.npz`` appended unless it already ends in ``.npz`` (any case)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    return path if path.suffix.lower() == ".npz" else path.with_name(path.name + ".npz")


def checksum(spec_json: str, arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 (hex) of the spec text and of every array's name, dtype, shape and bytes, in name
    order."""
    digest = hashlib.sha256(spec_json.encode("utf-8"))
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        header = json.dumps([name, arr.dtype.str, list(arr.shape)])
        digest.update(len(header).to_bytes(8, "little") + header.encode("utf-8"))
        digest.update(arr.tobytes())
    return digest.hexdigest()


def save(network: Saveable, path: str | os.PathLike) -> Path:
    """Write ``network``'s spec, weights and checksum to ``path`` (see :func:`model_path`)
    atomically; returns the path written."""
    path = model_path(path)
    spec_json = network.spec.to_json()
    state = network.state_dict()
    reserved = {_SPEC_KEY, _CHECKSUM_KEY} & set(state)
    if reserved:
        raise ValueError(f"state dict names {sorted(reserved)} are reserved by the model file format")
    arrays = {_SPEC_KEY: np.array(spec_json), _CHECKSUM_KEY: np.array(checksum(spec_json, state)), **state}
    return atomic_write(path, lambda fh: np.savez(fh, **arrays))


def read(path: str | os.PathLike) -> tuple[ModelSpec, dict[str, np.ndarray]]:
    """The verified ``(spec, state dict)`` of the model file at ``path`` (see the module
    docstring for every check); ``FileNotFoundError`` if there is no such file."""
    path = model_path(path)
    where = repr(str(path))
    if not path.is_file():
        raise FileNotFoundError(f"no saved network at {where}")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] != b"PK" and head != b"\x93NUM":   # numpy would call garbage "pickled data"
        what = "it is empty" if not head else f"it starts with {head!r}, not the zip signature b'PK'"
        raise ModelFileError(f"{where} is not a model file (.npz archive): {what}")
    try:
        archive = np.load(path, allow_pickle=False)
        if isinstance(archive, np.lib.npyio.NpzFile):
            with archive:
                entries = {name: archive[name] for name in archive.files}
    except _UNREADABLE as exc:
        raise ModelFileError(f"{where} is not a readable model file (truncated, corrupted or not an "
                             f".npz archive): {type(exc).__name__}: {exc}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ModelFileError(f"{where} is not a model file: it holds one bare array, not an .npz archive")
    if _SPEC_KEY not in entries:
        raise ModelFileError(f"{where} is not a scratchnet model: it has no {_SPEC_KEY!r} entry")
    spec_json = _text(entries.pop(_SPEC_KEY), _SPEC_KEY, where)
    stored_sum = entries.pop(_CHECKSUM_KEY, None)
    try:
        spec = ModelSpec.from_json(spec_json)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{where} has an invalid spec: {exc}") from None
    _check_arrays(spec, entries, where)
    if stored_sum is None:
        warnings.warn(f"{where} has no {_CHECKSUM_KEY!r} (saved by an older scratchnet): loaded "
                      "without an integrity check; save it again to add one", UserWarning, stacklevel=3)
    else:
        stored, actual = _text(stored_sum, _CHECKSUM_KEY, where), checksum(spec_json, entries)
        if stored != actual:
            raise ModelFileError(f"{where} fails its checksum: the spec or the weights changed after "
                                 f"saving (stored sha256 {stored[:16]}…, computed {actual[:16]}…)")
    state = {name: entries[name] for name in spec.state_shapes()}
    return spec, state


def _text(entry: np.ndarray, key: str, where: str) -> str:
    if entry.shape != () or entry.dtype.kind != "U":
        raise ModelFileError(f"{where}: {key!r} must be a text scalar, got dtype {entry.dtype} "
                             f"shape {entry.shape}")
    return str(entry)


def _check_arrays(spec: ModelSpec, arrays: Mapping[str, np.ndarray], where: str) -> None:
    """Names, shapes and dtypes must be exactly the spec's (parameters and buffers)."""
    expected = spec.state_shapes()
    missing = [name for name in expected if name not in arrays]
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise ModelFileError(f"{where} does not match its spec {spec.describe()}: "
                             f"missing arrays {missing}, unexpected arrays {extra}")
    for name, shape in expected.items():
        arr = arrays[name]
        if arr.shape != shape:
            raise ModelFileError(f"{where}: array {name!r} has shape {arr.shape}, but the spec "
                                 f"{spec.describe()} needs {shape}")
        if arr.dtype != np.dtype(spec.dtype):
            raise ModelFileError(f"{where}: array {name!r} has dtype {arr.dtype}, but the spec says "
                                 f"{spec.dtype} (refused rather than converted)")
        if not np.all(np.isfinite(arr)):
            raise ModelFileError(f"{where}: array {name!r} holds NaN or infinity")
