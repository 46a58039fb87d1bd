"""``python -m benchmarks.step --quick`` runs end to end and writes the table it documents.

A smoke test only: it checks files and columns, never a timing (performance lives in
``benchmarks/``, not in timed tests). It runs in a subprocess because the benchmark sets
torch's thread count, which must not leak into the other tests of this session.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pd = pytest.importorskip("pandas")

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_writes_csv_and_markdown_with_the_documented_columns(tmp_path):
    from benchmarks.step import COLUMNS, quick_matrix

    proc = subprocess.run([sys.executable, "-m", "benchmarks.step", "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr

    csv_path, md_path = tmp_path / "step_quick.csv", tmp_path / "step_quick.md"
    names = ["step_quick.csv", "step_quick.json", "step_quick.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # no temp files

    table = pd.read_csv(csv_path)  # a plain table
    assert list(table.columns) == COLUMNS
    assert len(table) == len(quick_matrix())
    assert table["threads"].ge(1).all()
    assert table[["scratch_us", "torch_us", "ratio", "products_us", "gflops", "peak_gflops"]].gt(0).all().all()
    assert table["check_abs_diff"].lt(1e-3).all()          # the two engines ran the same model

    measured_on = json.loads((tmp_path / "step_quick.json").read_text())
    for key in ("date", "git_commit", "python", "numpy", "torch", "numpy BLAS", "threads", "peak GFLOP/s"):
        assert measured_on.get(key), key
    markdown = md_path.read_text()
    table_header = next(line for line in markdown.splitlines() if line.startswith("|"))
    assert {c.strip() for c in table_header.strip("|").split("|")} == set(COLUMNS) - {"case"}
    assert "**threads**" in markdown


def test_epoch_benchmark_writes_its_table_with_fit_steps_torch_and_sklearn(tmp_path):
    pytest.importorskip("sklearn")
    from benchmarks.epoch import COLUMNS

    proc = subprocess.run([sys.executable, "-m", "benchmarks.epoch", "--steps", "3", "--batch", "16", "--blocks", "1",
                           "--threads", "1", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch.csv", "epoch.json", "epoch.md"]
    table = pd.read_csv(tmp_path / "epoch.csv")
    assert list(table.columns) == COLUMNS and len(table) == 1
    assert table[["fit_ms", "steps_ms", "products_ms", "torch_ms", "sklearn_ms", "fit_over_steps"]].gt(0).all().all()
    assert (table["n"] == 48).all() and (table["threads"] == 1).all()
    measured_on = json.loads((tmp_path / "epoch.json").read_text())
    for key in ("date", "git_commit", "cpu", "numpy BLAS", "load average"):
        assert measured_on.get(key), key


def test_profile_report_writes_every_configuration(tmp_path):
    from benchmarks.profile import REPORT

    command = [sys.executable, "-m", "benchmarks.profile", "--report", "--reps", "3", "--out", str(tmp_path)]
    proc = subprocess.run(command,
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["profile.md"]
    text = (tmp_path / "profile.md").read_text()
    assert "**git_commit**" in text and "**cpu**" in text
    for batch, threads in REPORT:
        assert f"b{batch} float32 relu softmax+cross_entropy sgd: {threads} BLAS thread(s)" in text
    assert text.count("step    net.train_step (whole)") == len(REPORT)
