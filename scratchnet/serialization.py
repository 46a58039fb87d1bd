"""Model files: the spec (JSON), the weights and a checksum in one ``.npz``, no pickle.

The archive holds ``__spec__`` (:meth:`ModelSpec.to_json`, a JSON string), ``__checksum__``
(SHA-256, hex) and one array per ``state_dict`` entry. The checksum covers the spec text and,
for every array in name order, its name, dtype, shape and bytes, so any change after saving is
detected, including one that keeps the zip's own CRCs valid.

:func:`read` verifies a file before anything is built from it and raises
:class:`~scratchnet.errors.ModelFileError` (a ``ValueError``) naming the path and the problem:
not a zip archive, truncated, a bad CRC, no spec or an invalid one, missing or unexpected
arrays, a wrong shape, a dtype other than the spec's (never silently rounded), a checksum
mismatch. Every ``.npy`` header is checked against the spec (names, shapes, dtypes) and the
declared sizes against the file's before any array is read. A file without a checksum (saved
before checksums existed, or with it removed) is refused unless the caller passes
``trust_missing_checksum=True``; it then loads with a :class:`UserWarning` — save it again to add
one. A path that exists but is not an ``.npz`` name (``single.npy``) is named as not a model file.

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
    if not (isinstance(getattr(network, "spec", None), ModelSpec) and callable(getattr(network, "state_dict", None))):
        raise TypeError(f"network must be a scratchnet Network (a .spec ModelSpec and a .state_dict()), "
                        f"got {type(network).__name__}")
    path = model_path(path)
    spec_json = network.spec.to_json()
    state = network.state_dict()
    reserved = {_SPEC_KEY, _CHECKSUM_KEY} & set(state)
    if reserved:
        raise ValueError(f"state dict names {sorted(reserved)} are reserved by the model file format")
    arrays = {_SPEC_KEY: np.array(spec_json), _CHECKSUM_KEY: np.array(checksum(spec_json, state)), **state}
    return atomic_write(path, lambda fh: np.savez(fh, **arrays))


#: Largest ``__spec__`` text and ``__checksum__`` text read (characters); a real spec is < 1 KB.
_MAX_TEXT_CHARS = {"__spec__": 1 << 20, "__checksum__": 256}
#: The arrays a file declares may hold at most this many times the file's own size (plus 1 MiB):
#: ``np.savez`` stores them uncompressed (×1) and ``savez_compressed`` shrinks trained float weights
#: by well under ×2, while a crafted archive of deflated zeros shrinks by ×1000 — refused unread.
_MAX_EXPANSION = 16


def read(path: str | os.PathLike, *, trust_missing_checksum: bool = False) -> tuple[ModelSpec, dict[str, np.ndarray]]:
    """The verified ``(spec, state dict)`` of the model file at ``path`` (see the module
    docstring for every check); ``FileNotFoundError`` if there is no such file.

    Every array's header (dtype, shape) is checked against the spec, and the declared sizes
    against the file's, before any array is read: a crafted file is refused in milliseconds,
    never after allocating what it claims. A file without ``__checksum__`` is refused unless
    ``trust_missing_checksum`` (then it loads with a :class:`UserWarning`)."""
    given = path
    path = model_path(path)
    where = repr(str(path))
    if not path.is_file():
        if isinstance(given, (str, os.PathLike)) and Path(given).is_file() and Path(given) != path:
            raise ModelFileError(f"{str(given)!r} is not a model file: model files are .npz archives written by "
                                 f"Network.save (the name ends in .npz; {Path(given).suffix or 'this name'!s} does "
                                 f"not, so {where} was looked for and does not exist)")
        raise FileNotFoundError(f"no saved network at {where}")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] != b"PK" and head != b"\x93NUM":   # numpy would call garbage "pickled data"
        what = "it is empty" if not head else f"it starts with {head!r}, not the zip signature b'PK'"
        raise ModelFileError(f"{where} is not a model file (.npz archive): {what}")
    if head == b"\x93NUM":
        raise ModelFileError(f"{where} is not a model file: it holds one bare array, not an .npz archive")
    try:
        with zipfile.ZipFile(path) as archive:
            spec, spec_json, stored_sum, members = _verified_layout(archive, path, where)
            entries = {name: _read_member(archive, info) for name, info in members.items()}
    except ModelFileError:
        raise
    except _UNREADABLE as exc:
        raise ModelFileError(f"{where} is not a readable model file (truncated, corrupted or not an "
                             f".npz archive): {type(exc).__name__}: {exc}") from None
    for name, arr in entries.items():
        if not np.all(np.isfinite(arr)):
            raise ModelFileError(f"{where}: array {name!r} holds NaN or infinity")
    if stored_sum is None:
        if not trust_missing_checksum:
            raise ModelFileError(f"{where} has no {_CHECKSUM_KEY!r}: its integrity cannot be checked (saved by an "
                                 "older scratchnet, or edited after saving with the checksum removed); pass "
                                 "trust_missing_checksum=True if you trust where it came from, then save it again")
        warnings.warn(f"{where} has no {_CHECKSUM_KEY!r} (saved by an older scratchnet): loaded "
                      "without an integrity check, as asked (trust_missing_checksum=True); save it again to add one",
                      UserWarning, stacklevel=3)
    else:
        actual = checksum(spec_json, entries)
        if stored_sum != actual:
            raise ModelFileError(f"{where} fails its checksum: the spec or the weights changed after "
                                 f"saving (stored sha256 {stored_sum[:16]}…, computed {actual[:16]}…)")
    return spec, {name: entries[name] for name in spec.state_shapes()}


def _header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, data offset)`` of one ``.npy`` member, from its header alone."""
    with archive.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if reader is None:
            raise ValueError(f"member {info.filename!r}: unsupported .npy format version {version}")
        shape, _, dtype = reader(fh)
        return tuple(shape), dtype, fh.tell()


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with archive.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def _verified_layout(archive: zipfile.ZipFile, path: Path, where: str
                     ) -> tuple[ModelSpec, str, str | None, dict[str, zipfile.ZipInfo]]:
    """Spec, spec text, stored checksum and the parameter members, every header checked against the
    spec and every declared size against the file's before any parameter array is read."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        members[name] = info
    headers = {name: _header(archive, info) for name, info in members.items()}
    for name, (shape, dtype, offset) in headers.items():
        if dtype.hasobject:
            raise ModelFileError(f"{where}: array {name!r} holds Python objects (pickled data): refused")
        # Python ints (dtype=object): exact for any declared shape, where int64 would overflow
        if members[name].file_size != offset + int(np.prod(shape, dtype=object)) * dtype.itemsize:
            raise ModelFileError(f"{where}: array {name!r} declares {shape} {dtype} but its member holds "
                                 f"{members[name].file_size} bytes: truncated or padded")
    if _SPEC_KEY not in members:
        raise ModelFileError(f"{where} is not a scratchnet model: it has no {_SPEC_KEY!r} entry")
    texts = {}
    for key in (_SPEC_KEY, _CHECKSUM_KEY):
        if key not in headers:
            continue
        shape, dtype, _ = headers.pop(key)
        if shape != () or dtype.kind != "U" or dtype.itemsize // 4 > _MAX_TEXT_CHARS[key]:
            raise ModelFileError(f"{where}: {key!r} must be a text scalar, got dtype {dtype} shape {shape}")
        texts[key] = _text(_read_member(archive, members.pop(key)), key, where)
    spec_json = texts[_SPEC_KEY]
    try:
        spec = ModelSpec.from_json(spec_json)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{where} has an invalid spec: {exc}") from None
    _check_arrays(spec, {name: (shape, dtype) for name, (shape, dtype, _) in headers.items()}, where)
    declared = sum(info.file_size for info in members.values())
    budget = _MAX_EXPANSION * path.stat().st_size + (1 << 20)
    if declared > budget:
        raise ModelFileError(f"{where} declares {declared:,} bytes of arrays in a {path.stat().st_size:,}-byte "
                             f"file (more than ×{_MAX_EXPANSION} compression): refused unread")
    return spec, spec_json, texts.get(_CHECKSUM_KEY), members


def _text(entry: np.ndarray, key: str, where: str) -> str:
    if entry.shape != () or entry.dtype.kind != "U":
        raise ModelFileError(f"{where}: {key!r} must be a text scalar, got dtype {entry.dtype} "
                             f"shape {entry.shape}")
    return str(entry)


def _check_arrays(spec: ModelSpec, headers: Mapping[str, tuple[tuple[int, ...], np.dtype]], where: str) -> None:
    """Names, shapes and dtypes (from the ``.npy`` headers) must be exactly the spec's."""
    expected = spec.state_shapes()
    missing = [name for name in expected if name not in headers]
    extra = sorted(set(headers) - set(expected))
    if missing or extra:
        raise ModelFileError(f"{where} does not match its spec {spec.describe()}: "
                             f"missing arrays {missing}, unexpected arrays {extra}")
    for name, shape in expected.items():
        found_shape, dtype = headers[name]
        if found_shape != shape:
            raise ModelFileError(f"{where}: array {name!r} has shape {found_shape}, but the spec "
                                 f"{spec.describe()} needs {shape}")
        if dtype != np.dtype(spec.dtype):
            raise ModelFileError(f"{where}: array {name!r} has dtype {dtype}, but the spec says "
                                 f"{spec.dtype} (refused rather than converted)")
