"""A root cause is a structured value: its place is built from fields, never parsed from text; it
survives a record's ``diagnosis`` field and the root-cause table on disk, and one mistake at
different layers (or named by substitution in one combination only) is one cause."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
from scratchnet_reference.diagnosis.causes import (
    RootCause,
    cause_numbers,
    cause_table_rows,
    decode,
    encode,
    group,
    summary_lines,
)

S1S = RootCause("softmax_s1s", "softmax's derivative taken elementwise", "equal on 28 of 28", "diag(s) − s sᵀ",
                op="softmax", part="backward", layers=(2,))


def record(causes, hidden="tanh,tanh"):
    return SimpleNamespace(status="fail", diagnosis=encode(causes), check="gradient", hidden=hidden,
                           output="softmax", loss="mse", reduction="mean", dtype="float64", device="cpu", optimizer="")


def test_a_cause_survives_the_diagnosis_field():
    factor = RootCause("factor", "yours = 2 × torch's", area="loss gradient (every layer)", factor=2.0)
    swapped = RootCause("kink", "relu's derivative wrong only at its kink", op="relu", part="backward",
                        layers=(0, 1), swapped=("relu", "relu_backward"))
    assert decode(encode([S1S, factor, swapped])) == [S1S, factor, swapped]
    assert [c.where for c in (S1S, factor, swapped)] == [
        "layers.2 (softmax backward)", "loss gradient (every layer)",
        "layers.0, 1 (relu backward) [your relu, relu_backward]"]
    assert decode("follows from step 3") == [RootCause("other", "follows from step 3")]


def test_one_mistake_at_several_layers_is_one_cause_with_every_layer():
    at_0_1 = RootCause(S1S.kind, S1S.what, op="softmax", part="backward", layers=(0, 1))
    [(cause, rows, combos)] = group([record([S1S]), record([at_0_1], hidden="softmax,softmax")])
    assert (cause.layers, rows, combos) == ((0, 1, 2), 2, 2)


def test_every_failing_row_gets_its_cause_number_also_from_the_table_read_back():
    """The merged cause (layers 0, 1, 2) still numbers a row whose own cause is at layer 2 only —
    from the table in memory and from the table as a CSV reader types it (layers 2 as a number)."""
    other = RootCause("factor", "yours = 2 × torch's", area="loss gradient (every layer)")
    records = [record([S1S]), record([RootCause(S1S.kind, S1S.what, op="softmax", part="backward", layers=(0, 1))],
                                     hidden="softmax,softmax"), record([S1S, other])]
    table = cause_table_rows(records)
    assert [(row["cause"], row["where"]) for row in table] == [(1, "layers.0, 1, 2 (softmax backward)"),
                                                               (2, "loss gradient (every layer)")]
    diagnoses = [r.diagnosis for r in records] + [""]
    assert cause_numbers(diagnoses, table) == ["1", "1", "1, 2", ""]
    read_back = pd.DataFrame(table).assign(layers=["0, 1, 2", float("nan")]).fillna("")
    assert cause_numbers(diagnoses, read_back.to_dict("records")) == ["1", "1", "1, 2", ""]
    single = pd.DataFrame(cause_table_rows([record([S1S])])).assign(layers=[2.0])  # a lone layer, read as a float
    assert cause_numbers([records[0].diagnosis], single.to_dict("records")) == ["1"]


def test_a_table_row_without_a_part_or_with_a_parameter_keeps_its_number():
    """A cause at layers with no step (``part`` empty) and a cause at one parameter are found again
    in the table: the row's empty ``part`` stays empty, its ``parameter`` stays the parameter."""
    no_part = RootCause("kink", "relu wrong at its kink", op="relu", layers=(0,))
    weight = RootCause("update", "weight not updated", parameter="layers.1.weight")
    records = [record([no_part]), record([weight])]
    table = cause_table_rows(records)
    assert sorted(cause_numbers([r.diagnosis for r in records], table)) == ["1", "2"]


def test_one_cause_under_two_optimizers_is_two_combinations():
    """The optimizer is part of a combination for a cause the row itself found."""
    [(_, rows, combos)] = group([record([S1S]), SimpleNamespace(**{**vars(record([S1S])), "optimizer": "adam"})])
    assert (rows, combos) == (2, 2)


def test_a_loss_value_cause_says_training_logs_it_not_that_training_breaks():
    """A wrong loss value moves no weight: a training run of the same model whose gradients differ
    is named as logging the loss, not as broken by it."""
    loss = RootCause("loss_value", "loss off by a factor", area="loss value")
    training = SimpleNamespace(**{**vars(record([RootCause("training_gradients", "gradients differ",
                                                           area="training: sgd")])),
                                  "check": "training_step", "optimizer": "sgd"})
    [(cause, rows, _)] = group([record([loss]), training])
    assert rows == 2
    assert cause.evidence == "lockstep training logs this loss too (sgd)"


def test_summary_lists_eight_causes_then_how_many_more_with_the_right_formula():
    causes = [RootCause("factor", f"yours = {k} × torch's", right="dL/dy = y − t", area=f"area {k}")
              for k in range(2, 11)]
    lines = summary_lines([record([c]) for c in causes])
    assert lines[-1] == "… 1 more root causes (see root_causes.csv)"
    assert sum(line[:1].isdigit() for line in lines) == 8
    assert "     right: dL/dy = y − t" in lines


def test_html_report_shows_each_detail_and_column_header_escaped():
    from scratchnet_reference.diagnosis.display import Cause, html_report
    out = html_report(title="t", ok=False, causes=[Cause("layers.0", "w", details=[("evidence", "a<b")])],
                      columns=["check<1>"], rows=[["FAIL"]], status_column=0)
    assert "<li><i>evidence</i>: a&lt;b</li>" in out
    assert "<th style='text-align: left; padding: 2px 8px;'>check&lt;1&gt;</th>" in out
