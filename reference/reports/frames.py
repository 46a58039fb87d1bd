"""The run's tables: the records of a run as pandas DataFrames, each one view of them.

* the **records** themselves (:func:`records_frame`, :func:`read_records`, :func:`records_from_frame`):
  one row per :class:`scratchnet_reference.core.records.Record`, columns in field order, typed by
  :mod:`~scratchnet_reference.reports.schema`;
* the **conformance matrix** (:func:`conformance_matrix`) — one row per compared combination:
  ``kind="case"`` rows are hidden × output × loss × reduction × flavour × dtype × device;
  ``kind="training"`` rows are the lockstep training runs, optimizer × GD mode × dtype × device
  (their model columns say what was trained); ``kind="fit"`` rows are scratchnet's own ``Network.fit``
  in lockstep (:mod:`scratchnet_reference.core.fit_lockstep`), optimizer × GD mode × dtype × device.
  Columns: the worst ``tol_ratio`` of each check
  (``forward_ratio``, ``loss_ratio``, ``gradient_ratio``, ``training_ratio``), the record counts
  and ``status`` (``fail`` when any record failed, else ``unverified`` when a record had no oracle
  to judge it, else ``pass``). ``unverified`` records are counted but kept out of the worst ratios;
  ``n_by_oracle`` says who judged the row's records (``torch=10 torch_fused=4``);
* the **gradient-diff report** (:func:`gradient_report`) — one row per combination × parameter, with
  the ``diagnosis`` of a failing one, and the **root causes** (:func:`root_cause_table`) it names;
* the **training-curve report** (:func:`training_report`) — one row per training step: both
  losses, their difference, the parameter distance and the first step the tolerance broke.

pandas is imported by the report package and the CLI only — never by ``scratchnet``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..core.records import Record
from ..diagnosis.causes import COLUMNS as ROOT_CAUSE_COLUMNS
from ..diagnosis.causes import STRUCTURED_COLUMNS, cause_table_rows
from ..diagnosis.causes import cause_numbers as _cause_numbers
from .files import read_csv
from .schema import (
    COLUMN_TYPES,
    CURVE_COLUMNS,
    GRADIENT_COLUMNS,
    KEY_COLUMNS,
    MATRIX_COLUMNS,
    PANDAS_TYPES,
    RATIO_COLUMNS,
    RECORD_REQUIRED,
    RECORD_TYPES,
    TRAINING_COLUMNS,
)

__all__ = ["CHECK_COLUMN", "TRAINING_CHECKS", "FIT_CHECKS", "typed", "records_frame", "records_from_frame",
           "read_records", "conformance_matrix", "oracle_counts", "oracle_table", "gradient_report",
           "root_cause_table", "cause_numbers", "training_report", "row_label"]

#: check -> the matrix column holding its worst tol_ratio
CHECK_COLUMN = {"forward": "forward_ratio", "loss": "loss_ratio", "gradient": "gradient_ratio",
                "training_step": "training_ratio", "final_params": "training_ratio",
                "fit_step": "training_ratio", "fit_epoch": "training_ratio"}
TRAINING_CHECKS = ("training_step", "final_params")
#: The checks of ``Network.fit`` in lockstep (:mod:`scratchnet_reference.core.fit_lockstep`): matrix kind ``fit``.
FIT_CHECKS = ("fit_step", "fit_epoch")


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every column of :data:`~scratchnet_reference.reports.schema.COLUMN_TYPES` in its type."""
    return frame.astype({c: PANDAS_TYPES[COLUMN_TYPES[c]] for c in frame.columns if c in COLUMN_TYPES})


def records_frame(records: Iterable[Record | Mapping[str, Any]]) -> pd.DataFrame:
    """One row per record, columns in :class:`Record` field order, typed (str/int/float/bool)."""
    names = Record.columns()
    rows = [[getattr(r, n) for n in names] if isinstance(r, Record) else [r[n] for n in names] for r in records]
    return typed(pd.DataFrame(rows, columns=names))


def records_from_frame(frame: pd.DataFrame) -> list[Record]:
    """The records back from :func:`records_frame` or :func:`read_records` (fields the frame lacks,
    e.g. from an older file, take their defaults)."""
    names = [n for n in Record.columns() if n in frame.columns]
    out = []
    for row in frame[names].itertuples(index=False):
        values = {}
        for name, value in zip(names, row, strict=True):
            kind = RECORD_TYPES.get(name)
            values[name] = (float(value) if kind == "float" else int(value) if kind == "int"
                            else bool(value) if kind == "bool" else str(value))
        out.append(Record(**values))
    return out


def read_records(path: str | os.PathLike[str]) -> pd.DataFrame:
    """``records.csv`` as the DataFrame :func:`records_frame` made (bit-exact floats)."""
    return read_csv(path, required=RECORD_REQUIRED, types=RECORD_TYPES)[0]


def _kind(checks: pd.Series) -> np.ndarray:
    return np.where(checks.isin(TRAINING_CHECKS), "training", np.where(checks.isin(FIT_CHECKS), "fit", "case"))


