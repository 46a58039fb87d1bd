"""A report folder is complete or it is refused: real kills (SIGTERM, SIGINT, SIGKILL) of a writer at
chosen moments, a folder mixing two runs, killed baseline promotions, and the file mode.

The writers run in a subprocess whose ``os.replace`` announces the file it is about to move into
place and then sleeps: the test sends the signal while that file's temporary copy exists, so each
moment is hit exactly, not by luck."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from scratchnet_reference import cli
from scratchnet_reference.reports.files import (
    MANIFEST,
    IncompleteFolderError,
    ReportFolder,
    atomic_write_bytes,
    read_csv,
    staging_debris,
    verify_folder,
)
from scratchnet_reference.reports.folder import render_reports, write_tables
from scratchnet_reference.reports.gate import GateError, gate
from scratchnet_reference.reports.journal import JOURNAL

ROOT = Path(__file__).resolve().parents[2]

#: A subprocess that writes a report folder (or promotes one) with a pause before each rename.
SLOW_WRITER = textwrap.dedent("""
    import os, shutil, signal, sys, time
    # Ctrl-C raises KeyboardInterrupt even where this test runs in the background (a shell starts
    # background jobs with SIGINT ignored, and Python then installs no handler of its own)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    real_replace, real_rmtree = os.replace, shutil.rmtree

    def announce(what, name):
        print(what, os.path.basename(os.fspath(name)), flush=True)
        time.sleep(float(os.environ.get("PAUSE", "0.4")))

    def slow_replace(src, dst):
        announce("replacing", dst)
        real_replace(src, dst)

    def slow_rmtree(path, *args, **kwargs):
        announce("removing", path)
        real_rmtree(path, *args, **kwargs)

    os.replace, shutil.rmtree = slow_replace, slow_rmtree
    command = sys.argv[1]
    if command == "write":
        from scratchnet_reference.reports.folder import write_reports, write_tables
        from scratchnet_reference.reports.frames import read_records
        records = read_records(sys.argv[2]).to_dict("records")
        (write_reports if sys.argv[4] == "render" else write_tables)(records, sys.argv[3], {"profile": "killed"})
    else:
        from scratchnet_reference import cli
        sys.exit(cli.main(["baseline", sys.argv[2], "--to", sys.argv[3]]))
    print("done", flush=True)
