"""Capability narrowing: a restricted implementation narrows the matrix to what it declares; the
rest is counted and listed as not implemented — never failed — in the run plan, the CLI's
summary and report files, and the pytest summary."""

from __future__ import annotations

import pytest
from scratchnet_reference import cli
from scratchnet_reference.conformance.runner import RunPlan, check_training, run_matrix, training_spec
from scratchnet_reference.core.capabilities import Capabilities
from scratchnet_reference.core.matrix import cases, training_configs
from scratchnet_reference.reports.files import read_csv

from .impls import RESTRICTED, UserImplementation, restricted


def test_the_plan_narrows_to_the_declared_capabilities():
    caps = Capabilities.from_declaration(RESTRICTED)
    plan = RunPlan(capabilities=caps)
    jobs, missing, every = plan.jobs(), plan.not_implemented(), plan.all_jobs()
    assert len(jobs) + len(missing) == len(every)
    run_cases = [args[0] for kind, args in jobs if kind == "case"]
    assert {(c.hidden, c.output, c.loss, c.reduction, c.dtype) for c in run_cases} == {
        (h, "softmax", "cross_entropy", "mean", "float64") for h in ("relu", "tanh")}
    assert [args[:3] for kind, args in jobs if kind == "training"] == [
        ("sgd", mode, "float64") for opt, mode in training_configs() if opt == "sgd"]
    assert {kind for kind, _ in jobs} == {"refusal", "case", "training"}  # refusals are scratchnet's: always run
    reasons = dict(((kind, str(args)), reason) for (kind, args), reason in missing)
    gelu = next(c for c in cases() if c.hidden == "gelu" and c.output == "softmax" and c.dtype == "float32")
    assert reasons[("case", str((gelu, "cpu")))].startswith("hidden activation gelu")
    assert reasons[("training", str(("adam", "stochastic", "float64", "cpu")))] == "optimizer adam"
    assert RunPlan().not_implemented() == [] and RunPlan().jobs() == RunPlan().all_jobs()  # scratchnet: everything


def test_training_runs_on_the_closest_model_the_implementation_has():
    caps = Capabilities.from_declaration({"hidden": ["sigmoid"], "outputs": ["identity"], "losses": ["mse"]})
    spec = training_spec("float64", caps)
    assert ([h["name"] for h in spec.hidden], spec.output["name"], spec.loss["name"]) == (["sigmoid"] * 2,
                                                                                           "identity", "mse")
    assert training_spec("float64").hidden[0]["name"] == "tanh"  # the default model is unchanged
    impl = UserImplementation("sigmoid-only", capabilities={"hidden": ["sigmoid"], "outputs": ["identity"],
                                                            "losses": ["mse"]})
    records = check_training(impl, "sgd", "full_batch", "float64", steps=3)
    assert records and all(r.status == "pass" for r in records) and {r.hidden for r in records} == {"sigmoid,sigmoid"}
    none = Capabilities.from_declaration({"optimizers": []})
    assert none.missing_for_training("sgd", "float64") == "optimizer sgd"


def test_not_implemented_error_from_build_is_not_a_failure():
    class PickyBuild(UserImplementation):
        def build(self, spec, state):
            if spec.hidden[0]["name"] == "tanh":
                raise NotImplementedError("tanh is next week")
            return super().build(spec, state)

    plan = RunPlan(capabilities=Capabilities.from_declaration(RESTRICTED), training=False)
    skipped: list = []
    records, _ = run_matrix(PickyBuild("picky"), plan, not_implemented=skipped)
    assert records and all(r.status == "pass" for r in records) and {r.hidden for r in records} == {"relu,relu"}
    raised = [(args[0].hidden, reason) for (kind, args), reason in skipped if reason.startswith("raised")]
    assert raised == [("tanh", "raised NotImplementedError: tanh is next week")]
    assert len(skipped) == len(plan.not_implemented()) + 1
    with pytest.raises(NotImplementedError):  # without a list to put it in, it propagates
        run_matrix(PickyBuild("picky"), plan)


