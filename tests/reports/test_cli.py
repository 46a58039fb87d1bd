"""``scratchnet-conformance`` / ``python -m scratchnet_reference``: exit codes, one-line errors, the main
job on a small subset, re-rendering, the gate and baseline promotion."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from scratchnet_reference import cli
from scratchnet_reference.conformance import run as conformance_run
from scratchnet_reference.conformance.session import ConformanceRun
from scratchnet_reference.reports.commands import BASELINE_FILES
from scratchnet_reference.reports.files import ReportFolder, read_csv
from scratchnet_reference.reports.gate import gate

from .conftest import replace_in

ROOT = Path(__file__).resolve().parents[2]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("argv, expected", [
    ([], "required"),
    (["frobnicate"], "invalid choice"),
    (["run", "--dtype", "float16"], "--dtype"),
    (["run", "--fd", "sometimes"], "--fd"),
    (["run", "--no-such-option"], "unrecognized arguments"),
    (["gate", "--factor", "0.5"], "--factor"),
    (["gate", "--factor", "ten"], "--factor"),
    (["gate", "--floor", "-1"], "--floor"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, argv, expected):
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert expected in _one_line_error(err)


def test_missing_folders_exit_2_with_one_line(capsys, tmp_path, small_records, write):
    missing = str(tmp_path / "missing")
    for argv in (["report", missing], ["gate", missing, missing], ["baseline", missing, "--to", str(tmp_path / "b")]):
        code, _, err = _run(capsys, *argv)
        assert code == 2, argv
        assert "missing" in _one_line_error(err)
    (tmp_path / "empty").mkdir()
    code, _, err = _run(capsys, "report", str(tmp_path / "empty"))
    assert code == 2 and "has no manifest.json" in _one_line_error(err)
    code, _, err = _run(capsys, "gate", str(write(small_records)), str(tmp_path / "empty"))
    assert code == 2 and "baseline" in _one_line_error(err)


def test_cuda_device_without_cuda_exits_2(capsys):
    from scratchnet_reference.core.torch_import import available_devices

    if "cuda" in available_devices():
        pytest.skip("this machine has CUDA")
    code, _, err = _run(capsys, "run", "--device", "cuda")
    assert code == 2 and "CUDA is not available" in _one_line_error(err)
    code, _, err = _run(capsys, "run", "--device", "tpu")
    assert code == 2 and "--device" in _one_line_error(err)


def test_corrupt_baseline_exits_2(capsys, small_records, write, baseline_dir):
    path = baseline_dir / "matrix.csv"
    path.write_text(path.read_text()[:-200])
    code, _, err = _run(capsys, "gate", str(write(small_records)), str(baseline_dir))
    assert code == 2 and "corrupt" in _one_line_error(err)


def test_gate_exit_codes_and_offender_table(capsys, records, baseline_dir, write):
    code, out, _ = _run(capsys, "gate", str(write(records)), str(baseline_dir))
    assert code == 0
    assert out.splitlines()[-1].startswith("gate: ") and out.splitlines()[-1].endswith(" passed, 0 failed")
    target = next(r for r in records if r.check == "loss" and r.output == "softmax" and r.dtype == "float64")
    target = replace_in(records, target, tol_ratio=9.0, status="fail", passed=False)
    code, out, _ = _run(capsys, "gate", str(write(records, "bad")), str(baseline_dir))
    assert code == 1
    assert "pass → fail" in out and f"tanh,tanh → softmax + {target.loss}" in out
    assert out.splitlines()[-1].endswith(" passed, 1 failed")


def test_run_quick_writes_reports_then_gate_and_baseline(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(conformance_run, "QUICK_HIDDEN", ("relu",))
    out_dir = tmp_path / "latest"
    code, out, err = _run(capsys, "run", "--quick", "--dtype", "float64", "--no-training", "--out", str(out_dir),
                          "--profile", "smoke")
    assert code == 0, out + err
    assert "progress: 100%" in err  # not a terminal: one line per 10 %
    # the report phase shows its progress too, file by file, and the run ends by saying where to look
    writing = next(line for line in err.splitlines() if line.startswith("writing reports into "))
    assert "tables … plots … report.md … report.html … writing files (" in writing
    lines = out.splitlines()
    assert lines[-1] == (f"next: python -m scratchnet_reference gate {out_dir} reports/baseline   (the regression "
                         "gate CI runs; it expects a full run, not --quick)")
    assert lines[-2] == f"open: {(out_dir / 'report.html').resolve()}"
    # one unit in the verdict (matrix rows), and the progress bar's jobs accounted for
    matrix_rows = len(read_csv(out_dir / "matrix.csv")[0])
    jobs = int(err.split("progress: 100% (")[1].split("/")[0])
    assert lines[-4].startswith(f"conformance: {matrix_rows:,} of {matrix_rows:,} matrix rows passed, 0 failed;")
    assert lines[-3].startswith(f"  (the progress bar counted {jobs:,} jobs: ")
    assert f"→ {matrix_rows:,} rows (one per torch flavour compared)" in lines[-3]  # no training: all rows are cases
    matrix, meta = read_csv(out_dir / "matrix.csv")
    # QUICK_HIDDEN alone: dense relu layers, with and without the batch-norm / dropout variants after them
    hidden = set(matrix["hidden"])
    layers = [layer for h in hidden for layer in h.split(" [")[0].split(",")]
    assert "relu,relu" in hidden and {layer.split("+")[0] for layer in layers} == {"relu"}, hidden
    assert set(matrix["dtype"]) == {"float64"}
    assert meta["profile"] == "smoke" and "quick=yes" in meta["plan"] and float(meta["wall_time_s"]) > 0
    assert (out_dir / "report.html").exists() and (out_dir / "heatmap.png").exists()

    baseline = tmp_path / "baseline"
    code, out, _ = _run(capsys, "baseline", str(out_dir), "--to", str(baseline))
    assert code == 0 and "promoted" in out
    assert sorted(p.name for p in baseline.iterdir()) == sorted([*BASELINE_FILES, "manifest.json", "metadata.json",
                                                                  ".scratchnet-baseline"])  # marked as a baseline
    assert gate(out_dir, baseline).passed
    # promoting again replaces the folder whole and leaves nothing behind
    (baseline / "stale.txt").write_text("from an older baseline")
    code, _, _ = _run(capsys, "baseline", str(out_dir), "--to", str(baseline), "--all")
    assert code == 0 and not (baseline / "stale.txt").exists() and (baseline / "records.csv").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    code, out, _ = _run(capsys, "report", str(out_dir))
    assert code == 0 and "re-rendered" in out


def test_interrupted_promotion_keeps_the_old_baseline(capsys, tmp_path, monkeypatch, rendered_dir):
    report = tmp_path / "report"
    shutil.copytree(rendered_dir, report)
    baseline = tmp_path / "baseline"
    assert _run(capsys, "baseline", str(report), "--to", str(baseline))[0] == 0
    before = {p.name: p.read_bytes() for p in baseline.iterdir()}

    def broken_copy(self, name, data, rows=None):
        raise OSError("disk full")

    monkeypatch.setattr(ReportFolder, "write_bytes", broken_copy)
    with pytest.raises(OSError):
        cli.main(["baseline", str(report), "--to", str(baseline)])
    assert {p.name: p.read_bytes() for p in baseline.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_baseline_never_promotes_onto_itself(capsys, baseline_dir):
    code, _, err = _run(capsys, "baseline", str(baseline_dir), "--to", str(baseline_dir))
    assert code == 2 and "same folder" in _one_line_error(err)


def test_a_job_that_raises_becomes_a_failing_row():
    from scratchnet_reference.conformance.runner import RunPlan
    from scratchnet_reference.core.matrix import Case
    from scratchnet_reference.reports.frames import conformance_matrix, records_frame

    class Broken:
        name = "broken"

        def build(self, spec, state):
            raise RuntimeError("no network today")

    jobs = [("case", (Case("tanh", "softmax", "cross_entropy", "mean", "float64"), "cpu")),
            ("training", ("sgd", "full_batch", "float64", "cpu"))]
    run = ConformanceRun(RunPlan(), impl_name="broken")
    run.execute(Broken(), jobs)
    assert len(run.errors) == 2 and "no network today" in run.errors[0] and run.failed
    matrix = conformance_matrix(records_frame(run.records))
    assert (matrix["status"] == "fail").all() and set(matrix["kind"]) == {"case", "training"}
    assert set(matrix[matrix["kind"] == "case"]["flavour"]) == {"modular", "fused"}


def test_python_dash_m_reference_is_the_cli():
    done = subprocess.run([sys.executable, "-m", "reference", "gate", "--factor", "x"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--factor" in done.stderr
    assert "Traceback" not in done.stderr


# -- output folders checked before any work ------------------------------------------------------

def _no_work(*args, **kwargs):
    raise AssertionError("the command started working before checking its output folder")


@pytest.mark.parametrize("where", ["a_file", "under_a_file", "unwritable"])
@pytest.mark.parametrize("command", ["run", "study", "baseline"])
def test_a_bad_output_folder_exits_2_before_the_work(capsys, tmp_path, monkeypatch, rendered_dir, command, where):
    from scratchnet_reference.study import command as study_command

    monkeypatch.setattr(ConformanceRun, "execute", _no_work)
    monkeypatch.setattr(study_command, "run_study", _no_work)
    blocker = tmp_path / "a-file.txt"
    blocker.write_text("not a folder\n")
    target = {"a_file": blocker, "under_a_file": blocker / "reports", "unwritable": tmp_path / "locked" / "out"}[where]
    if where == "unwritable":
        (tmp_path / "locked").mkdir()
        real_access = os.access
        # as root every folder is writable to os.access, so the permission is denied by the test itself
        monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path / "locked"
                            else real_access(p, mode))
    option = "--to" if command == "baseline" else "--out"
    argv = {"run": ["run", "--quick", "--no-training", "--out", str(target)],
            "study": ["study", "--quick", "--out", str(target)],
            "baseline": ["baseline", str(rendered_dir), "--to", str(target)]}[command]
    code, _, err = _run(capsys, *argv)
    line = _one_line_error(err)
    assert code == 2 and f"{command}: {option} {target}: " in line
    assert {"a_file": "is a file, not a folder", "under_a_file": f"{blocker} is a file, so",
            "unwritable": "permission denied"}[where] in line
    assert blocker.read_text() == "not a folder\n"


def test_run_out_a_file_from_the_shell_is_one_line_and_exit_2(tmp_path):
    blocker = tmp_path / "out.csv"
    blocker.write_text("x\n")
    done = subprocess.run([sys.executable, "-m", "scratchnet_reference", "run", "--out", str(blocker)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert _one_line_error(done.stderr) == f"error: scratchnet-conformance run: --out {blocker}: {blocker} is a " \
                                           "file, not a folder"
