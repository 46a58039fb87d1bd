"""Who owns an output folder: ``run`` writes only into a folder that is new or holds its own earlier
report, never into a baseline or a stranger's folder, and never two runs at once.

**Markers.** A folder ``run`` has claimed holds :data:`OWNER_MARKER` (``.scratchnet-report``); a
baseline (what ``baseline`` promotes, and the committed ``reports/baseline/``) holds
:data:`BASELINE_MARKER` (``.scratchnet-baseline``). Neither is listed in the manifest: they say what
the folder *is*, not what a run wrote, so adding one changes no hash. A folder from before markers
that holds a valid report manifest counts as a report folder (it is then marked).

**The rule** (:func:`ownership_problem`): a folder that does not exist or is empty is free; one
with the owner marker or a report manifest is ``run``'s own; a baseline, or any other non-empty
folder (a user's notes, a project's source), is refused unless ``force`` — with the reason.

**The lock** (:func:`claim`): :data:`LOCK_FILE` inside the folder, held with ``fcntl.flock`` for the
whole run and holding the owner's pid, host, start time and command. The kernel releases a
``flock`` when its process dies however it dies, so a lock file left by a killed run is *stale*:
it is not locked, the next run takes it over (and says so). A second run while the first is alive
fails to lock it and is refused at start, naming the other process from the file. The file is
unlinked while still locked and the lock re-checked against the path's inode after locking, so
two runs can never both hold "the" lock through an unlinked inode.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OWNER_MARKER", "BASELINE_MARKER", "LOCK_FILE", "FolderInUseError", "FolderRefusedError", "FolderClaim",
           "ownership_problem", "is_baseline", "mark_baseline", "claim", "MARKERS"]

OWNER_MARKER = ".scratchnet-report"
BASELINE_MARKER = ".scratchnet-baseline"
LOCK_FILE = ".scratchnet-lock"
#: Files of the folder's own bookkeeping: never a report file, never a stranger's.
MARKERS = (OWNER_MARKER, BASELINE_MARKER, LOCK_FILE)

_BASELINE_TEXT = ("This folder is a scratchnet baseline (the gate compares runs with it).\n"
                  "`scratchnet-conformance run --out` refuses to write here; replace it only with\n"
                  "`scratchnet-conformance baseline REPORT_DIR --to THIS_FOLDER`.\n")


class FolderInUseError(RuntimeError):
    """Another live process holds the folder's lock."""


class FolderRefusedError(PermissionError):
    """The folder is a baseline or a stranger's, and ``force`` was not given."""


def is_baseline(directory: str | os.PathLike[str]) -> bool:
    return (Path(directory) / BASELINE_MARKER).is_file()


def mark_baseline(directory: str | os.PathLike[str]) -> Path:
    """Write the baseline marker into ``directory`` (what ``baseline`` does to what it promotes)."""
    path = Path(directory) / BASELINE_MARKER
    path.write_text(_BASELINE_TEXT, encoding="utf-8")
    return path


def _has_report_manifest(directory: Path) -> bool:
    from .files import MANIFEST, MANIFEST_FORMAT

    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT


def ownership_problem(directory: str | os.PathLike[str], force: bool = False) -> str | None:
    """Why ``run`` may not write into ``directory`` (``None``: it may). See the module docstring."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    if is_baseline(directory):
        return None if force else (f"{directory} is a baseline ({BASELINE_MARKER}): a run never overwrites it — "
                                   "write the run elsewhere and promote it with `baseline`, or pass --force")
    names = [p.name for p in directory.iterdir() if p.name != LOCK_FILE]
    if not names or OWNER_MARKER in names or _has_report_manifest(directory):
        return None
    if force:
        return None
    shown = ", ".join(sorted(names)[:5]) + (f", … ({len(names)} entries)" if len(names) > 5 else "")
    return (f"{directory} holds files that no scratchnet run wrote ({shown}): choose a new or empty folder, "
            "or pass --force (files the run did not write are never deleted)")


@dataclass
class FolderClaim:
    """A held claim on an output folder (:func:`claim`); ``took_over``: the stale lock's description."""

    directory: Path
    fd: int
    took_over: str = ""


def _describe(raw: str) -> str:
    try:
        info = json.loads(raw)
        return (f"pid {info['pid']} on {info['host']} since {info['started']} "
                f"({' '.join(info.get('argv', []))[:120]})")
    except (ValueError, KeyError, TypeError):
        return "an unknown process (unreadable lock file)"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _acquire(lock: Path) -> tuple[int, str]:
    """``(fd, stale-lock description or "")`` with ``lock`` flock'ed; :class:`FolderInUseError` when
    another process holds it."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raw = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise FolderInUseError(f"{lock.parent} is in use by another run: {_describe(raw)}; wait for it "
                                       f"to finish or write elsewhere") from None
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the holder unlinked it between our open and our lock: try the new file
            os.close(fd)
            continue
        raw = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        stale = ""
        if raw:
            try:
                pid = int(json.loads(raw)["pid"])
                state = "no longer running" if not _pid_alive(pid) else "alive but not holding the lock"
            except (ValueError, KeyError, TypeError):
                state = "unreadable"
            stale = f"a stale lock ({_describe(raw)}, {state}) was taken over"
        return fd, stale


def _program() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    return "python -m scratchnet_reference" if name == "__main__.py" else name


@contextlib.contextmanager
def claim(directory: str | os.PathLike[str], force: bool = False) -> Iterator[FolderClaim]:
    """Claim ``directory`` for one run: refused (:class:`FolderRefusedError` with the reason) by
    :func:`ownership_problem`, refused (:class:`FolderInUseError`) while another run holds it; else
    the folder is created, locked for the block and marked as ``run``'s own."""
    directory = Path(directory)
    problem = ownership_problem(directory, force)
    if problem:
        raise FolderRefusedError(problem)
    directory.mkdir(parents=True, exist_ok=True)
    lock = directory / LOCK_FILE
    fd, stale = _acquire(lock)
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
                "argv": [_program(), *sys.argv[1:]]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
        owner = directory / OWNER_MARKER
        if not owner.exists():
            owner.write_text("This folder holds a scratchnet conformance report; `run --out` may replace the files "
                             "it wrote here (and only those).\n", encoding="utf-8")
        yield FolderClaim(directory, fd, stale)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # still locked: a waiting opener re-checks the inode (see _acquire)
        os.close(fd)
