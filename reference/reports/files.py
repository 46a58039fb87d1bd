"""Report files on disk: one atomic-write helper, plain CSV tables, and report folders that are
complete or refused.

**Atomic writes.** Every report file goes through :func:`atomic_write_bytes`: a temporary file in
the destination folder (``.NAME.XXXX.tmp``), ``fsync``, ``os.replace`` onto the real name, the normal
file mode (``0o666 & ~umask``, not ``mkstemp``'s 0600), and the temporary removed on any exception.
A reader sees the old file or the new one, never half of one.

**Tables** are plain CSV — ``pandas.read_csv(path)`` or a spreadsheet reads them as they are — with
floats written ``%.17g``, the shortest format that gives back every float64 bit for bit.

**A report folder** (:class:`ReportFolder`, what ``run`` writes) holds the tables, the rendered
pages and plots, ``metadata.json`` (the run's metadata: versions, devices, BLAS, date, git commit,
and its ``run_id``) and ``manifest.json``, written LAST::

    {"format": "scratchnet-report/1", "run_id": "20261203T041500Z-3f2a9c1d",
     "files": {"matrix.csv": {"bytes": 812345, "rows": 2374, "sha256": "..."}, "metadata.json": {...}, ...}}

Writing a folder (1) deletes ``manifest.json`` first — from then on the folder is refused —, (2)
deletes the files the old manifest listed that are still byte for byte what it lists (a file
someone put there or edited since is left alone) and the ``.*.tmp`` debris of an earlier killed write, (3)
writes each file atomically, (4) writes ``metadata.json`` and then ``manifest.json``. A run killed at
any moment before the manifest's rename leaves a folder without a manifest, which
:func:`verify_folder` (called by ``gate``, ``report`` and ``baseline`` before they read anything)
refuses; a folder that mixes files of two runs fails the hashes. During writing SIGTERM is turned
into an exception (:class:`Terminated`, exit status 143), so the temporary file being written is
removed; SIGINT already is one (``KeyboardInterrupt``). SIGKILL cannot be caught: its ``.*.tmp``
file stays until the next write into that folder deletes it, and nothing reads it meanwhile
(hidden name, not in any manifest).

:func:`replace_directory` swaps a finished folder in for another in one ``renameat2(RENAME_EXCHANGE)``
(Linux): the target never stops existing and never holds a mix.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as _dt
import errno
import hashlib
import io
import json
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd

from scratchnet.atomic import atomic_write, fsync_folder

from .escape import neutralise_frame, restore_frame
from .schema import COLUMN_TYPES, PANDAS_TYPES

__all__ = ["DiskFullError", "CorruptFileError", "IncompleteFolderError", "Terminated", "ReportFolder", "Manifest",
           "atomic_write_bytes", "atomic_write_text", "csv_bytes", "write_csv", "read_csv", "read_metadata",
           "verify_folder", "replace_directory", "staging_debris", "output_dir_problem", "new_run_id",
           "terminate_as_exception", "read_report_file", "MAX_FILE_BYTES", "FLOAT_FORMAT", "MANIFEST", "METADATA",
           "MANIFEST_FORMAT"]

FLOAT_FORMAT = "%.17g"
MANIFEST = "manifest.json"
METADATA = "metadata.json"
MANIFEST_FORMAT = "scratchnet-report/1"

class CorruptFileError(ValueError):
    """A report file that cannot be read back as what it claims to be (truncated, edited, garbage)."""


class IncompleteFolderError(CorruptFileError):
    """A report folder that is not a finished run: no manifest, or files missing or not matching it."""


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """The disk (or quota) filled up while a report file was written; the message names the folder."""


class Terminated(SystemExit):
    """SIGTERM while a report folder was being written (exit status 128 + 15)."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(128 + signum)


# --------------------------------------------------------------------------------------------
# One file
# --------------------------------------------------------------------------------------------

