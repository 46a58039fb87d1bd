"""A root cause is a structured value: its place is built from fields, never parsed from text; it
survives a record's ``diagnosis`` field and the root-cause table on disk, and one mistake at
different layers (or named by substitution in one combination only) is one cause."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
from scratchnet_reference.diagnosis.causes import RootCause, cause_numbers, cause_table_rows, decode, encode, group

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
