"""The worked examples: the textbook network passes everything it declares; its copy with the
classic softmax mistake fails exactly where softmax is, and the report names the parameters, the
first wrong layer and the mistake — through the Python API, the CLI and pytest."""

from __future__ import annotations

import pytest
from scratchnet_reference import cli
from scratchnet_reference.conformance.runner import RunPlan, run_matrix
from scratchnet_reference.core.adapter import AdapterError, load_implementation
from scratchnet_reference.diagnosis.causes import decode
from scratchnet_reference.reports.files import read_csv

TEXTBOOK = "examples.textbook_net.adapter:make_implementation"
BUGGY = "examples.textbook_net_buggy.adapter:make_implementation"
MISTAKE = "softmax's derivative taken elementwise: δ = g ⊙ s(1 − s)"


def MISTAKE_AT(layers: str) -> tuple[str, str]:  # noqa: N802 - reads like the constant above
    return "softmax_s1s", f"layers.{layers} (softmax backward)"


def test_textbook_net_passes_everything_it_declares():
    impl, caps = load_implementation(TEXTBOOK)
    assert caps.outputs == {"sigmoid", "tanh", "relu", "identity", "softmax"} and caps.dtypes == {"float64"}
    plan = RunPlan(capabilities=caps)
    skipped: list = []
    records, _ = run_matrix(impl, plan, not_implemented=skipped)
    failed = [(r.check, r.param, r.hidden, r.output, r.loss, r.reduction) for r in records if r.status == "fail"]
    assert not failed
    assert {r.check for r in records} == {"forward", "loss", "gradient", "inputs", "training_step", "final_params"}
    assert {r.optimizer for r in records if r.optimizer} == {"sgd(lr=0.1)"}
    raised = {reason for _, reason in skipped if reason.startswith("raised")}
    assert raised == {"raised NotImplementedError: sigmoid + cross_entropy"}  # build's own refusal: not a failure


def test_buggy_copy_fails_where_softmax_is_and_names_the_mistake():
    impl, caps = load_implementation(BUGGY)
    plan = RunPlan(capabilities=caps, training=False,
                   case_filter=lambda c: c.hidden in ("tanh", "softmax") and c.reduction == "mean")
    records, _ = run_matrix(impl, plan, not_implemented=[])
    failing = [r for r in records if r.status == "fail"]
    assert failing and {r.check for r in failing} == {"gradient"}  # forward and loss are right
    softmax_used = {(r.hidden, r.output) for r in failing}
    assert all("softmax" in hidden or output == "softmax" for hidden, output in softmax_used)
    assert not [r for r in records if r.status == "fail" and r.output != "softmax" and "softmax" not in r.hidden]
    # softmax output: one root cause at the output layer, on every parameter
    at_output = [r for r in failing if r.output == "softmax" and r.hidden == "tanh,tanh"]
    assert {r.param for r in at_output} == {f"layers.{k}.{p}" for k in range(3) for p in ("weight", "bias")}
    for r in at_output:
        assert [(c.kind, c.where) for c in decode(r.diagnosis)] == [MISTAKE_AT('2')] and r.fd_verdict == "torch"
    # softmax in both hidden layers, identity output: layer 2 is right; the mistake enters at layer 1
    # and again at layer 0: one cause, the same function used twice
    hidden = [r for r in failing if r.hidden == "softmax,softmax" and r.output == "identity"]
    assert {r.param for r in hidden} == {f"layers.{k}.{p}" for k in (0, 1) for p in ("weight", "bias")}
    assert {(c.kind, c.where) for r in hidden for c in decode(r.diagnosis)} == {MISTAKE_AT('0, 1')}


def test_cli_report_of_the_buggy_copy(capsys, tmp_path):
    out = tmp_path / "buggy"
    code = cli.main(["run", "--impl", BUGGY, "--quick", "--dtype", "float64", "--no-training", "--no-progress",
                     "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 1
    assert stdout.startswith("architecture: 2 hidden layers, checked as 5-7-6-4 (default)\nroot causes")
    assert MISTAKE in " ".join(stdout.split())
    assert "1. layers.2 (softmax backward): softmax's derivative taken elementwise" in stdout
    assert "not implemented by textbook-net-buggy" in stdout
    gradients, _ = read_csv(out / "gradients.csv")
    wrong = gradients[gradients["status"] == "fail"]
    assert len(wrong) and wrong["diagnosis"].str.contains("s(1 − s)", regex=False).all()
    report = (out / "report.md").read_text()
    assert report.index("## Root causes") < report.index("## Summary")  # root causes first, the matrix follows
    assert "1. **layers.2 (softmax backward): softmax's derivative taken elementwise" in report
    # every failing row of the worst-gradients table points at its root cause by number
    worst = report.split("## Worst gradients", 1)[1].split("\n## ", 1)[0]
    failing_rows = [line for line in worst.splitlines() if "| fail " in line]
    assert failing_rows and all(line.rstrip(" |").rsplit("|", 1)[1].strip() == "1" for line in failing_rows), worst
    causes, _ = read_csv(out / "root_causes.csv")
    assert list(zip(causes["kind"], causes["where"])) == [MISTAKE_AT("2")]
    assert causes["reproducer"].str.len().gt(0).all()


def test_adapter_template_is_refused_until_filled_in():
    with pytest.raises(AdapterError, match="TODO: build your network in MyModel.__init__"):
        load_implementation("examples/adapter_template.py:make_implementation")


def test_textbook_net_under_pytest_from_the_installed_package(run_pytest):
    code, out = run_pytest("--pyargs", "scratchnet_reference.conformance.tests", "--scratchnet-impl", TEXTBOOK,
                           "-k", "relu-softmax")
    assert code == 0, out[-3000:]
    assert "comparisons of textbook-net" in out and "skipped as not implemented by textbook-net" in out


def test_hypothesis_finds_the_buggy_copy_and_the_summary_diagnoses_the_worst_example(run_pytest):
    code, out = run_pytest("tests/conformance/test_properties.py", "--scratchnet-impl", BUGGY,
                           "--scratchnet-max-examples", "3",
                           "-k", "softmax-cross_entropy and float64")
    assert code == 1, out[-3000:]
    summary = out.split("scratchnet conformance", 1)[1]
    assert "worst failing examples (hypothesis), fully diagnosed:" in summary
    assert "worst failing example (tol_ratio " in summary and "relu→softmax+cross_entropy(mean) float64" in summary
    assert MISTAKE in " ".join(summary.split())