def conformance_matrix(records: pd.DataFrame) -> pd.DataFrame:
    """The conformance matrix (see the module docstring), sorted by its key."""
    if records.empty:
        return typed(pd.DataFrame(columns=MATRIX_COLUMNS))
    d = records.assign(kind=_kind(records["check"]),
                       ratio=records["tol_ratio"].where(records["status"] != "unverified"),
                       ratio_column=records["check"].map(CHECK_COLUMN).fillna("other_ratio"),
                       failed=records["status"] == "fail",
                       unverified=records["status"] == "unverified",
                       fail_step=records["step"].where((records["status"] == "fail")
                                                       & (records["check"] == "training_step")))
    key = list(KEY_COLUMNS)
    grouped = d.groupby(key, sort=True, dropna=False)
    out = grouped.agg(worst_ratio=("ratio", "max"), n_records=("check", "size"), n_failed=("failed", "sum"),
                      n_unverified=("unverified", "sum"), first_break_step=("fail_step", "min"),
                      n_by_oracle=("oracle", _oracle_counts))
    ratios = d.groupby([*key, "ratio_column"], sort=True, dropna=False)["ratio"].max().unstack("ratio_column")
    out = out.join(ratios.reindex(columns=list(RATIO_COLUMNS)))
    out["first_break_step"] = out["first_break_step"].fillna(-1)
    out["status"] = np.where(out["n_failed"] > 0, "fail", np.where(out["n_unverified"] > 0, "unverified", "pass"))
    return typed(out.reset_index()[list(MATRIX_COLUMNS)])


def _oracle_counts(oracles: pd.Series) -> str:
    """``"torch=10 torch_fused=4"``: records per oracle (unverified records have none)."""
    counts = oracles[oracles != ""].value_counts().sort_index()
    return " ".join(f"{name}={n}" for name, n in counts.items())


def oracle_counts(matrix: pd.DataFrame) -> pd.DataFrame:
    """Records per oracle over the whole matrix (from ``n_by_oracle``), plus the unverified ones."""
    counts: dict[str, int] = {}
    for cell in matrix.get("n_by_oracle", pd.Series(dtype=str)).fillna(""):
        for item in str(cell).split():
            name, _, n = item.partition("=")
            counts[name] = counts.get(name, 0) + int(n)
    if "n_unverified" in matrix:
        counts["unverified (no oracle)"] = int(matrix["n_unverified"].sum())
    return pd.DataFrame({"oracle": list(counts), "records": list(counts.values())})


def oracle_table(records: pd.DataFrame) -> pd.DataFrame:
    """Records per oracle and status (``oracle`` blank: unverified) — who judged the run."""
    if records.empty:
        return pd.DataFrame(columns=["oracle", "status", "records"])
    return (records.assign(oracle=records["oracle"].replace("", "(none)"))
            .groupby(["oracle", "status"], sort=True).size().rename("records").reset_index())


def gradient_report(records: pd.DataFrame) -> pd.DataFrame:
    """One row per combination × parameter gradient: errors, cosine, norm ratio, worst index, the
    finite-difference verdict (``both``/``impl``/``torch``/``neither``; blank when not run) and the
    diagnosis of a failing gradient (blank when it passed)."""
    g = records[records["check"] == "gradient"]
    return typed(g[list(GRADIENT_COLUMNS)].reset_index(drop=True))


def root_cause_table(records: pd.DataFrame) -> pd.DataFrame:
    """The distinct root causes of the failing records (:func:`scratchnet_reference.diagnosis.causes.group`),
    numbered from 1 in the order the reports list them: most failing rows first; the rendered
    columns, then the structured ones (:func:`~scratchnet_reference.diagnosis.causes.cause_table_rows`)."""
    rows = cause_table_rows(records.itertuples(index=False))
    return pd.DataFrame(rows, columns=["cause", *ROOT_CAUSE_COLUMNS, *STRUCTURED_COLUMNS]).astype(
        {"cause": "int64", "failing_rows": "int64", "combinations": "int64"})


def cause_numbers(gradients: pd.DataFrame, causes: pd.DataFrame) -> pd.Series:
    """A failing gradient's diagnosis as the numbers of its root causes (``"1, 2"``): each cause's
    words are shown once, in the root-cause list."""
    return pd.Series(_cause_numbers(gradients["diagnosis"], causes.to_dict("records")), index=gradients.index,
                     dtype=object)


def training_report(records: pd.DataFrame) -> pd.DataFrame:
    """One row per lockstep training step: the implementation's loss (``loss_actual``) and torch's
    (``loss_expected``) before the update, their absolute and relative difference, the largest
    parameter difference after it (``param_distance``), the step's ``tol_ratio`` (loss and
    parameters) and, per curve, the first step whose tolerance broke (−1: none)."""
    t = records[records["check"] == "training_step"]
    t = t.assign(loss_actual=t["actual_value"], loss_expected=t["expected_value"], abs_diff=t["max_abs_err"],
                 rel_diff=t["max_rel_err"], fail_step=t["step"].where(t["status"] == "fail"))
    if t.empty:
        return typed(pd.DataFrame(columns=TRAINING_COLUMNS))
    first = t.groupby(list(CURVE_COLUMNS), sort=False, dropna=False)["fail_step"].transform("min")
    t = t.assign(first_break_step=first.fillna(-1))
    return typed(t[list(TRAINING_COLUMNS)].reset_index(drop=True))


def row_label(row: Mapping[str, Any]) -> str:
    """A matrix row in words: ``tanh,tanh → softmax + cross_entropy (mean, fused)`` or
    ``adam(lr=0.01) mini_batch``."""
    if row.get("kind") == "training" or row.get("optimizer"):
        return f"{row['optimizer']} {row['gd_mode']}"
    return f"{row['hidden']} → {row['output']} + {row['loss']} ({row['reduction']}, {row['flavour']})"
