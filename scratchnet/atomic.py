"""Write a file atomically: readers see the old file or the complete new one, never a part.

One guarantee, one implementation (:func:`atomic_open`): the content goes to a temporary file
in the target's folder, is flushed and ``fsync``-ed, gets the mode a plain ``open(path, "w")``
would give (``0o666 & ~umask``; ``tempfile.mkstemp`` creates ``0o600``) and replaces the target
with ``os.replace``. On any exception — ``KeyboardInterrupt`` included — the temporary file is
removed and the old target is left untouched.

Example::

    atomic_write("report.md", "# Results\\n")                    # text (UTF-8)
    atomic_write("weights.bin", b"\\x00\\x01")                     # bytes
    atomic_write("model.npz", lambda fh: np.savez(fh, w=w))       # a writer(fh) callback
    with atomic_open("table.csv", "w", newline="") as fh:         # a context manager
        frame.to_csv(fh)
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_open", "atomic_write", "normal_file_mode", "fsync_folder"]


def normal_file_mode() -> int:
    """``0o666 & ~umask``: the mode ``open(path, "w")`` gives a new file."""
    try:  # Linux reports the umask without changing it (no window where another thread sees 0)
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", *, encoding: str | None = None,
                newline: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` for writing (``mode`` ``"wb"`` or ``"w"``; text
    defaults to UTF-8) and, when the ``with`` block ends without an exception, fsync it and
    rename it onto ``path``. If the block raises, the temporary file is deleted, ``path`` keeps
    its old content and the exception propagates."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {str(path)!r}: folder {str(path.parent)!r} does not exist")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    # SIGTERM/SIGINT are held back while the temporary file is created, so a signal (raised as an
    # exception by a handler) can only arrive once its name is known here and it can be removed
    held = _hold_signals()
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        _release_signals(held)
        held = None
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, normal_file_mode())
        os.replace(tmp, path)
    except BaseException:
        _release_signals(held)
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    fsync_folder(path.parent)


def _hold_signals() -> Any:
    """Block SIGTERM and SIGINT for this thread (POSIX); the previous mask, or None where not possible."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})


def _release_signals(previous: Any) -> None:
    """Restore the mask :func:`_hold_signals` returned (a held signal is delivered now)."""
    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def atomic_write(path: str | os.PathLike, content: bytes | str | Callable[[IO[bytes]], object], *,
                 encoding: str = "utf-8") -> Path:
    """Write ``content`` to ``path`` atomically and return ``path``: ``bytes`` as they are,
    ``str`` encoded with ``encoding``, or a callable ``writer(fh)`` that writes to the binary
    file handle it is given (``np.savez``, ``image.save``, ``pickle.dump`` …)."""
    if isinstance(content, str):
        content = content.encode(encoding)
    if not (callable(content) or isinstance(content, (bytes, bytearray, memoryview))):
        raise TypeError(f"content must be bytes, str or a callable writer(fh), "
                        f"got {type(content).__name__}")
    with atomic_open(path, "wb") as fh:
        if callable(content):
            content(fh)
        else:
            fh.write(content)
    return Path(path)


def fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