def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (creating its folder): :func:`scratchnet.atomic.atomic_write`
    — a temporary file in the same folder, ``fsync``, ``os.replace``, mode ``0o666 & ~umask``; the
    temporary file is removed on any exception. The one atomic writer of every report file."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, bytes(data))
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise DiskFullError(exc.errno, f"no space left to write {path.name} into {path.parent}/ "
                                f"({os.strerror(exc.errno)}): free some space or write the report elsewhere; "
                                "no file there was replaced by a half-written one", str(path.parent)) from None
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as a plain CSV (header line, no index, floats ``%.17g``, ``\\n`` line ends); text cells
    that a spreadsheet would run as a formula are neutralised (:mod:`.escape`; :func:`read_csv` restores them)."""
    # Written with "\r\n" so that the csv module quotes a cell holding a carriage return (with "\n" it
    # would not, and the reader would split the row there); then each row end goes back to "\n" —
    # a "\r\n" inside a quoted cell is the cell's own and stays.
    text = neutralise_frame(frame).to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\r\n")
    return _ROW_END.sub(lambda m: m.group(1) or "\n", text).encode("utf-8")


_ROW_END = re.compile(r'("(?:[^"]|"")*")|\r\n')


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())


def _metadata_bytes(metadata: Mapping[str, Any]) -> bytes:
    return (json.dumps({str(k): _one_line(v) for k, v in metadata.items()}, indent=1, ensure_ascii=False)
            + "\n").encode("utf-8")


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None,
              table: str = "") -> Path:
    """``frame`` as a plain CSV at ``path``, atomically; ``metadata`` (when given) into
    ``metadata.json`` beside it. For a folder of tables that belong together use :class:`ReportFolder`."""
    del table  # the file name says which table it is
    written = atomic_write_bytes(path, csv_bytes(frame))
    if metadata is not None:
        atomic_write_bytes(Path(path).parent / METADATA, _metadata_bytes(metadata))
    return written


# --------------------------------------------------------------------------------------------
# Reading and verifying
# --------------------------------------------------------------------------------------------

#: The largest report file read (bytes). ``records.csv`` is the largest file: 323 KB for the 848 records
#: of a ``--quick --dtype float64 --no-training`` run (~380 bytes a record), so ~10–15 MB for a full
#: run's ~30,000 (estimated, not measured); a cap ~40× above that still refuses a file that is not a
#: report long before memory runs out.
MAX_FILE_BYTES = 512 * 2**20


def read_report_file(path: str | os.PathLike[str], max_bytes: int | None = None) -> bytes:
    """The bytes of a file of a report folder, read only when it is a regular file inside its folder.

    Refused (:class:`CorruptFileError`): a path that resolves outside its folder (a symlink to
    elsewhere), anything but a regular file (a FIFO would block for ever, ``/dev/zero`` never ends),
    a file over ``max_bytes`` (default :data:`MAX_FILE_BYTES`). The file is opened non-blocking and
    checked on its descriptor, so it cannot be swapped between the check and the read.
    ``FileNotFoundError`` when there is none."""
    path = Path(path)
    limit = MAX_FILE_BYTES if max_bytes is None else max_bytes
    folder = path.parent.resolve()
    target = path.resolve()
    if target.parent != folder:
        raise CorruptFileError(f"{path} resolves to {target}, outside its folder {folder}: refused")
    fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CorruptFileError(f"{path} is not a regular file (a FIFO, device or socket): refused")
        if info.st_size > limit:
            raise CorruptFileError(f"{path} is {info.st_size:,} bytes, over the {limit:,}-byte limit of a report file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            raw = fh.read(limit + 1)
    finally:
        os.close(fd)
    if len(raw) > limit:
        raise CorruptFileError(f"{path} grew past the {limit:,}-byte limit of a report file while it was read")
    return raw


@dataclass(frozen=True)
class Manifest:
    """A parsed ``manifest.json``: the run id and, per file name, ``{"bytes", "sha256"[, "rows"]}``."""

    directory: Path
    run_id: str
    files: dict[str, dict[str, Any]]


def _read_manifest(directory: Path) -> Manifest | None:
    """The folder's manifest, ``None`` when it has none; :class:`CorruptFileError` when unreadable."""
    path = directory / MANIFEST
    try:
        raw = read_report_file(path)
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
        run_id, files = data["run_id"], data["files"]
        ok = (data.get("format") == MANIFEST_FORMAT and isinstance(run_id, str) and run_id and isinstance(files, dict)
              and all(isinstance(e, dict) and isinstance(e.get("sha256"), str) and isinstance(e.get("bytes"), int)
                      for e in files.values()))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise IncompleteFolderError(f"{path}: not a valid {MANIFEST_FORMAT} manifest (edited or corrupt)")
    return Manifest(directory, run_id, dict(files))


