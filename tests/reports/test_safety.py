"""Faults a user or a bad day brings, each refused or survived with a clear message: output folders
are owned (baseline, stranger's folders, a second concurrent run), the gate reads only what it
should and compares only what is comparable, reports carry no live content, a full disk is named."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from scratchnet_reference import cli
from scratchnet_reference.conformance.session import ConformanceRun
from scratchnet_reference.reports import files as report_files
from scratchnet_reference.reports.comparability import metadata_differences
from scratchnet_reference.reports.escape import md_fence, md_text, neutralise_frame
from scratchnet_reference.reports.files import MAX_FILE_BYTES, csv_bytes, read_csv, read_metadata
from scratchnet_reference.reports.gate import GateError, compare_matrices, gate, load_matrix
from scratchnet_reference.reports.ownership import BASELINE_MARKER, LOCK_FILE, OWNER_MARKER, claim

from .conftest import reseal

ROOT = Path(__file__).resolve().parents[2]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def fast_run(monkeypatch, small_records):
    """``run`` without the computation: the small records stand for what the jobs gave."""
    def execute(self, impl, jobs, wrap=None, skipped=(), **kwargs):
        self.by_job[("case", "small", "cpu")] = list(small_records)

    monkeypatch.setattr(ConformanceRun, "execute", execute)

    def _go(capsys, out: Path, *extra: str) -> tuple[int, str, str]:
        return _run(capsys, "run", "--quick", "--no-training", "--no-progress", "--out", str(out), *extra)
    return _go


# -- item 3: output folders are owned ------------------------------------------------------------

def test_the_committed_baseline_is_marked_and_run_refuses_it(capsys, fast_run, tmp_path):
    assert (ROOT / "reports" / "baseline" / BASELINE_MARKER).is_file()
    copy = tmp_path / "baseline"
    shutil.copytree(ROOT / "reports" / "baseline", copy)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    code, _, err = fast_run(capsys, copy)
    assert code == 2 and "is a baseline" in err and "--force" in err
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before  # not one byte changed
    committed = load_matrix(ROOT / "reports" / "baseline", "baseline")
    assert load_matrix(copy, "baseline").equals(committed)  # the committed rows, untouched and still readable


def test_baseline_marks_what_it_promotes_and_run_then_refuses_it(capsys, fast_run, tmp_path, rendered_dir):
    baseline = tmp_path / "b"
    assert _run(capsys, "baseline", str(rendered_dir), "--to", str(baseline))[0] == 0
    assert (baseline / BASELINE_MARKER).is_file()
    code, _, err = fast_run(capsys, baseline)
    assert code == 2 and "is a baseline" in err
    code, out, err = fast_run(capsys, baseline, "--force")  # explicitly asked: allowed
    assert code == 0, err


def test_a_strangers_folder_is_refused_and_with_force_its_files_survive(capsys, fast_run, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "README.md").write_text("my notes\n")
    code, _, err = fast_run(capsys, folder)
    assert code == 2 and "holds files that no scratchnet run wrote (README.md)" in err
    assert fast_run(capsys, folder, "--force")[0] == 0
    assert (folder / "README.md").read_text() == "my notes\n" and (folder / OWNER_MARKER).is_file()


def test_a_rerun_deletes_only_the_files_it_wrote(capsys, fast_run, tmp_path):
    out = tmp_path / "latest"
    assert fast_run(capsys, out)[0] == 0
    (out / "README.md").write_text("kept by the user\n")  # a file of the user's beside the report
    (out / "report.md").write_text("edited by the user\n")  # a file the run wrote, since edited
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["README.md"] = {"bytes": 1, "sha256": "0" * 64}  # a manifest that lists it (edited)
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert fast_run(capsys, out)[0] == 0
    assert (out / "README.md").read_text() == "kept by the user\n"
    assert "README.md" not in report_files.verify_folder(out).files  # the new run is complete, without it


def test_a_second_concurrent_run_is_refused_naming_the_other_process(capsys, fast_run, tmp_path):
    out = tmp_path / "latest"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom scratchnet_reference.reports.ownership import claim\n"
         "with claim(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n", str(out)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = fast_run(capsys, out)
        assert code == 2 and f"is in use by another run: pid {holder.pid}" in err
        assert not (out / "manifest.json").exists()
    finally:
        holder.kill()  # SIGKILL: no clean-up, the lock file stays behind
        holder.wait()
    assert (out / LOCK_FILE).exists()
    code, out_text, err = fast_run(capsys, out)
    assert code == 0, err
    assert f"a stale lock (pid {holder.pid}" in out_text and "no longer running" in out_text
    assert not (out / LOCK_FILE).exists()


def test_the_lock_is_one_at_a_time_in_process(tmp_path):
    from scratchnet_reference.reports.ownership import FolderInUseError

    with claim(tmp_path / "o"):
        with pytest.raises(FolderInUseError, match=f"pid {os.getpid()}"):
            with claim(tmp_path / "o"):
                pass
    with claim(tmp_path / "o"):  # released: claimable again
        pass


# -- item 3: the gate reads only what it should --------------------------------------------------

def test_the_gate_refuses_a_folder_against_itself(small_records, write, tmp_path):
    run = write(small_records)
    with pytest.raises(GateError, match="are the same folder"):
        gate(run, run)
    link = tmp_path / "link"
    link.symlink_to(run)
    with pytest.raises(GateError, match="are the same folder"):
        gate(link, run)


def test_the_gate_refuses_a_file_that_resolves_outside_its_folder(small_records, write, tmp_path):
    run, base = write(small_records), write(small_records, "base")
    outside = tmp_path / "elsewhere.csv"
    shutil.move(run / "matrix.csv", outside)
    (run / "matrix.csv").symlink_to(outside)
    with pytest.raises(GateError, match="resolves to .*elsewhere.csv, outside its folder"):
        gate(run, base)


@pytest.mark.parametrize("kind", ["fifo", "dev_zero"])
def test_the_gate_reads_only_regular_files(small_records, write, kind):
    run, base = write(small_records), write(small_records, "base")
    (run / "matrix.csv").unlink()
    if kind == "fifo":
        os.mkfifo(run / "matrix.csv")
    else:
        (run / "matrix.csv").symlink_to("/dev/zero")
    start = time.monotonic()
    with pytest.raises(GateError, match="not a regular file|outside its folder"):
        gate(run, base)
    assert time.monotonic() - start < 10  # refused, not read (a FIFO blocked for ever before)


def test_the_gate_has_a_size_cap(small_records, write, monkeypatch):
    run, base = write(small_records), write(small_records, "base")
    monkeypatch.setattr(report_files, "MAX_FILE_BYTES", 1000)
    with pytest.raises(GateError, match=r"bytes, over the 1,000-byte limit"):
        gate(run, base)
    assert MAX_FILE_BYTES >= 2**28


# -- item 4: the gate compares what changes a comparison's meaning --------------------------------

def _with_meta(folder: Path, **changes: str) -> Path:
    meta = read_metadata(folder)
    meta.update(changes)
    (folder / "metadata.json").write_text(json.dumps(meta))
    return reseal(folder)


PLAN = "devices=cpu dtypes=float64,float32 training=yes fd=on_failure quick=no"


@pytest.mark.parametrize("key, run_value, severity", [
    ("torch", "1.13.0", "refuse"), ("torch", "2.13.1+cpu", "warn"), ("python", "2.7.18", "refuse"),
    ("python", "3.12.1", "warn"), ("numpy", "1.26.4", "refuse"),
    ("plan", PLAN.replace("quick=no", "quick=yes"), "refuse"),
    ("plan", PLAN.replace("fd=on_failure", "fd=never"), "warn"),
    ("errors", "12 jobs raised", "refuse"), ("impl", "mine", "refuse"), ("partial", "yes: 56 of 79 jobs", "refuse"),
    ("blas_numpy", "openblas 0.3.20", "warn"), ("cpu", "Intel Xeon", "warn"),
])
def test_every_meaningful_metadata_difference_is_listed(key, run_value, severity):
    base = {"torch": "2.13.0+cpu", "python": "3.11.7", "numpy": "2.4.6", "plan": PLAN, "errors": "none",
            "blas_numpy": "openblas 0.3.31", "cpu": "AMD EPYC", "date": "2026-12-03", "run_id": "a"}
    run = {**base, key: run_value, "date": "2026-12-07", "run_id": "b"}
    differences = metadata_differences(run, base)
    assert [(d.key, d.severity) for d in differences] == [(key, severity)]
    assert run_value[:20] in str(differences[0])


def test_the_gate_refuses_listing_each_difference_and_can_be_told_to_compare(small_records, write):
    base = _with_meta(write(small_records, "base"), torch="2.13.0+cpu", python="3.11.7", plan=PLAN, errors="none")
    run = _with_meta(write(small_records), torch="1.13.0", python="2.7.18", plan=PLAN.replace("dtypes=float64,float32",
                                                                                             "dtypes=float64"),
                     errors="12 jobs raised")
    with pytest.raises(GateError) as info:
        gate(run, base)
    message = str(info.value)
    assert "4 difference(s)" in message
    for key in ("torch:", "python:", "plan:", "errors:"):
        assert key in message
    result = gate(run, base, allow_differences=True)
    assert result.passed and {d.key for d in result.differences} == {"torch", "python", "plan", "errors"}


def test_the_gate_cli_prints_warnings(capsys, small_records, write):
    base = _with_meta(write(small_records, "base"), cpu="AMD EPYC")
    run = _with_meta(write(small_records), cpu="Intel Xeon")
    code, out, _ = _run(capsys, "gate", str(run), str(base))
    assert code == 0 and "gate: warning: cpu: run 'Intel Xeon' vs baseline 'AMD EPYC'" in out


def test_a_cuda_run_against_a_cpu_baseline_is_refused_with_words(small_records, write):
    matrix = load_matrix(write(small_records))
    cuda = matrix.assign(device="cuda:0")
    with pytest.raises(GateError, match="share no device .*run: cuda:0; baseline: cpu"):
        compare_matrices(cuda, matrix)
    both = pd.concat([matrix, cuda], ignore_index=True)  # a GPU run with CPU rows: its CUDA rows set aside
    result = compare_matrices(both, matrix)
    assert result.passed and result.skipped_devices == ["cuda:0"]


# -- item 5: no live content ----------------------------------------------------------------------

EVIL = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "=HYPERLINK(\"http://x\",\"y\")",
        "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR", "'quoted", "''two", "[link](javascript:alert(1))",
        "![img](http://tracker/x.png)", "a | b", "`code`", "plain", ""]


def test_csv_text_cells_are_neutralised_and_read_back_losslessly(tmp_path):
    frame = pd.DataFrame({"note": EVIL, "impl": EVIL[::-1], "tol_ratio": [-1.5, 2.0, -0.0, 1e-300] * 4,
                          "step": [-1, 0, 1, -7] * 4})
    raw = csv_bytes(frame).decode()
    cells = [cell for line in raw.splitlines()[1:] for cell in line.split(",")]
    for cell in cells:
        cell = cell.lstrip('"')
        assert not cell.startswith(("=", "+", "@", "\t", "\r")) or cell.startswith("'")
    assert "\n-1.5," in raw.replace('"', "") or ",-1.5," in raw  # numbers stay numbers, unquoted
    path = tmp_path / "t.csv"
    path.write_bytes(raw.encode())
    back = read_csv(path, types={"note": "str", "impl": "str"})[0]
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert back["tol_ratio"].dtype == "float64" and back["step"].dtype == "int64"
    assert neutralise_frame(frame)["note"].iloc[2].startswith("'=")


def test_markdown_carries_no_html_and_no_links():
    for text in EVIL:
        shown = md_text(text)
        assert "<" not in shown and ">" not in shown
        assert "](" not in shown.replace("\\](", "")
        assert "|" not in shown.replace("\\|", "")
    assert md_fence("a ```` b") == "`````"


def test_a_report_with_hostile_names_has_no_live_content(records, tmp_path):
    from scratchnet_reference.reports.folder import write_reports

    hostile = "<script>alert(1)</script>"
    records[:6] = [dataclasses.replace(r, impl=hostile, note="=HYPERLINK(\"http://x\")", status="fail", passed=False,
                                       tol_ratio=5.0) for r in records[:6]]
    out = tmp_path / "r"
    write_reports(records, out, {"profile": "<img src=x onerror=alert(1)>", "impl": hostile,
                                 "errors": f"case: RuntimeError: {hostile} [x](javascript:alert(1))"})
    md = (out / "report.md").read_text()
    assert "<script>" not in md and "<img" not in md and "[x](javascript" not in md  # escaped brackets: not a link
    assert "&lt;script&gt;" in md and "&lt;img src=x" in md  # shown, as text
    for name in ("records.csv", "matrix.csv"):
        text = (out / name).read_text()
        assert ",=HYPERLINK" not in text and '"=HYPERLINK' not in text
    frame = read_csv(out / "records.csv")[0]
    assert (frame["impl"] == hostile).sum() == 6 and (frame["note"] == "=HYPERLINK(\"http://x\")").sum() == 6


# -- item 2 (last part): a full disk ------------------------------------------------------------------

def test_a_full_disk_is_named_with_the_folder(capsys, fast_run, tmp_path, monkeypatch):
    def full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_files, "atomic_write", full)
    out = tmp_path / "latest"
    code, _, err = fast_run(capsys, out)
    assert code == 2 and "Traceback" not in err
    assert "no space left to write" in err and f"into {out}/" in err and "No space left on device" in err
