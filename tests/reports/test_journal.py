"""The records journal: each finished job's records survive whatever ends the process after it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from scratchnet_reference.reports.journal import JOURNAL, RecordJournal, read_journal

WRITER = r"""
import sys, time
from scratchnet_reference.reports.journal import RecordJournal
journal = RecordJournal(sys.argv[1])
for job in range(5):
    journal.append(f"job {job}", [{"check": "loss", "tol_ratio": float(job), "note": "<b>x</b>"}] * 3)
print("appended", flush=True)
time.sleep(60)
"""


def test_records_round_trip_and_non_finite_numbers_survive(tmp_path, small_records):
    journal = RecordJournal(tmp_path)
    journal.append("job a", small_records[:4])
    journal.append("job b", [{"check": "loss", "tol_ratio": float("inf"), "max_abs_err": float("nan")}])
    journal.close()
    back = read_journal(tmp_path)
    assert back.jobs == ["job a", "job b"] and back.torn_lines == 0
    assert json.dumps(back.records[:4]) == json.dumps([r.to_dict() for r in small_records[:4]])  # NaN ≠ NaN in ==
    assert back.records[4]["tol_ratio"] == float("inf") and back.records[4]["max_abs_err"] != back.records[4][
        "max_abs_err"]


def test_a_line_cut_short_is_skipped_and_counted(tmp_path):
    journal = RecordJournal(tmp_path)
    journal.append("job a", [{"check": "loss"}])
    journal.close()
    with open(tmp_path / JOURNAL, "ab") as fh:
        fh.write(json.dumps({"job": "job b", "check": "grad"}).encode()[:15])  # a write cut by a kill
    back = read_journal(tmp_path)
    assert back.jobs == ["job a"] and back.torn_lines == 1


def test_a_sigkilled_writer_leaves_every_finished_job(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "appended"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.stdout.close()
    back = read_journal(tmp_path)
    assert back.jobs == [f"job {i}" for i in range(5)] and len(back.records) == 15 and back.torn_lines == 0


def test_a_new_journal_starts_empty_and_close_can_delete_it(tmp_path):
    first = RecordJournal(tmp_path)
    first.append("old", [{"check": "loss"}])
    first.close()
    second = RecordJournal(tmp_path)
    second.close(delete=True)
    assert not (tmp_path / JOURNAL).exists()


def test_a_full_disk_while_appending_names_the_folder(tmp_path, monkeypatch):
    import os

    import pytest
    from scratchnet_reference.reports.files import DiskFullError

    journal = RecordJournal(tmp_path)
    journal.append("job a", [{"check": "loss"}])

    def full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(DiskFullError, match=rf"no space left to append to {JOURNAL} in {tmp_path}/ .* after 1 jobs"):
        journal.append("job b", [{"check": "loss"}])
    monkeypatch.undo()
    journal.close()
    assert read_journal(tmp_path).jobs == ["job a"]