def _check_entry(path: Path, raw: bytes, entry: Mapping[str, Any]) -> None:
    if len(raw) != entry["bytes"]:
        detail = f"{len(raw)} bytes, the manifest says {entry['bytes']}"
    elif hashlib.sha256(raw).hexdigest() != entry["sha256"]:
        detail = "same size, another SHA-256"
    else:
        return
    raise IncompleteFolderError(f"{path} does not match {MANIFEST} ({detail}): truncated, edited or from another run")


def read_metadata(directory: str | os.PathLike[str]) -> dict[str, str]:
    """``metadata.json`` of a folder as a dict of strings (``{}`` when the folder has none)."""
    path = Path(directory) / METADATA
    try:
        data = json.loads(read_report_file(path).decode("utf-8"))
    except FileNotFoundError:
        return {}
    except (UnicodeDecodeError, ValueError):
        raise CorruptFileError(f"{path}: not valid JSON (edited or corrupt)") from None
    if not isinstance(data, dict):
        raise CorruptFileError(f"{path}: expected a JSON object of metadata, got {type(data).__name__}")
    return {str(k): str(v) for k, v in data.items()}


def verify_folder(directory: str | os.PathLike[str], may_be_missing: Callable[[str], bool] = lambda name: False
                  ) -> Manifest:
    """Check that ``directory`` is a finished report folder and return its manifest.

    Raises :class:`IncompleteFolderError` when it has no ``manifest.json`` (the run that wrote it was
    interrupted, is still running, or predates manifests), when a listed file is missing (unless
    ``may_be_missing(name)``: ``report`` redraws deleted pages) or differs from its size and SHA-256,
    or when ``metadata.json`` names another run than the manifest."""
    directory = Path(directory)
    manifest = _read_manifest(directory)
    if manifest is None:
        raise IncompleteFolderError(f"{directory} has no {MANIFEST}: not a finished report (the run that wrote it "
                                    "was interrupted or is still running, or it predates manifests) — run it again")
    if METADATA not in manifest.files:
        raise IncompleteFolderError(f"{directory / MANIFEST} does not list {METADATA}")
    for name, entry in sorted(manifest.files.items()):
        path = directory / name
        if Path(name).name != name:
            raise IncompleteFolderError(f"{directory / MANIFEST}: {name!r} is not a file name of this folder")
        try:
            raw = read_report_file(path)
        except FileNotFoundError:
            if may_be_missing(name):
                continue
            raise IncompleteFolderError(f"{path} is missing: {MANIFEST} lists it (run {manifest.run_id})") from None
        _check_entry(path, raw, entry)
    run_id = read_metadata(directory).get("run_id", "")
    if run_id != manifest.run_id:
        raise IncompleteFolderError(f"{directory / METADATA} is from run {run_id or '(none)'} but {MANIFEST} from "
                                    f"run {manifest.run_id}")
    return manifest


def _parse_csv(path: Path, raw: bytes, types: Mapping[str, str] | None) -> pd.DataFrame:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CorruptFileError(f"{path}: not a UTF-8 text file (binary or corrupt)") from None
    if not text.strip():
        raise CorruptFileError(f"{path}: the file is empty")
    if text.startswith("#"):
        raise CorruptFileError(f"{path}: starts with '#' metadata lines — a report from before metadata.json; "
                               "regenerate it")
    columns = pd.read_csv(io.StringIO(text), nrows=0).columns
    known = {**COLUMN_TYPES, **(types or {})}
    types = {c: known[c] for c in columns if c in known}
    dtype = {c: PANDAS_TYPES[t] for c, t in types.items()}
    na_values = {c: ["", "nan", "NaN"] for c, t in types.items() if t == "float"}
    # pandas 3 parses floats exactly by default; pandas 2 needs round_trip for every bit
    exact = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=dtype, keep_default_na=False, na_values=na_values, **exact)
    except (ValueError, TypeError, pd.errors.ParserError) as exc:
        raise CorruptFileError(f"{path}: does not parse as a report table: {_one_line(exc)[:200]}") from None
    return restore_frame(frame)


