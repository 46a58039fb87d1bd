"""The short views a report page shows, each a DataFrame built from the run's tables
(:mod:`~scratchnet_reference.reports.frames`), and how their cells are shown: the per kind × device
× dtype summary, the failing rows, the worst rows, one row per training curve, the worst gradients
with the numbers of the root causes that explain them, and the root causes as numbered items. The
Markdown page, the HTML page and the terminal summary of ``run`` share them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .frames import cause_numbers, root_cause_table, row_label
from .schema import CURVE_COLUMNS, RATIO_COLUMNS

__all__ = ["fmt", "formatter", "summary_table", "failures_table", "parameters_table", "worst_table", "curves_table",
           "worst_gradients", "cause_items"]


def fmt(x: Any) -> str:
    if isinstance(x, float | np.floating):
        return "—" if math.isnan(x) else f"{x:.2e}"
    return str(x)


def _fmt_long(x: Any) -> str:
    return "—" if pd.isna(x) else f"{x:.10g}"


def _fmt_step(x: Any) -> str:
    return "—" if pd.isna(x) or x < 0 else str(int(x))


def formatter(column: str):
    """How a column is shown: losses with 10 digits, steps with "—" for never (−1), else :func:`fmt`."""
    if column in ("loss_actual", "loss_expected"):
        return _fmt_long
    if column == "first_break_step":
        return _fmt_step
    return fmt


def summary_table(matrix: pd.DataFrame) -> pd.DataFrame:
    """Per kind × device × dtype: rows, passed, failed, worst ratio per check."""
    if matrix.empty:
        return pd.DataFrame(columns=["kind", "device", "dtype", "rows", "passed", "failed", *RATIO_COLUMNS])
    g = matrix.groupby(["kind", "device", "dtype"], sort=True)
    out = g.agg(rows=("status", "size"), passed=("status", lambda s: int((s == "pass").sum())),
                failed=("status", lambda s: int((s == "fail").sum())),
                **{c: (c, "max") for c in RATIO_COLUMNS})
    return out.reset_index()


def _labelled(matrix: pd.DataFrame) -> pd.DataFrame:
    labels = [row_label(r) for r in matrix.to_dict("records")]
    return matrix.assign(row=labels)


def failures_table(matrix: pd.DataFrame) -> pd.DataFrame:
    cols = ["kind", "row", "dtype", "device", *RATIO_COLUMNS, "n_failed", "first_break_step"]
    return _labelled(matrix[matrix["status"] == "fail"])[cols]


def parameters_table(records: pd.DataFrame, n: int = 12) -> pd.DataFrame:
    """Each compared tensor of the first ``n`` failing case rows, pass or fail: one row per matrix
    row, one column per tensor (``inputs``, ``output``, ``loss``, then each layer's weight and bias in
    order). A failure names the batches it fails on when not all of them (``fail: large_logits``)."""
    cases = records[records["check"].isin(["inputs", "forward", "loss", "gradient"])] if len(records) else records
    key = ["hidden", "output", "loss", "reduction", "flavour", "dtype", "device"]
    if cases.empty or not (cases["status"] == "fail").any():
        return pd.DataFrame(columns=["row"])
    cases = cases.assign(tensor=np.where(cases["check"] == "gradient", cases["param"],
                                         np.where(cases["check"] == "forward", "output", cases["check"])))
    failing = cases[cases["status"] == "fail"][key].drop_duplicates().head(n)
    order = ["inputs", "output", "loss", *sorted(
        {t for t in cases["tensor"] if t.startswith("layers.")},
        key=lambda t: (int(t.split(".")[1]), t.split(".")[2] != "weight"))]
    rows = []
    for values in failing.itertuples(index=False):
        mine = cases[(cases[key] == pd.Series(values, index=key)).all(axis=1)]
        row = {"row": row_label(dict(zip(key, values, strict=True)))}
        for tensor in order:
            these = mine[mine["tensor"] == tensor]
            bad = list(dict.fromkeys(these.loc[these["status"] == "fail", "batch"]))
            every = list(dict.fromkeys(these["batch"]))
            row[tensor] = ("—" if these.empty else "pass" if not bad else
                           "fail" if len(bad) == len(every) else "fail: " + ", ".join(b or "?" for b in bad))
        rows.append(row)
    return pd.DataFrame(rows, columns=["row", *order])


def worst_table(matrix: pd.DataFrame, n: int, kind: str = "case") -> pd.DataFrame:
    m = matrix[matrix["kind"] == kind].sort_values("worst_ratio", ascending=False, kind="stable").head(n)
    return _labelled(m)[["row", "dtype", "device", *RATIO_COLUMNS, "status"]]


def curves_table(training: pd.DataFrame) -> pd.DataFrame:
    """One row per training curve: steps, last losses on both sides, worst ratio, first break."""
    if training.empty:
        return pd.DataFrame(columns=["optimizer", "gd_mode", "dtype", "device", "steps", "loss_actual",
                                     "loss_expected", "max_param_distance", "worst_ratio", "first_break_step"])
    g = training.groupby(list(CURVE_COLUMNS), sort=False, dropna=False)
    out = g.agg(steps=("step", "size"), loss_actual=("loss_actual", "last"), loss_expected=("loss_expected", "last"),
                max_param_distance=("param_distance", "max"), worst_ratio=("tol_ratio", "max"),
                first_break_step=("first_break_step", "first")).reset_index()
    model = out["hidden"] + " → " + out["output"] + " + " + out["loss"]
    cols = ["optimizer", "gd_mode", "dtype", "device", "steps", "loss_actual", "loss_expected",
            "max_param_distance", "worst_ratio", "first_break_step"]
    if model.nunique() > 1:
        out = out.assign(model=model)
        cols.insert(0, "model")
    return out[cols]


def worst_gradients(gradients: pd.DataFrame, n: int, causes: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ``n`` worst gradients; ``root cause`` holds the numbers of the causes that explain each."""
    g = gradients.sort_values("tol_ratio", ascending=False, kind="stable").head(n)
    g = g.assign(kind="case", **{"root cause": cause_numbers(g, causes if causes is not None else
                                                                root_cause_table(gradients))})
    return _labelled(g)[["row", "dtype", "device", "param", "max_abs_err", "max_rel_err", "tol_ratio", "cosine",
                         "norm_ratio", "worst_index", "fd_verdict", "status", "root cause"]]


def cause_items(causes: pd.DataFrame) -> list[tuple[int, str, list[tuple[str, str]], str]]:
    """``(number, headline, [(label, text)], reproducer)`` of each root cause."""
    out = []
    for c in causes.itertuples(index=False):
        head = f"{c.where}: {c.what}" if c.where else c.what
        rows = "row" if c.failing_rows == 1 else "rows"
        details = [("explains", f"{c.failing_rows} failing {rows} in {c.combinations} combination"
                                f"{'s' if c.combinations != 1 else ''}"),
                   ("evidence", c.evidence), ("right", c.right)]
        out.append((c.cause, head, [(k, v) for k, v in details if v], c.reproducer))
    return out
