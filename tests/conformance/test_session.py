"""One conformance run behind both entry points: the records of the same jobs, collected in any
order (pytest, xdist workers) or executed by the ``run`` command, give the same tables; drawn
records stay out of the matrix."""

from __future__ import annotations

import json
import random

import pytest
from scratchnet_reference.conformance.runner import RunPlan, check_case, check_training
from scratchnet_reference.conformance.session import DRAWN_RECORDS, ConformanceRun
from scratchnet_reference.core.matrix import Case
from scratchnet_reference.core.protocol import ScratchnetImplementation

CASES = [Case("tanh", "softmax", "cross_entropy", "mean", "float64"),
         Case("relu", "sigmoid", "mse", "sum", "float32"),
         Case("elu", "identity", "huber", "mean", "float64")]
TRAINING = [("sgd", "full_batch", "float64", "cpu")]


def _texts(records) -> list[str]:
    """Records as JSON text: NaN fields compare equal (a record read back is another object)."""
    return [json.dumps(r.to_dict()) for r in records]


def _plan() -> RunPlan:
    return RunPlan(case_filter=lambda case: case in CASES)


def _jobs(plan: RunPlan) -> list:
    return [job for job in plan.jobs() if job[0] == "case" or (job[0] == "training" and job[1] in TRAINING)]


@pytest.fixture(scope="module")
def executed() -> ConformanceRun:
    plan = _plan()
    run = ConformanceRun(plan)
    run.execute(ScratchnetImplementation(), _jobs(plan))
    return run


def test_records_come_in_the_plans_order_whoever_added_them(executed, tmp_path):
    impl = ScratchnetImplementation()
    collected = ConformanceRun(_plan(), source="pytest")
    jobs = _jobs(collected.plan)
    random.Random(4).shuffle(jobs)
    for job in jobs:  # as pytest might run them, each test adding its job's records
        kind, args = job
        records = check_case(impl, *args) if kind == "case" else check_training(impl, *args)
        collected.add(records, job)
    drawn = check_case(impl, Case("gelu", "softmax", "mse", "mean", "float64"))
    collected.add(drawn)  # a property test's records: no job of the plan
    assert collected.records == executed.records and collected.drawn == drawn
    executed.write(tmp_path / "cli", render=False)
    collected.write(tmp_path / "pytest", render=False)
    for name in ("records.csv", "matrix.csv", "gradients.csv", "training.csv"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "pytest" / name).read_bytes(), name
    assert (tmp_path / "pytest" / f"{DRAWN_RECORDS}.csv").exists()
    assert not (tmp_path / "cli" / f"{DRAWN_RECORDS}.csv").exists()


def test_what_workers_collected_merges_into_one_run(executed):
    halves = [ConformanceRun(_plan()), ConformanceRun(_plan())]
    for i, (key, records) in enumerate(executed.by_job.items()):
        halves[i % 2].by_job[key] = records
    halves[1].refused("softmax + nll is refused")
    halves[1].skipped("test", "test_x[cpu]", "dtype float32")
    merged = ConformanceRun(_plan())
    for half in reversed(halves):
        merged.merge(json.loads(json.dumps(half.payload())))  # through JSON, as xdist sends it
    assert _texts(merged.records) == _texts(executed.records)
    assert merged.refusals == ["softmax + nll is refused"] and merged.jobs_run == executed.jobs_run + 1
    assert merged.not_implemented_summary() == "1 tests skipped as not implemented by scratchnet: dtype float32 (1)"


def test_a_job_that_raises_is_a_failing_row_and_an_error():
    class Broken:
        name = "broken"

        def build(self, spec, state):
            raise RuntimeError("no network today")

    plan = _plan()
    run = ConformanceRun(plan, impl_name="broken")
    run.execute(Broken(), _jobs(plan)[:1])
    assert run.failed and len(run.errors) == 1 and "no network today" in run.errors[0]
    assert {r.status for r in run.records} == {"fail"} and all("RuntimeError" in r.note for r in run.records)
    assert run.metadata()["errors"] == run.errors[0]