def read_csv(path: str | os.PathLike[str], required: tuple[str, ...] = (),
             types: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """A report CSV and the metadata of its folder (``metadata.json``); numbers come back exactly.

    In a folder with a manifest the file must be listed there and match its size, SHA-256 and row
    count (a truncated or edited copy, or a file left from another run, is refused). Raises
    ``FileNotFoundError`` when missing and :class:`CorruptFileError` when the file is not UTF-8
    text, does not parse, lacks a ``required`` column or has a value of the wrong type. ``types``
    (``{column: "str"|"int"|"float"|"bool"}``) adds to :data:`scratchnet_reference.reports.schema.COLUMN_TYPES`
    (every report table's columns, the Record fields' types among them)."""
    path = Path(path)
    raw = read_report_file(path)
    manifest = _read_manifest(path.parent)
    entry = None
    if manifest is not None:
        entry = manifest.files.get(path.name)
        if entry is None:
            raise IncompleteFolderError(f"{path} is not listed in {path.parent / MANIFEST}: a file from another run")
        _check_entry(path, raw, entry)
    frame = _parse_csv(path, raw, types)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise CorruptFileError(f"{path}: missing column(s) {missing}; found {list(frame.columns)[:12]}")
    if entry is not None and entry.get("rows") is not None and entry["rows"] != len(frame):
        raise CorruptFileError(f"{path}: {MANIFEST} says {entry['rows']} rows but the file has {len(frame)}")
    return frame, read_metadata(path.parent)


# --------------------------------------------------------------------------------------------
# A folder: complete or refused
# --------------------------------------------------------------------------------------------

def new_run_id() -> str:
    """``YYYYMMDDTHHMMSSZ-<8 hex>``: when, plus enough randomness to tell two runs of one second apart."""
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{now}-{uuid.uuid4().hex[:8]}"


def _is_debris(path: Path) -> bool:
    """A temporary file of :func:`atomic_write_bytes` left by a killed write."""
    return path.name.startswith(".") and path.name.endswith(".tmp") and path.is_file()


@contextlib.contextmanager
def terminate_as_exception() -> Iterator[None]:
    """Within the block SIGTERM raises :class:`Terminated`, so ``finally``/``except`` clean-ups run
    (temporary files, staging folders); the previous handler is restored after. Off the main
    thread, where handlers cannot be installed, SIGTERM keeps its previous handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _unlink_if_written(path: Path, entry: Mapping[str, Any]) -> None:
    """Delete ``path`` only if it is still exactly what the old manifest says a run wrote (size and
    SHA-256): a file someone put there or edited since — a ``README.md`` — is never deleted."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size != entry.get("bytes"):
            return
        if hashlib.sha256(path.read_bytes()).hexdigest() == entry.get("sha256"):
            path.unlink(missing_ok=True)
    except OSError:
        return


class ReportFolder:
    """Write a report folder that is complete or refused (see the module docstring)::

        with ReportFolder(out, metadata) as folder:
            folder.write_csv("matrix.csv", matrix)
            folder.write_text("report.md", markdown)
        # manifest.json is written here, last, only when the block raised nothing

    ``metadata`` goes into ``metadata.json`` with a fresh ``run_id`` unless it has one. ``keep``
    names files already in the folder, listed by its current (verified) manifest, that stay part of
    the run unchanged (``report`` keeps the tables and redraws the pages)."""

    def __init__(self, directory: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None,
                 keep: tuple[str, ...] = ()):
        self.directory = Path(directory)
        self.metadata = {str(k): _one_line(v) for k, v in (metadata or {}).items()}
        self.metadata.setdefault("run_id", new_run_id())
        self.run_id = self.metadata["run_id"]
        self.keep = keep
        self.entries: dict[str, dict[str, Any]] = {}
        self._signals = terminate_as_exception()

    def __enter__(self) -> ReportFolder:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._signals.__enter__()
        try:
            old = _read_manifest(self.directory) if (self.directory / MANIFEST).exists() else None
        except CorruptFileError:
            old = None
        try:
            (self.directory / MANIFEST).unlink(missing_ok=True)  # from here on the folder is refused
            if old is not None:
                self.entries.update({n: old.files[n] for n in self.keep if n in old.files})
                for name in set(old.files) - set(self.keep):
                    _unlink_if_written(self.directory / Path(name).name, old.files[name])
            (self.directory / METADATA).unlink(missing_ok=True)
            for path in self.directory.iterdir():
                if _is_debris(path):
                    path.unlink(missing_ok=True)
        except BaseException:
            self._restore()
            raise
        return self

    def write_bytes(self, name: str, data: bytes, rows: int | None = None) -> Path:
        if Path(name).name != name or name in (MANIFEST, METADATA):
            raise ValueError(f"name must be a plain file name other than {MANIFEST}/{METADATA}, got {name!r}")
        path = atomic_write_bytes(self.directory / name, data)
        self.entries[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                              **({"rows": int(rows)} if rows is not None else {})}
        return path

    def write_text(self, name: str, text: str) -> Path:
        return self.write_bytes(name, text.encode("utf-8"))

    def write_csv(self, name: str, frame: pd.DataFrame) -> Path:
        return self.write_bytes(name, csv_bytes(frame), rows=len(frame))

    def _seal(self) -> None:
        meta = _metadata_bytes(self.metadata)
        atomic_write_bytes(self.directory / METADATA, meta)
        files = {**self.entries, METADATA: {"bytes": len(meta), "sha256": hashlib.sha256(meta).hexdigest()}}
        manifest = {"format": MANIFEST_FORMAT, "run_id": self.run_id, "files": dict(sorted(files.items()))}
        atomic_write_bytes(self.directory / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode("utf-8"))
        fsync_folder(self.directory)

    def _restore(self) -> None:
        self._signals.__exit__(None, None, None)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self._seal()
        finally:
            self._restore()


# --------------------------------------------------------------------------------------------
# Swapping a folder in, checking an output path
# --------------------------------------------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux ``renameat2(RENAME_EXCHANGE)``; ``False`` where the
    platform or file system does not offer it."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not offered here
        return False
    raise OSError(errno, os.strerror(errno), os.fspath(a), None, os.fspath(b))


def staging_debris(target: Path) -> list[Path]:
    """Folders a killed :func:`replace_directory` or promotion left beside ``target``."""
    prefixes = (f".{target.name}.new-", f".{target.name}.old-")
    return [p for p in target.parent.iterdir() if p.name.startswith(prefixes)] if target.parent.is_dir() else []


def replace_directory(source: Path, target: Path) -> None:
    """Put the finished folder ``source`` at ``target``, replacing what was there.

    ``source`` must be a sibling of ``target`` (same file system). Where ``target`` exists the two
    are exchanged in one ``renameat2(RENAME_EXCHANGE)``, so ``target`` never stops existing and holds
    the old folder or the new one; the old one, now at ``source``, is then deleted. Without that
    call (not Linux) the old folder is renamed aside first and the new one moved in: a short
    window without ``target``. Debris of an earlier killed swap beside ``target`` is deleted."""
    source, target = Path(source), Path(target)
    for debris in staging_debris(target):
        if debris.resolve() != source.resolve():
            shutil.rmtree(debris, ignore_errors=True)
    if target.exists() and _exchange(source, target):
        shutil.rmtree(source, ignore_errors=True)
        return
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


def output_dir_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be made into (or written as) an output folder, ``None`` when it can:
    it is a file, a folder above it is a file, or the nearest existing folder is not writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"{path} is a file, not a folder"
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        return f"{existing} is a file, so {path} cannot be a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write into {existing} (permission denied)"
    return None
