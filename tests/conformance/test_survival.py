"""``run --impl`` on user code that hangs, exits or raises anything: each is that job's named failure
and the run finishes; a run interrupted (Ctrl-C, SIGTERM) leaves an explicitly partial report that
the gate refuses and a person can read. The real command, in a subprocess, on adapters written the
way a learner's network misbehaves."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scratchnet_reference.reports.files import read_csv, verify_folder
from scratchnet_reference.reports.gate import GateError, gate
from scratchnet_reference.reports.journal import JOURNAL, read_journal

ROOT = Path(__file__).resolve().parents[2]

#: One adapter, four misbehaving (output, loss) pairs on the matrix's 5-7-6-4 network (the adapter's
#: validation builds 3-5-4-2 networks, which behave). Everything else is scratchnet, and passes.
MISBEHAVING = '''
import os, sys, time
from scratchnet_reference.core.protocol import ScratchnetImplementation


class LearnerStop(BaseException):
    pass


def deep_in_the_network(kind):
    if kind == "hang":
        while True:
            pass
    if kind == "sys_exit":
        sys.exit(3)
    if kind == "os_exit":
        os._exit(4)
    if kind == "base_exception":
        raise LearnerStop("my own BaseException")
    if kind == "slow":
        time.sleep(0.25)


KINDS = {("sigmoid", "mse"): "hang", ("softmax", "mse"): "sys_exit", ("tanh", "mse"): "os_exit",
         ("identity", "mse"): "base_exception"}


class Learner(ScratchnetImplementation):
    def __init__(self, slow=False):
        super().__init__(name="learner")
        self.slow = slow

    def build(self, spec, state):
        model = super().build(spec, state)
        kind = "slow" if self.slow else KINDS.get((spec.output["name"], spec.loss["name"]), "")
        if spec.sizes[0] != 5 or not kind:
            return model
        inner = model.loss_and_grads

        def loss_and_grads(x, y):
            deep_in_the_network(kind)
            return inner(x, y)
        model.loss_and_grads = loss_and_grads
        return model


def misbehaving():
    return Learner()


def slow():
    return Learner(slow=True)
'''

QUICK = ["--quick", "--dtype", "float64", "--no-training", "--no-progress"]


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("learner") / "learner_adapter.py"
    path.write_text(MISBEHAVING)
    return path


def _run(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scratchnet_reference", "run", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_hangs_exits_and_base_exceptions_are_named_failures_and_the_run_finishes(adapter, tmp_path):
    out = tmp_path / "report"
    start = time.monotonic()
    done = _run("--impl", f"{adapter}:misbehaving", *QUICK, "--timeout", "3", "--out", str(out))
    took = time.monotonic() - start
    assert done.returncode == 1, done.stdout + done.stderr  # failures, not a crash, not exit 3 or 4
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stdout.splitlines() if line.startswith("error: ")]
    expected = {"hang": "did not return within 3 s", "sys_exit": "called sys.exit(3)",
                "os_exit": "called os._exit(4)", "base_exception": "raised LearnerStop: my own BaseException"}
    pairs = {"hang": "sigmoid-mse", "sys_exit": "softmax-mse", "os_exit": "tanh-mse", "base_exception": "identity-mse"}
    for kind, words in expected.items():
        named = [e for e in errors if words in e]
        assert named, (kind, errors)
        assert all(f"-{pairs[kind]}-" in e and "in deep_in_the_network)" in e for e in named), named
    verify_folder(out)  # the report is complete: every other job ran
    matrix = read_csv(out / "matrix.csv")[0]
    failed = matrix[matrix["status"] == "fail"]
    assert set(zip(failed["output"], failed["loss"])) == {("sigmoid", "mse"), ("softmax", "mse"), ("tanh", "mse"),
                                                          ("identity", "mse")}
    assert (matrix[matrix["status"] != "fail"]["status"] == "pass").all() and len(failed) < len(matrix)
    hangs = (matrix["output"] == "sigmoid") & (matrix["loss"] == "mse")
    assert took < 300, f"{hangs.sum()} hanging rows took {took:.0f} s"
    assert not (out / JOURNAL).exists()  # a finished run keeps its records in records.csv


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_leaves_an_explicitly_partial_report(adapter, tmp_path, sig, code):
    out = tmp_path / "report"
    proc = subprocess.Popen([sys.executable, "-m", "scratchnet_reference", "run", "--impl", f"{adapter}:slow", *QUICK,
                             "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / JOURNAL).exists() and len(read_journal(out).jobs) >= 3:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, stdout + stderr
    assert "Traceback" not in stderr
    assert f"partial report written into {out}" in stdout + stderr
    manifest = verify_folder(out)  # sealed: a person can open it …
    meta = json.loads((out / "metadata.json").read_text())
    assert re.match(r"yes: \d+ of \d+ jobs", meta["partial"]), meta["partial"]
    assert "PARTIAL" in (out / "report.md").read_text().split("\n\n")[1]
    journal = read_journal(out)
    records = read_csv(out / "records.csv")[0]
    assert len(records) == len(journal.records) >= 3 and "records.csv" in manifest.files
    with pytest.raises(GateError, match="partial"):  # … and the gate refuses it
        gate(out, ROOT / "reports" / "baseline")


def test_the_progress_line_names_the_running_job():
    import io

    from scratchnet_reference.console import ProgressBar

    log = io.StringIO()
    bar = ProgressBar(20, stream=log, unit="jobs")
    for job in bar.wrap([f"job-{i}" for i in range(20)], label=lambda j: j):
        if job == "job-14":  # a job that hangs: the last line the log shows names it
            break
    lines = log.getvalue().splitlines()
    assert lines[-1].startswith("progress:  70% (14/20 jobs)") and lines[-1].endswith("; running job-14")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    bar = ProgressBar(3, stream=screen, unit="jobs")
    for job in bar.wrap(["a", "relu-sigmoid-mse-sum-float64 cpu", "c"], label=lambda j: j):
        if job.startswith("relu"):
            break
    assert screen.getvalue().split("\r")[-1].rstrip().endswith("running relu-sigmoid-mse-sum-float64 cpu")
