"""The HTML report (``report.html``): one self-contained page — its stylesheet inline, the plots
embedded as base64 PNG, no external links — with the ratio columns on a log colour scale (1e-8 dark
… 1 yellow, red above the tolerance) and the case matrix pivoted onto one screen per dtype × device.
Every value from the run is escaped (pandas' Styler for tables, :func:`html.escape` for the rest)."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from .frames import root_cause_table
from .schema import RATIO_COLUMNS
from .summaries import cause_items, curves_table, failures_table, formatter, summary_table, worst_gradients, worst_table

__all__ = ["render_html", "PLOT_FLOOR"]

#: Ratios at or below this are drawn as this on log scales (an exact match has ratio 0).
PLOT_FLOOR = 1e-8

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
    styler = frame.style.hide(axis="index").format({c: formatter(str(c)) for c in frame.columns})
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
    for _, head, details, reproducer in cause_items(causes):
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
