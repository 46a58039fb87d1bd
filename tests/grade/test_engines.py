"""The same grading on both engines: twice on the local process pool (identical grades.csv: the seeds
are fixed), and on a Dask ``LocalCluster`` started here (the same grades.csv again)."""

from __future__ import annotations

from pathlib import Path

import pytest
from scratchnet_reference.grade.command import grade_class
from scratchnet_reference.grade.course import load_course
from scratchnet_reference.grade.outputs import write_outputs

CLASS = Path(__file__).resolve().parents[2] / "examples" / "class"
#: a correct one, two with planted mistakes, one that calls sys.exit at import
SUBSET = ["alice_chen", "bob_okafor", "ken_sato.py", "olivia_grant"]


def grades(tmp_path: Path, name: str, **engine) -> bytes:
    course = load_course(CLASS / "course.toml")
    results = grade_class([CLASS / "submissions" / s for s in SUBSET], course, **engine)
    write_outputs(results, course, tmp_path / name)
    return (tmp_path / name / "grades.csv").read_bytes()


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> bytes:
    return grades(tmp_path_factory.mktemp("grade"), "first", workers=2)


def test_grading_twice_gives_the_same_grades_csv(first, tmp_path):
    assert b"bob_okafor,softmax_backward,fail,0,2," in first and b"olivia_grant,submission,exited" in first
    assert grades(tmp_path, "second", workers=2) == first


def test_the_same_grading_on_a_dask_local_cluster(first, tmp_path):
    distributed = pytest.importorskip("distributed", reason="Dask distributed is not installed "
                                                           "(pip install 'scratchnet[grade]')")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) \
            as cluster:
        assert grades(tmp_path, "dask", scheduler=cluster.scheduler_address) == first