""")


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp")) if folder.exists() else []


def _kill_at(argv: list[str], moment: str, sig: signal.Signals) -> int:
    """Run :data:`SLOW_WRITER` with ``argv``; send ``sig`` as soon as it prints ``moment``
    (``"replacing matrix.csv"``: while that file's temporary copy exists; ``"removing"``: before any
    folder is removed). Returns the exit code."""
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line.strip())
            if line.strip() == moment or line.startswith(moment + " "):
                proc.send_signal(sig)
                break
        else:
            pytest.fail(f"the writer never reached {moment!r}; it printed {seen}; stderr: {proc.stderr.read()[-2000:]}")
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.fixture(scope="module")
def source_records(small_records, tmp_path_factory) -> Path:
    """A records.csv for the writer subprocesses to write again."""
    out = tmp_path_factory.mktemp("source") / "run"
    write_tables(small_records, out)
    return out / "records.csv"


def _assert_refused(folder: Path, baseline: Path) -> None:
    with pytest.raises(GateError, match="report is corrupt or unfinished: .*has no manifest.json"):
        gate(folder, baseline)
    with pytest.raises(IncompleteFolderError, match="has no manifest.json"):
        render_reports(folder)


MOMENTS = ["replacing records.csv", "replacing gradients.csv", "replacing metadata.json", "replacing manifest.json"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
@pytest.mark.parametrize("moment", MOMENTS)
def test_a_killed_write_is_refused_and_leaves_no_temporary(source_records, baseline_dir, tmp_path, sig, moment):
    folder = tmp_path / "killed"
    code = _kill_at(["write", str(source_records), str(folder), "tables"], moment, sig)
    assert code != 0
    _assert_refused(folder, baseline_dir)
    if sig == signal.SIGKILL:  # cannot be caught: the temporary stays, hidden, until the next write
        assert len(_temporaries(folder)) == 1 and _temporaries(folder)[0].startswith(".")
        write_tables([], folder)
        assert _temporaries(folder) == [] and verify_folder(folder)
    else:
        assert code == (143 if sig == signal.SIGTERM else -signal.SIGINT)
        assert _temporaries(folder) == []


def test_a_run_killed_over_an_older_run_leaves_no_accepted_mix(source_records, small_records, baseline_dir,
                                                                tmp_path):
    """The older run's manifest goes first, so new records.csv/matrix.csv beside its
    gradients.csv/training.csv are never accepted."""
    folder = tmp_path / "reused"
    write_tables(small_records[: len(small_records) // 2], folder, {"profile": "older"})
    verify_folder(folder)
    code = _kill_at(["write", str(source_records), str(folder), "tables"], "replacing gradients.csv",
                    signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert (folder / "records.csv").exists() and not (folder / MANIFEST).exists()
    _assert_refused(folder, baseline_dir)


def test_a_mix_of_two_finished_runs_is_refused(small_records, tmp_path):
    """Files copied between two sealed folders (by hand, or by an older writer) fail the hashes."""
    first, second = tmp_path / "first", tmp_path / "second"
    write_tables(small_records, first)
    write_tables(small_records[:-3], second)
    shutil.copy2(second / "matrix.csv", first / "matrix.csv")
    with pytest.raises(GateError, match="matrix.csv does not match manifest.json"):
        gate(first, first)
    write_tables(small_records, first)
    shutil.copy2(second / "metadata.json", first / "metadata.json")
    with pytest.raises(IncompleteFolderError, match="metadata.json does not match manifest.json"):
        verify_folder(first)


def test_a_folder_holding_only_records_and_matrix_is_refused(small_records, baseline_dir, tmp_path):
    folder = tmp_path / "partial"
    write_tables(small_records, folder)
    for p in folder.iterdir():
        if p.name not in ("records.csv", "matrix.csv"):
            p.unlink()
    _assert_refused(folder, baseline_dir)


def test_a_deleted_file_of_a_finished_run_is_refused(small_records, tmp_path):
    folder = tmp_path / "run"
    write_tables(small_records, folder)
    (folder / "training.csv").unlink()
    with pytest.raises(GateError, match="training.csv is missing: manifest.json lists it"):
        gate(folder, folder)


def test_a_run_killed_by_sigterm_from_the_cli(tmp_path):
    """The real ``run`` command, terminated as soon as its first report file appears."""
    folder = tmp_path / "cli-run"
    proc = subprocess.Popen([sys.executable, "-m", "scratchnet_reference", "run", "--quick", "--dtype", "float64",
                             "--no-training", "--no-progress", "--out", str(folder)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # the folder is claimed (marker, lock) and the journal opened at the start (a SIGTERM then writes a
        # partial report: tests/conformance/test_survival.py); wait for the first report file
        while proc.poll() is None and not (folder.exists() and any(
                not p.name.startswith(".scratchnet") and p.name != JOURNAL for p in folder.iterdir())):
            threading.Event().wait(0.002)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert code == 143
    assert _temporaries(folder) == [] and not (folder / ".scratchnet-lock").exists()  # the lock released too
    done = subprocess.run([sys.executable, "-m", "scratchnet_reference", "gate", str(folder), str(folder)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "has no manifest.json" in done.stderr and "Traceback" not in done.stderr


# -- baseline promotion -----------------------------------------------------------------------------

@pytest.fixture
def two_runs(small_records, tmp_path) -> tuple[Path, Path, Path]:
    """``(old report, new report, baseline promoted from the old one)``."""
    old, new, baseline = tmp_path / "old", tmp_path / "new", tmp_path / "baseline"
    for folder, records in ((old, small_records), (new, small_records[:-4])):
        write_tables(records, folder)
        with ReportFolder(folder, read_csv(folder / "matrix.csv")[1],
                          keep=tuple(verify_folder(folder).files)) as sealed:
            sealed.write_text("report.md", f"# {folder.name}\n")
    assert cli.main(["baseline", str(old), "--to", str(baseline)]) == 0
    return old, new, baseline


@pytest.mark.parametrize("moment, sig", [
    ("replacing matrix.csv", signal.SIGKILL),  # while staging
    ("replacing manifest.json", signal.SIGKILL),  # staging complete but for its manifest
    ("removing", signal.SIGKILL),  # swapped in; the old baseline not yet deleted
    ("replacing matrix.csv", signal.SIGTERM),
    ("removing", signal.SIGTERM),
])
def test_a_killed_promotion_leaves_a_whole_baseline(two_runs, moment, sig):
    old, new, baseline = two_runs
    code = _kill_at(["baseline", str(new), str(baseline)], moment, sig)
    assert code != 0
    run_id = verify_folder(baseline).run_id  # a whole baseline: the old one or the new one
    expected = verify_folder(new if moment == "removing" else old).run_id
    assert run_id == expected
    if sig == signal.SIGTERM and moment != "removing":
        assert staging_debris(baseline) == []  # the staging folder was removed on the way out
    assert cli.main(["baseline", str(new), "--to", str(baseline)]) == 0
    assert staging_debris(baseline) == [] and verify_folder(baseline).run_id == verify_folder(new).run_id
    assert [p.name for p in baseline.parent.iterdir() if p.name.startswith(".")] == []


def test_promotion_has_no_window_without_a_baseline(two_runs):
    old, new, baseline = two_runs
    seen_missing = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if not (baseline / MANIFEST).is_file():
                seen_missing.append(True)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for source in (new, old) * 5:
            assert cli.main(["baseline", str(source), "--to", str(baseline)]) == 0
    finally:
        stop.set()
        watcher.join()
    assert seen_missing == []


# -- one file ----------------------------------------------------------------------------------------

def test_files_get_the_normal_mode(tmp_path):
    previous = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "a.csv", b"x\n")
        assert path.stat().st_mode & 0o777 == 0o644
        os.umask(0o027)
        assert atomic_write_bytes(tmp_path / "b.csv", b"x\n").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(previous)


def test_a_write_that_fails_leaves_no_temporary_and_the_old_file(tmp_path, monkeypatch):
    path = atomic_write_bytes(tmp_path / "a.csv", b"old\n")

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new\n")
    assert path.read_bytes() == b"old\n" and _temporaries(tmp_path) == []
