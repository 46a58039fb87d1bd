"""scratchnet.atomic: the one atomic-write helper (temp file in the same folder, fsync,
os.replace, the normal file mode, nothing left behind on any exception — a signal while the
temporary file is being created included)."""

import os
import signal
import stat
import tempfile
import threading

import pytest

from scratchnet.atomic import atomic_open, atomic_write, normal_file_mode


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o666 & ~0o027
    os.umask(old)


@pytest.mark.parametrize("content", [b"\x00\x01bytes", "text ü\n", lambda fh: fh.write(b"from a writer")],
                         ids=["bytes", "text", "writer"])
def test_writes_content_with_the_normal_mode(tmp_path, content, umask_027):
    path = atomic_write(tmp_path / "out.bin", content)
    expected = (content.encode() if isinstance(content, str) else
                b"from a writer" if callable(content) else content)
    assert path.read_bytes() == expected
    assert mode_of(path) == umask_027 == normal_file_mode(), "not mkstemp's 0o600"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_context_manager_text_mode(tmp_path):
    with atomic_open(tmp_path / "t.csv", "w", newline="") as fh:
        fh.write("a,b\r\n1,2\r\n")
    assert (tmp_path / "t.csv").read_bytes() == b"a,b\r\n1,2\r\n"
    assert mode_of(tmp_path / "t.csv") == normal_file_mode()


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path, error):
    path = tmp_path / "report.md"
    atomic_write(path, "old content")

    def writer(fh):
        fh.write(b"half of the new content")
        raise error("interrupted")

    with pytest.raises(error):
        atomic_write(path, writer)
    assert path.read_text() == "old content"
    assert os.listdir(tmp_path) == ["report.md"]


def test_a_failing_with_block_on_a_new_path_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="boom"), atomic_open(tmp_path / "new.txt", "w") as fh:
        fh.write("partial")
        raise ValueError("boom")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda p: atomic_write(p / "x", 5), TypeError, r"content must be bytes, str or a callable writer\(fh\), got int"),
    (lambda p: atomic_open(p / "x", "a").__enter__(), ValueError, r"mode must be 'w' or 'wb', got 'a'"),
    (lambda p: atomic_write(p / "missing" / "x", b""), FileNotFoundError,
     r"cannot write .*: folder .*missing' does not exist"),
    (lambda p: atomic_write(3, b""), TypeError, r"path must be a str or os.PathLike, got int"),
], ids=["content-type", "mode", "missing-folder", "path-type"])
def test_bad_arguments(tmp_path, call, error, message):
    with pytest.raises(error, match=message):
        call(tmp_path)
    assert os.listdir(tmp_path) == []


POSIX_SIGNALS = pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="no POSIX signal masks here")


def blocked_signals():
    return signal.pthread_sigmask(signal.SIG_BLOCK, [])


@pytest.fixture
def unblocked():
    """SIGINT and SIGTERM unblocked in this thread for the test, the thread's mask restored after it."""
    before = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    yield blocked_signals()
    signal.pthread_sigmask(signal.SIG_SETMASK, before)


class Interrupted(Exception):
    """What the test's handler raises for the signal."""


@POSIX_SIGNALS
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_temporary_file_is_created_leaves_no_temporary_file(tmp_path, monkeypatch, signum,
                                                                              unblocked):
    """SIGINT/SIGTERM are held while ``mkstemp`` runs: one sent to this thread right after the temporary
    file exists (before its name is returned) is delivered once the name is known, so the handler's
    exception removes the file; the old target stays, and the thread's signal mask is restored."""
    path = tmp_path / "report.md"
    atomic_write(path, "old content")
    real_mkstemp = tempfile.mkstemp

    def mkstemp_then_signal(*args, **kwargs):
        created = real_mkstemp(*args, **kwargs)
        signal.pthread_kill(threading.get_ident(), signum)
        return created

    def handler(num, frame):
        raise Interrupted(num)

    previous = signal.signal(signum, handler)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_signal)
    try:
        with pytest.raises(Interrupted):
            atomic_write(path, "new content")
        mask = blocked_signals()
    finally:
        signal.signal(signum, signal.SIG_IGN)        # a signal still pending is discarded, not raised here
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
        signal.signal(signum, previous)
    assert mask == unblocked
    assert path.read_text() == "old content"
    assert os.listdir(tmp_path) == ["report.md"]


@POSIX_SIGNALS
def test_the_signal_mask_is_restored_after_a_write(tmp_path, unblocked):
    atomic_write(tmp_path / "a.txt", "content")
    with pytest.raises(RuntimeError), atomic_open(tmp_path / "b.txt") as fh:
        fh.write(b"partial")
        raise RuntimeError("stop")
    assert blocked_signals() == unblocked
    assert os.listdir(tmp_path) == ["a.txt"]
