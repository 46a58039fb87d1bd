"""Fixtures for the report, gate and CLI tests: one small real run (a few cases and a short
lockstep run, ~1 s after torch is imported), shared by the session, and helpers that plant
regressions into copies of its records."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from scratchnet_reference import ScratchnetImplementation
from scratchnet_reference.conformance.runner import RunPlan, check_training, run_matrix
from scratchnet_reference.core.records import Record
from scratchnet_reference.reports.files import MANIFEST, METADATA, ReportFolder, read_metadata
from scratchnet_reference.reports.folder import write_reports, write_tables

#: The small matrix: tanh hidden layers into softmax/sigmoid, mean reduction, both dtypes.
SMALL_OUTPUTS = ("softmax", "sigmoid")


def _small_case(case) -> bool:
    return case.hidden == "tanh" and case.output in SMALL_OUTPUTS and case.reduction == "mean"


@pytest.fixture(scope="session")
def small_records() -> list[Record]:
    impl = ScratchnetImplementation()
    records, _ = run_matrix(impl, RunPlan(training=False, case_filter=_small_case))
    for dtype in ("float64", "float32"):
        records += check_training(impl, "sgd_momentum", "mini_batch", dtype, steps=5)
    return records


def replace_in(records: list[Record], target: Record, **changes: object) -> Record:
    """``target`` with ``changes``, put in its place in ``records`` (records are frozen)."""
    index = next(i for i, r in enumerate(records) if r is target)
    records[index] = dataclasses.replace(target, **changes)
    return records[index]


@pytest.fixture
def records(small_records) -> list[Record]:
    """A fresh list per test, free to change (the records themselves are frozen)."""
    return list(small_records)


@pytest.fixture
def write(tmp_path) -> Callable[..., Path]:
    """``write(records, name)`` → a folder under ``tmp_path`` with the CSVs the gate reads
    (``render=True``: every report, plots included)."""
    def _write(recs: list[Record], name: str = "run", render: bool = False) -> Path:
        out = tmp_path / name
        (write_reports if render else write_tables)(recs, out, {"profile": "test"})
        return out
    return _write


@pytest.fixture(scope="session")
def rendered_dir(small_records, tmp_path_factory) -> Path:
    """Every report of the small run, written once (read-only for the tests: copy to change)."""
    out = tmp_path_factory.mktemp("rendered") / "report"
    write_reports(small_records, out, {"profile": "test", "seed": "0"})
    return out


@pytest.fixture
def baseline_dir(small_records, write) -> Path:
    return write(small_records, "baseline")


def reseal(folder: Path) -> Path:
    """Seal ``folder`` again over the files it holds now: a hand-edited folder that passes the
    manifest check, so that the gate's value checks are what a planted fault meets."""
    meta = read_metadata(folder)
    data = {p.name: p.read_bytes() for p in folder.iterdir()
            if p.is_file() and p.name not in (MANIFEST, METADATA) and not p.name.startswith(".")}
    with ReportFolder(folder, meta) as sealed:
        for name, raw in data.items():
            sealed.write_bytes(name, raw)
    return folder
