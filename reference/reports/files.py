"""Report files on disk: atomic writes and CSV tables that carry their own metadata header.

Every file is written to a temporary file in the destination folder and moved into place
with :func:`os.replace`, so a reader (or the gate) sees either the old file or the new one,
never half of one, and an interrupted run leaves no ``*.tmp`` behind.

A report CSV starts with ``# key: value`` lines (the run's metadata and ``# rows: N``), then
an ordinary CSV with floats written as ``%.17g`` — the shortest format that gives back every
float64 bit for bit. :func:`read_csv` checks the row count, so a truncated file is an error,
not a smaller table::

    # table: matrix
    # scratchnet: 0.1.0
    # rows: 2330
    kind,impl,hidden,...
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["CorruptFileError", "atomic_write_bytes", "atomic_write_text", "write_csv", "read_csv",
           "replace_directory", "FLOAT_FORMAT", "COLUMN_TYPES"]

FLOAT_FORMAT = "%.17g"

#: The type of every column any report table has; columns not listed are left to pandas.
COLUMN_TYPES: dict[str, str] = {
    **dict.fromkeys(("check", "param", "shape", "hidden", "output", "loss", "reduction", "flavour", "dtype",
                     "device", "sizes", "optimizer", "gd_mode", "impl", "status", "worst_index", "fd_verdict",
                     "note", "device_name", "versions", "kind", "row", "diagnosis"), "str"),
    **dict.fromkeys(("seed", "step", "first_break_step", "n_records", "n_failed", "n_unverified"), "int"),
    **dict.fromkeys(("max_abs_err", "max_rel_err", "tol_ratio", "atol", "rtol", "actual_value", "expected_value",
                     "param_distance", "cosine", "norm_ratio", "forward_ratio", "loss_ratio", "gradient_ratio",
                     "training_ratio", "worst_ratio", "loss_actual", "loss_expected", "abs_diff", "rel_diff"),
                    "float"),
    "passed": "bool",
}


class CorruptFileError(ValueError):
    """A report file that cannot be read back as what it claims to be (truncated, edited, garbage)."""


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None,
              table: str = "") -> Path:
    """``frame`` as CSV under a ``# key: value`` header (metadata, then ``# rows: N``), atomically."""
    header = [f"# table: {table or Path(path).stem}"]
    header += [f"# {_one_line(k)}: {_one_line(v)}" for k, v in (metadata or {}).items() if k not in ("table", "rows")]
    header.append(f"# rows: {len(frame)}")
    body = frame.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n")
    return atomic_write_text(path, "\n".join(header) + "\n" + body)


def _split_header(text: str, path: Path) -> tuple[dict[str, str], str]:
    meta: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines) and lines[i].startswith("#"):
        key, sep, value = lines[i][1:].partition(":")
        if not sep:
            raise CorruptFileError(f"{path}: header line {i + 1} is not '# key: value': {lines[i][:80]!r}")
        meta[key.strip()] = value.strip()
        i += 1
    return meta, "\n".join(lines[i:])


def read_csv(path: str | os.PathLike[str], required: tuple[str, ...] = (),
             types: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """A report CSV and its metadata header; the numbers come back exactly as written.

    Raises ``FileNotFoundError`` when missing and :class:`CorruptFileError` when the file is not
    UTF-8 text, does not parse, lacks a ``required`` column, has a value of the wrong type, or
    has fewer or more rows than its ``# rows:`` header says (a truncated copy). ``types``
    (``{column: "str"|"int"|"float"|"bool"}``) adds to :data:`COLUMN_TYPES`."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CorruptFileError(f"{path}: not a UTF-8 text file (binary or corrupt)") from None
    if not text.strip():
        raise CorruptFileError(f"{path}: the file is empty")
    meta, body = _split_header(text, path)
    if not body.strip():
        raise CorruptFileError(f"{path}: no CSV header line after the metadata (truncated?)")
    columns = pd.read_csv(io.StringIO(body), nrows=0).columns
    known = {**COLUMN_TYPES, **(types or {})}
    types = {c: known[c] for c in columns if c in known}
    dtype = {c: {"str": str, "int": "int64", "float": "float64", "bool": bool}[t] for c, t in types.items()}
    na_values = {c: ["", "nan", "NaN"] for c, t in types.items() if t == "float"}
    # pandas 3 parses floats exactly by default; pandas 2 needs round_trip for every bit
    exact = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
    try:
        frame = pd.read_csv(io.StringIO(body), dtype=dtype, keep_default_na=False, na_values=na_values, **exact)
    except (ValueError, TypeError, pd.errors.ParserError) as exc:
        raise CorruptFileError(f"{path}: does not parse as a report table: {_one_line(exc)[:200]}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise CorruptFileError(f"{path}: missing column(s) {missing}; found {list(frame.columns)[:12]}")
    if "rows" in meta:
        try:
            expected_rows = int(meta["rows"])
        except ValueError:
            raise CorruptFileError(f"{path}: header '# rows: {meta['rows']}' is not a number") from None
        if expected_rows != len(frame):
            raise CorruptFileError(f"{path}: header says {expected_rows} rows but the file has {len(frame)} "
                                   "(truncated or edited by hand)")
    return frame, meta


def replace_directory(source: Path, target: Path) -> None:
    """Move the finished folder ``source`` to ``target``, replacing what was there.

    ``source`` must be a sibling of ``target`` (same file system). The old ``target`` is
    renamed aside first and deleted only after the new one is in place, so an interruption
    leaves either the old folder or the new one at ``target`` (and at worst a ``.old`` folder)."""
    source, target = Path(source), Path(target)
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
        os.replace(target, old / target.name)
    try:
        os.replace(source, target)
    except BaseException:
        if old is not None:
            os.replace(old / target.name, target)
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
