"""Comparison reports: the records of a run as pandas tables, written as CSV, Markdown, HTML and PNG.

Three views of the records (:class:`scratchnet_reference.core.records.Record`), each one DataFrame:

* the **conformance matrix** (:func:`conformance_matrix`) — one row per compared combination:
  ``kind="case"`` rows are hidden × output × loss × reduction × flavour × dtype × device;
  ``kind="training"`` rows are the lockstep training runs, optimizer × GD mode × dtype × device
  (their model columns say what was trained); ``kind="fit"`` rows are scratchnet's own ``Network.fit``
  in lockstep (:mod:`scratchnet_reference.core.fit_lockstep`), optimizer × GD mode × dtype × device.
  Columns: the worst ``tol_ratio`` of each check
  (``forward_ratio``, ``loss_ratio``, ``gradient_ratio``, ``training_ratio``), the record counts
  and ``status`` (``fail`` when any record failed, else ``unverified`` when a record had no oracle
  to judge it, else ``pass``). ``unverified`` records are counted but kept out of the worst ratios;
  ``n_by_oracle`` says who judged the row's records (``torch=10 torch_fused=4``).
* the **gradient-diff report** (:func:`gradient_report`) — one row per combination × parameter, with
  the ``diagnosis`` of a failing one (its root causes, :mod:`scratchnet_reference.core.root_causes`).
* the **training-curve report** (:func:`training_report`) — one row per training step: both
  losses, their difference, the parameter distance and the first step the tolerance broke.

:func:`write_reports` writes them with the raw records into a folder as plain CSVs (every file
atomically; the run's metadata in ``metadata.json``; ``manifest.json`` last, so the folder is complete
or refused); :func:`render_reports` redraws the Markdown, HTML and PNG files from the CSVs. pandas is
imported here and in the CLI only — never by ``scratchnet``.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.records import Record
from ..core.root_causes import COLUMNS as ROOT_CAUSE_COLUMNS
from ..core.root_causes import decode, group
from .files import (
    COLUMN_TYPES,
    MANIFEST,
    METADATA,
    IncompleteFolderError,
    ReportFolder,
    new_run_id,
    read_csv,
    verify_folder,
)
from .metadata import collect_metadata

__all__ = ["KEY_COLUMNS", "RATIO_COLUMNS", "MATRIX_COLUMNS", "CURVE_COLUMNS", "TRAINING_CHECKS",
           "records_frame", "records_from_frame", "read_records", "conformance_matrix", "gradient_report",
           "training_report", "row_label", "write_reports", "write_tables", "render_reports", "load_reports",
           "CSV_FILES"]

#: The columns that identify a row of the conformance matrix (the gate's key).
KEY_COLUMNS = ("kind", "impl", "hidden", "output", "loss", "reduction", "flavour", "optimizer", "gd_mode",
               "dtype", "device")
#: check -> the matrix column holding its worst tol_ratio
CHECK_COLUMN = {"forward": "forward_ratio", "loss": "loss_ratio", "gradient": "gradient_ratio",
                "training_step": "training_ratio", "final_params": "training_ratio",
                "fit_step": "training_ratio", "fit_epoch": "training_ratio"}
RATIO_COLUMNS = ("forward_ratio", "loss_ratio", "gradient_ratio", "training_ratio")
MATRIX_COLUMNS = (*KEY_COLUMNS, *RATIO_COLUMNS, "worst_ratio", "n_records", "n_failed", "n_unverified",
                  "n_by_oracle", "first_break_step", "status")
TRAINING_CHECKS = ("training_step", "final_params")
#: The checks of ``Network.fit`` in lockstep (:mod:`scratchnet_reference.core.fit_lockstep`): matrix kind ``fit``.
FIT_CHECKS = ("fit_step", "fit_epoch")
#: One training curve: the matrix key without ``kind``, plus the model size and seed.
CURVE_COLUMNS = (*KEY_COLUMNS[1:], "sizes", "seed")
GRADIENT_COLUMNS = (*KEY_COLUMNS[1:], "sizes", "seed", "batch", "param", "shape", "max_abs_err", "max_rel_err",
                    "tol_ratio", "atol", "rtol", "cosine", "norm_ratio", "worst_index", "fd_verdict", "status", "note",
                    "diagnosis")
TRAINING_COLUMNS = (*CURVE_COLUMNS, "step", "loss_actual", "loss_expected", "abs_diff", "rel_diff", "param_distance",
                    "tol_ratio", "atol", "rtol", "status", "first_break_step")
CSV_FILES = {"records": "records.csv", "matrix": "matrix.csv", "gradients": "gradients.csv",
             "training": "training.csv", "root_causes": "root_causes.csv"}
#: Ratios at or below this are drawn as this on log scales (an exact match has ratio 0).
PLOT_FLOOR = 1e-8

_PANDAS_TYPES = {"str": str, "int": "int64", "float": "float64", "bool": bool}
#: Every Record field's type, from the dataclass itself (a field added there is typed here too).
RECORD_TYPES: dict[str, str] = {f.name: str(f.type) for f in fields(Record) if str(f.type) in _PANDAS_TYPES}


#: The Record fields without a default: what a records.csv must have.
_REQUIRED_RECORD_FIELDS = tuple(f.name for f in fields(Record) if f.default is MISSING and f.default_factory is MISSING)


def _typed(frame: pd.DataFrame, extra: Mapping[str, str] | None = None) -> pd.DataFrame:
    known = {**COLUMN_TYPES, **(extra or {})}
    return frame.astype({c: _PANDAS_TYPES[known[c]] for c in frame.columns if c in known})


# --------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------

def records_frame(records: Iterable[Record | Mapping[str, Any]]) -> pd.DataFrame:
    """One row per record, columns in :class:`Record` field order, typed (str/int/float/bool)."""
    names = Record.columns()
    rows = [[getattr(r, n) for n in names] if isinstance(r, Record) else [r[n] for n in names] for r in records]
    return _typed(pd.DataFrame(rows, columns=names), RECORD_TYPES)


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
    return read_csv(path, required=_REQUIRED_RECORD_FIELDS, types=RECORD_TYPES)[0]


def _kind(checks: pd.Series) -> np.ndarray:
    return np.where(checks.isin(TRAINING_CHECKS), "training", np.where(checks.isin(FIT_CHECKS), "fit", "case"))


def conformance_matrix(records: pd.DataFrame) -> pd.DataFrame:
    """The conformance matrix (see the module docstring), sorted by its key."""
    if records.empty:
        return _typed(pd.DataFrame(columns=MATRIX_COLUMNS))
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
    return _typed(out.reset_index()[list(MATRIX_COLUMNS)])


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
    return _typed(g[list(GRADIENT_COLUMNS)].reset_index(drop=True))


def root_cause_table(records: pd.DataFrame) -> pd.DataFrame:
    """The distinct root causes of the failing records (:func:`scratchnet_reference.core.root_causes.group`),
    numbered from 1 in the order the reports list them: most failing rows first."""
    rows = [{"cause": i, **asdict(c), "failing_rows": n, "combinations": m}
            for i, (c, n, m) in enumerate(group(records.itertuples(index=False)), 1)]
    return pd.DataFrame(rows, columns=["cause", *ROOT_CAUSE_COLUMNS]).astype({"cause": "int64", "failing_rows": "int64",
                                                                   "combinations": "int64"})


def _cause_numbers(gradients: pd.DataFrame, causes: pd.DataFrame) -> pd.Series:
    """A failing gradient's diagnosis as the numbers of its root causes (``"1, 2"``): each cause's
    words are shown once, in the root-cause list."""
    number = {(r.kind, r.where, r.what): r.cause for r in causes.itertuples(index=False)}
    return gradients["diagnosis"].map(lambda text: ", ".join(
        str(number.get(c.key, "?")) for c in decode(text)) if text else "")


def training_report(records: pd.DataFrame) -> pd.DataFrame:
    """One row per lockstep training step: the implementation's loss (``loss_actual``) and torch's
    (``loss_expected``) before the update, their absolute and relative difference, the largest
    parameter difference after it (``param_distance``), the step's ``tol_ratio`` (loss and
    parameters) and, per curve, the first step whose tolerance broke (−1: none)."""
    t = records[records["check"] == "training_step"]
    t = t.assign(loss_actual=t["actual_value"], loss_expected=t["expected_value"], abs_diff=t["max_abs_err"],
                 rel_diff=t["max_rel_err"], fail_step=t["step"].where(t["status"] == "fail"))
    if t.empty:
        return _typed(pd.DataFrame(columns=TRAINING_COLUMNS))
    first = t.groupby(list(CURVE_COLUMNS), sort=False, dropna=False)["fail_step"].transform("min")
    t = t.assign(first_break_step=first.fillna(-1))
    return _typed(t[list(TRAINING_COLUMNS)].reset_index(drop=True))


def row_label(row: Mapping[str, Any]) -> str:
    """A matrix row in words: ``tanh,tanh → softmax + cross_entropy (mean, fused)`` or
    ``adam(lr=0.01) mini_batch``."""
    if row.get("kind") == "training" or row.get("optimizer"):
        return f"{row['optimizer']} {row['gd_mode']}"
    return f"{row['hidden']} → {row['output']} + {row['loss']} ({row['reduction']}, {row['flavour']})"


# --------------------------------------------------------------------------------------------
# Summaries shared by the Markdown and HTML pages
# --------------------------------------------------------------------------------------------

def _fmt(x: Any) -> str:
    if isinstance(x, float | np.floating):
        return "—" if math.isnan(x) else f"{x:.2e}"
    return str(x)


def _fmt_long(x: Any) -> str:
    return "—" if pd.isna(x) else f"{x:.10g}"


def _fmt_step(x: Any) -> str:
    return "—" if pd.isna(x) or x < 0 else str(int(x))


def _formatter(column: str):
    """How a column is shown: losses with 10 digits, steps with "—" for never (−1), else :func:`_fmt`."""
    if column in ("loss_actual", "loss_expected"):
        return _fmt_long
    if column == "first_break_step":
        return _fmt_step
    return _fmt


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as the strings the Markdown page shows."""
    return pd.DataFrame({c: frame[c].map(_formatter(c)) for c in frame.columns}, index=frame.index)


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
    g = g.assign(kind="case", **{"root cause": _cause_numbers(g, causes if causes is not None else
                                                                root_cause_table(gradients))})
    return _labelled(g)[["row", "dtype", "device", "param", "max_abs_err", "max_rel_err", "tol_ratio", "cosine",
                         "norm_ratio", "worst_index", "fd_verdict", "status", "root cause"]]


