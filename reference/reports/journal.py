"""Records kept as they are computed: an append-only journal in the output folder, so an interrupted
or failed run loses nothing it had measured.

``run`` appends each job's records to :data:`JOURNAL` (``records.journal.jsonl``) the moment the job
ends: one JSON object per record per line (``{"job": "...", "check": ..., ...}`` — every field of
:class:`~scratchnet_reference.core.records.Record`, non-finite numbers as ``NaN``/``Infinity``), the
whole job written by one ``write`` on a descriptor opened ``O_APPEND``. A process killed at any
moment (SIGKILL, an interpreter crash) therefore leaves every finished job's lines whole; a write
the kill cut short leaves a last line without its newline, which :func:`read_journal` skips and
counts. The journal is ``fsync``-ed at most once per :data:`SYNC_EVERY_S` (an ``fsync`` per job
would cost more than the job on a slow disk) and at the end; so a power cut may lose the last
second, a dying process nothing.

When the run ends normally the full report is sealed and the journal deleted; when it is
interrupted (Ctrl-C, SIGTERM), a job raised past the run, or the disk filled, ``run`` writes an
explicitly partial report from the journal (``metadata.json`` says ``partial``; the gate refuses
it), and the journal stays beside it, readable by a person and by :func:`read_journal`.
"""

from __future__ import annotations

import errno
import json
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import DiskFullError

__all__ = ["JOURNAL", "SYNC_EVERY_S", "RecordJournal", "JournalContents", "read_journal"]

JOURNAL = "records.journal.jsonl"
SYNC_EVERY_S = 1.0


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return value  # json writes NaN / Infinity, and reads them back
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return value.item()  # a NumPy scalar
    return value


class RecordJournal:
    """The journal of one run in ``directory`` (truncated when opened: a new run starts a new one)."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.path = Path(directory) / JOURNAL
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self._synced = time.monotonic()
        self.jobs = 0
        self.records = 0

    def append(self, job: str, records: Iterable[Any]) -> None:
        """One finished job's records, in one write (``records``: ``Record`` objects or dicts)."""
        lines = []
        for record in records:
            data = record.to_dict() if hasattr(record, "to_dict") else dict(record)
            lines.append(json.dumps({"job": job, **{k: _plain(v) for k, v in data.items()}}, ensure_ascii=False))
        block = ("\n".join(lines) + "\n").encode("utf-8") if lines else b""
        if block:
            try:
                written = os.write(self._fd, block)
                if written != len(block):  # a regular file writes all or raises (ENOSPC); be explicit anyway
                    raise OSError(errno.ENOSPC, "No space left on device (short write)", str(self.path))
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise DiskFullError(exc.errno, f"no space left to append to {self.path.name} in {self.path.parent}/ "
                                    f"({os.strerror(exc.errno)}) after {self.jobs} jobs: free some space or write "
                                    "the report elsewhere", str(self.path.parent)) from None
        self.jobs += 1
        self.records += len(lines)
        if time.monotonic() - self._synced >= SYNC_EVERY_S:
            os.fsync(self._fd)
            self._synced = time.monotonic()

    def close(self, delete: bool = False) -> None:
        if self._fd < 0:
            return
        try:
            os.fsync(self._fd)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = -1
        if delete:
            self.path.unlink(missing_ok=True)


@dataclass
class JournalContents:
    records: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    torn_lines: int = 0


def read_journal(directory: str | os.PathLike[str]) -> JournalContents:
    """The records in a folder's journal (dicts, in order), the jobs they came from, and the number of
    lines a kill cut short (skipped)."""
    out = JournalContents()
    raw = (Path(directory) / JOURNAL).read_bytes()
    for line in raw.split(b"\n"):
        if not line:
            continue
        try:
            data = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            out.torn_lines += 1
            continue
        job = data.pop("job", "")
        if not out.jobs or out.jobs[-1] != job:
            out.jobs.append(job)
        out.records.append(data)
    return out