def test_cli_run_counts_what_is_not_implemented_and_passes(capsys, tmp_path):
    out = tmp_path / "run"
    code = cli.main(["run", "--impl", "tests.byo.impls:restricted", "--quick", "--no-progress", "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    verdict = next(line for line in stdout.splitlines() if line.startswith("conformance: "))
    assert " 0 failed;" in verdict
    assert stdout.splitlines()[-1].startswith("next: nothing failed")
    assert "not implemented by restricted" in stdout and "matrix cases" in stdout and "training runs" in stdout
    matrix, meta = read_csv(out / "matrix.csv")
    assert set(matrix["impl"]) == {"restricted"} and set(matrix["output"]) == {"softmax"}
    assert "not implemented by restricted" in meta["not_implemented"] and meta["impl"] == "restricted"
    assert "outputs=softmax" in meta["capabilities"]
    listed, _ = read_csv(out / "not_implemented.csv")
    assert len(listed) > 100 and listed["not_implemented"].str.len().min() > 0
    assert "not_implemented" in (out / "report.md").read_text()  # in the report's header


def test_pytest_skips_and_counts_what_is_not_implemented(run_pytest):
    code, out = run_pytest("--pyargs", "scratchnet_reference.conformance.tests", "--scratchnet-impl",
                           "tests.byo.impls:restricted",
                           "-k", "relu and softmax-cross_entropy or sgd-full_batch")
    assert code == 0, out[-3000:]
    assert "tests skipped as not implemented by restricted" in out and "dtype float32" in out
    assert " failed" not in out.splitlines()[-1]


def test_restricted_factory_is_what_the_cli_loads():
    assert restricted().capabilities is RESTRICTED


def test_a_refused_diagnosis_variant_never_turns_a_failure_into_a_skip():
    """Under pytest, ``NotImplementedError`` from ``build`` skips the test — but the diagnosis's
    variants (here softmax + cross_entropy, which this implementation refuses) must not."""
    from _pytest.outcomes import Skipped
    from scratchnet_reference.conformance.plugin import GuardedImplementation, Recorder
    from scratchnet_reference.conformance.runner import check_case
    from scratchnet_reference.core.matrix import Case

    from .impls import wrong_and_picky

    recorder = Recorder("wrong-and-picky")
    guarded = GuardedImplementation(wrong_and_picky(), recorder)
    try:
        records = check_case(guarded, Case("tanh", "softmax", "mse", "mean", "float64"))
    except Skipped as exc:  # pragma: no cover - the regression this guards against
        pytest.fail(f"a diagnosis variant skipped the test: {exc}")
    failing = [r for r in records if r.status == "fail"]
    assert failing and all("yours = 8 × torch's = N" in r.diagnosis for r in failing if r.check == "gradient")
    assert recorder.not_implemented == []
    with pytest.raises(Skipped, match="not implemented by wrong-and-picky: cross_entropy is next week"):
        check_case(guarded, Case("tanh", "softmax", "cross_entropy", "mean", "float64"))


def test_layers_are_not_asked_of_an_implementation_that_does_not_declare_them():
    from scratchnet_reference.core.matrix import layered_cases

    case = next(layered_cases())
    assert "layer batch_norm" in Capabilities.from_declaration({"hidden": [case.hidden]}).missing_for_case(case)
    declared = Capabilities.from_declaration({"layers": ["batch_norm", "dropout"]})
    assert declared.missing_for_case(case) == "" and Capabilities.everything().missing_for_case(case) == ""
    assert Capabilities.from_declaration({"layers": ["dropout"]}).missing_layers("batch_norm+dropout") == \
        "layer batch_norm"
    plan = RunPlan(capabilities=Capabilities.from_declaration({"hidden": ["relu"]}))
    assert not [job for job in plan.jobs() if job[0] == "case" and job[1][0].after]
    assert not [job for job in plan.jobs() if job[0] == "training" and len(job[1]) > 4]