def _cause_items(causes: pd.DataFrame) -> list[tuple[int, str, list[tuple[str, str]], str]]:
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


def _md_causes(causes: pd.DataFrame) -> list[str]:
    parts = ["## Root causes", ""]
    for number, head, details, reproducer in _cause_items(causes):
        parts.append(f"{number}. **{head}**")
        parts += [f"   - {label}: {text}" for label, text in details]
        if reproducer:
            parts += ["   - reproducer:", "", "     ```python", *("     " + line for line in reproducer.split("\n")),
                      "     ```"]
    return [*parts, ""]


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------

def _md_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_none_"
    return _display(frame).to_markdown(index=False, disable_numparse=True)


def _md_metadata(metadata: Mapping[str, str]) -> str:
    return "\n".join(f"- **{k}**: {v}" for k, v in metadata.items() if str(v) != "")


def render_markdown(matrix: pd.DataFrame, gradients: pd.DataFrame, training: pd.DataFrame,
                    metadata: Mapping[str, str], files: Iterable[str] = (), causes: pd.DataFrame | None = None) -> str:
    """The report, opening with the verdict and the numbered root causes; the matrix follows."""
    causes = root_cause_table(gradients) if causes is None else causes
    n_fail = int((matrix["status"] == "fail").sum())
    verdict = "**FAIL**" if n_fail else "**PASS**"
    parts = [
        "# scratchnet vs torch: conformance report", "",
        f"{verdict}: {len(matrix) - n_fail} of {len(matrix)} matrix rows pass, {n_fail} fail. "
        "`tol_ratio = max |a − b| / (atol + rtol·|b|)`; a check passes when it is ≤ 1.", "",
        *(_md_causes(causes) if len(causes) else []),
        _md_metadata(metadata), "",
        "## Summary", "", _md_table(summary_table(matrix)), "",
        "## Records per oracle", "", _md_table(oracle_counts(matrix)), "",
        "## Failures", "", _md_table(failures_table(matrix).head(50)), "",
        "## Worst matrix rows", "", _md_table(worst_table(matrix, 10)), "",
        "## Training (lockstep)", "", _md_table(curves_table(training)), "",
        "## Worst gradients", "", _md_table(worst_gradients(gradients, 10, causes)), "",
    ]
    if files:
        parts += ["## Files", "", *(f"- `{f}`" for f in files), ""]
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0 1.5em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; }
td.left, th.left { text-align: left; }
.meta td { text-align: left; white-space: normal; }
.pass { color: #1a7f37; font-weight: bold; } .fail { color: #d1242f; font-weight: bold; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
ol.causes li { margin: 0.3em 0; } ol.causes pre { background: #f6f8fa; padding: 0.5em; overflow-x: auto; }
"""

_CMAP = "viridis"


def _over_or_missing(value: Any) -> str:
    """Red above the tolerance; plain grey where there is no value (the colour map would paint it black)."""
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "background-color: #f6f6f6; color: #999999"
        if value > 1:
            return "background-color: #d1242f; color: white; font-weight: bold"
    return ""


def _styled(frame: pd.DataFrame, ratio_columns: Iterable[str]) -> str:
    """A table with a log colour scale on the tol_ratio columns (1e-8 … 1; red above 1)."""
    if frame.empty:
        return "<p><em>none</em></p>"
    frame = frame.reset_index(drop=True)
    ratio_columns = [c for c in ratio_columns if c in frame.columns]
    styler = frame.style.hide(axis="index").format({c: _formatter(str(c)) for c in frame.columns})
    if ratio_columns:
        values = frame[ratio_columns].astype(float)
        gmap = np.log10(values.clip(lower=PLOT_FLOOR))
        styler = styler.background_gradient(cmap=_CMAP, subset=ratio_columns, gmap=gmap, vmin=math.log10(PLOT_FLOOR),
                                            vmax=0.0, axis=None)
        styler = styler.map(_over_or_missing, subset=ratio_columns)
    if "status" in frame.columns:
        styler = styler.map(lambda v: "color: #d1242f; font-weight: bold" if v == "fail" else "", subset=["status"])
    return styler.to_html()


def _pivot_tables(matrix: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """For each device × dtype: output + loss rows × hidden columns, worst ratio over reduction
    and flavour — the whole case matrix on one screen."""
    cases = matrix[matrix["kind"] == "case"]
    out = []
    for (device, dtype), m in cases.groupby(["device", "dtype"], sort=True):
        pivot = (m.assign(pair=m["output"] + " + " + m["loss"])
                 .pivot_table(index="pair", columns="hidden", values="worst_ratio", aggfunc="max", dropna=False,
                              sort=False))
        pivot.columns.name = None
        out.append((f"{dtype} · {device}", pivot.reset_index().rename(columns={"pair": "output + loss"})))
    return out


def _img(name: str, data: bytes) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{encoded}"></figure>'


def _html_causes(causes: pd.DataFrame) -> str:
    items = []
    for _, head, details, reproducer in _cause_items(causes):
        rows = "".join(f"<li><b>{html.escape(label)}</b>: {html.escape(text)}</li>" for label, text in details)
        code = (f"<details><summary>reproducer</summary><pre>{html.escape(reproducer)}</pre></details>"
                if reproducer else "")
        items.append(f"<li><b>{html.escape(head)}</b><ul>{rows}</ul>{code}</li>")
    return "<h2>Root causes</h2><ol class='causes'>" + "".join(items) + "</ol>"


def render_html(matrix: pd.DataFrame, gradients: pd.DataFrame, training: pd.DataFrame,
                metadata: Mapping[str, str], pngs: Mapping[str, bytes], causes: pd.DataFrame | None = None) -> str:
    """One self-contained page: styles inline, plots embedded as base64 PNG, no external links. It
    opens with the verdict and the numbered root causes; the metadata and the matrix follow."""
    causes = root_cause_table(gradients) if causes is None else causes
    n_fail = int((matrix["status"] == "fail").sum())
    verdict = (f'<span class="fail">FAIL</span>: {n_fail} of {len(matrix)} matrix rows fail' if n_fail
               else f'<span class="pass">PASS</span>: all {len(matrix)} matrix rows pass')
    meta_rows = "".join(f"<tr><th class='left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                        for k, v in metadata.items() if str(v) != "")
    body = [
        "<h1>scratchnet vs torch: conformance report</h1>",
        f"<p>{verdict}. <code>tol_ratio = max |a − b| / (atol + rtol·|b|)</code>; a check passes when it is ≤ 1. "
        "Colours: log scale from 1e-8 (dark) to 1 (yellow); red is above the tolerance.</p>",
        _html_causes(causes) if len(causes) else "",
        f"<table class='meta'>{meta_rows}</table>",
        "<h2>Summary</h2>", _styled(summary_table(matrix), RATIO_COLUMNS),
        "<h2>Failures</h2>", _styled(failures_table(matrix), RATIO_COLUMNS),
    ]
    for name in ("heatmap.png", "heatmap_hidden.png"):
        if name in pngs:
            body.append(_img(name, pngs[name]))
    body.append("<h2>Conformance matrix (worst tol_ratio over reduction and flavour)</h2>")
    for title, pivot in _pivot_tables(matrix):
        body += [f"<h3>{html.escape(title)}</h3>", _styled(pivot, [c for c in pivot.columns if c != "output + loss"])]
    body += ["<h2>Worst matrix rows</h2>", _styled(worst_table(matrix, 25), RATIO_COLUMNS),
             "<h2>Training (lockstep)</h2>", _styled(curves_table(training), ["worst_ratio"])]
    for name in ("training_curves.png", "training_ratio.png"):
        if name in pngs:
            body.append(_img(name, pngs[name]))
    body += ["<h2>Worst gradients</h2>", _styled(worst_gradients(gradients, 25, causes), ["tol_ratio"])]
    if "gradient_errors.png" in pngs:
        body.append(_img("gradient_errors.png", pngs["gradient_errors.png"]))
    body.append("<p>Every number: <code>records.csv</code>, <code>matrix.csv</code>, <code>gradients.csv</code>, "
                "<code>training.csv</code>, <code>root_causes.csv</code> beside this page.</p>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<title>scratchnet conformance report</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# --------------------------------------------------------------------------------------------
# Writing and re-rendering
# --------------------------------------------------------------------------------------------

#: ``announce(stage)`` is called before each stage of writing a report folder ("records.csv", …,
#: "plots", "report.md", "report.html"), so a caller can show progress through the slow part.
Announce = Callable[[str], None]


def _silent(stage: str) -> None:
    pass


#: Files derived from the tables (``report`` redraws them; a deleted one is not a broken folder).
RENDERED_SUFFIXES = (".md", ".html", ".png")


def _pages(matrix: pd.DataFrame, gradients: pd.DataFrame, training: pd.DataFrame, metadata: Mapping[str, str],
           csv_files: list[str], causes: pd.DataFrame | None = None,
           announce: Announce = _silent) -> dict[str, bytes]:
    """The rendered files, by name: the PNG plots, ``report.md`` and ``report.html``."""
    from . import plots

    announce("plots")
    pngs = plots.all_plots(matrix, gradients, training, metadata)
    md_files = [*csv_files, "report.html", *pngs, METADATA]
    announce("report.md")
    markdown = render_markdown(matrix, gradients, training, metadata, md_files, causes).encode("utf-8")
    announce("report.html")
    return {**pngs, "report.md": markdown,
            "report.html": render_html(matrix, gradients, training, metadata, pngs, causes).encode("utf-8")}


def _tables(records: Iterable[Record | Mapping[str, Any]], metadata: Mapping[str, Any] | None,
            extra_tables: Mapping[str, pd.DataFrame] | None,
            announce: Announce = _silent) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """``({file name: table}, metadata)`` of a run: the four tables, then ``extra_tables``."""
    announce("tables")
    frame = records_frame(records)
    meta = collect_metadata(frame, metadata)
    meta.setdefault("run_id", new_run_id())
    tables = {CSV_FILES["records"]: frame, CSV_FILES["matrix"]: conformance_matrix(frame),
              CSV_FILES["gradients"]: gradient_report(frame), CSV_FILES["training"]: training_report(frame),
              CSV_FILES["root_causes"]: root_cause_table(frame)}
    for name, table in (extra_tables or {}).items():
        tables[name if name.endswith(".csv") else f"{name}.csv"] = table
    return tables, meta


def _write_folder(out: Path, tables: Mapping[str, pd.DataFrame], pages: Mapping[str, bytes],
                  meta: Mapping[str, str], announce: Announce = _silent) -> list[Path]:
    announce("writing files")
    with ReportFolder(out, meta) as folder:
        written = [folder.write_csv(name, table) for name, table in tables.items()]
        written += [folder.write_bytes(name, data) for name, data in pages.items()]
    return written


def write_tables(records: Iterable[Record | Mapping[str, Any]], out_dir: str | os.PathLike[str],
                 metadata: Mapping[str, Any] | None = None,
                 extra_tables: Mapping[str, pd.DataFrame] | None = None) -> list[Path]:
    """Only the CSVs of :func:`write_reports` (what the gate reads), without rendering; sealed the same way."""
    tables, meta = _tables(records, metadata, extra_tables)
    return _write_folder(Path(out_dir), tables, {}, meta)


def write_reports(records: Iterable[Record | Mapping[str, Any]], out_dir: str | os.PathLike[str],
                  metadata: Mapping[str, Any] | None = None,
                  extra_tables: Mapping[str, pd.DataFrame] | None = None, announce: Announce = _silent) -> list[Path]:
    """Write every report of ``records`` into the folder ``out_dir`` and return the paths written.

    ``records.csv`` (every raw record, floats ``%.17g``), ``matrix.csv``, ``gradients.csv``,
    ``training.csv``, ``root_causes.csv``, ``extra_tables`` (``{name: DataFrame}``, e.g.
    ``not_implemented``), ``report.md``, ``report.html`` (self-contained), the PNG plots,
    ``metadata.json`` (``metadata`` as given, completed by
    :func:`scratchnet_reference.reports.metadata.collect_metadata`: versions, devices, BLAS, date, git
    commit, run id) and, last, ``manifest.json``: the folder is complete or it is refused
    (:class:`scratchnet_reference.reports.files.ReportFolder`). Everything is computed before the
    folder is touched. ``announce(stage)`` is called before each stage (tables, plots, report.md,
    report.html, writing files), so a caller can show progress through the slow part."""
    tables, meta = _tables(records, metadata, extra_tables, announce)
    pages = _pages(tables[CSV_FILES["matrix"]], tables[CSV_FILES["gradients"]], tables[CSV_FILES["training"]], meta,
                   list(tables), tables[CSV_FILES["root_causes"]], announce)
    return _write_folder(Path(out_dir), tables, pages, meta, announce)


def _is_rendered(name: str) -> bool:
    return name.endswith(RENDERED_SUFFIXES)


def load_reports(out_dir: str | os.PathLike[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """``(matrix, gradients, training, metadata)`` from a finished report folder (its manifest
    verified first: an interrupted or mixed folder raises
    :class:`scratchnet_reference.reports.files.IncompleteFolderError`). ``matrix.csv`` must be there;
    a gradient or training report the folder does not list (a baseline keeps only the matrix and
    the training curves) reads as an empty table."""
    out = Path(out_dir)
    manifest = verify_folder(out, may_be_missing=_is_rendered)
    if CSV_FILES["matrix"] not in manifest.files:
        raise IncompleteFolderError(f"{out} has no {CSV_FILES['matrix']} in its {MANIFEST}")
    matrix, meta = read_csv(out / CSV_FILES["matrix"], required=MATRIX_COLUMNS)
    optional = {}
    for name, columns in (("gradients", GRADIENT_COLUMNS), ("training", TRAINING_COLUMNS)):
        required = [c for c in columns if c != "diagnosis"]  # older files have no diagnosis column
        optional[name] = (read_csv(out / CSV_FILES[name], required=required)[0] if CSV_FILES[name] in manifest.files
                          else _typed(pd.DataFrame(columns=columns)))
    if "diagnosis" not in optional["gradients"].columns:
        optional["gradients"] = optional["gradients"].assign(diagnosis="")
    return matrix, optional["gradients"], optional["training"], meta


def render_reports(out_dir: str | os.PathLike[str]) -> list[Path]:
    """Redraw ``report.md``, ``report.html`` and the PNG plots from the tables of a finished report
    folder, and seal it again (the tables are kept as they are)."""
    out = Path(out_dir)
    matrix, gradients, training, meta = load_reports(out)
    kept = tuple(name for name in verify_folder(out, may_be_missing=_is_rendered).files
                 if not _is_rendered(name) and name != METADATA)
    tables = [n for n in CSV_FILES.values() if n in kept] + [n for n in kept if n.endswith(".csv")]
    causes = read_csv(out / CSV_FILES["root_causes"])[0].fillna("") if CSV_FILES["root_causes"] in kept else None
    pages = _pages(matrix, gradients, training, meta, list(dict.fromkeys(tables)), causes)
    with ReportFolder(out, meta, keep=kept) as folder:
        return [folder.write_bytes(name, data) for name, data in pages.items()]
