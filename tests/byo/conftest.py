"""Bring your own network: the adapter protocol, capability narrowing, the diagnosis patterns
and the worked examples. Skipped, with the install hint, where torch is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the reference harness needs PyTorch: "
                    "pip install -c constraints.txt 'scratchnet[reference]'")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_pytest(tmp_path):
    """``run_pytest(*args)`` → (exit code, output) of a pytest subprocess in the repository root,
    reports under ``tmp_path``."""
    def _run(*args: str, timeout: float = 240) -> tuple[int, str]:
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--scratchnet-report-dir",
               str(tmp_path / "pytest-reports"), *args]
        env = {**os.environ, "CI": "1", "PYTHONWARNINGS": "ignore"}
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
        return done.returncode, done.stdout + done.stderr
    return _run
