"""The Markdown report (``report.md``): the verdict and the numbered root causes first, then the
run's metadata, the summary, who judged the records, the failures, the worst rows, the training
curves and the worst gradients (:mod:`~scratchnet_reference.reports.summaries`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from .escape import md_fence, md_text
from .frames import oracle_counts, root_cause_table
from .summaries import (
    cause_items,
    curves_table,
    failures_table,
    formatter,
    summary_table,
    worst_gradients,
    worst_table,
)

__all__ = ["render_markdown"]


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as the strings the Markdown page shows."""
    return pd.DataFrame({c: frame[c].map(formatter(c)) for c in frame.columns}, index=frame.index)


def _md_causes(causes: pd.DataFrame) -> list[str]:
    parts = ["## Root causes", ""]
    for number, head, details, reproducer in cause_items(causes):
        parts.append(f"{number}. **{md_text(head)}**")
        parts += [f"   - {md_text(label)}: {md_text(text)}" for label, text in details]
        if reproducer:
            fence = md_fence(reproducer)
            parts += ["   - reproducer:", "", f"     {fence}python",
                      *("     " + line for line in reproducer.split("\n")), f"     {fence}"]
    return [*parts, ""]


def _md_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_none_"
    shown = _display(frame).map(md_text).rename(columns=md_text)  # user text is inert (.escape)
    return shown.to_markdown(index=False, disable_numparse=True)


def _md_metadata(metadata: Mapping[str, str]) -> str:
    return "\n".join(f"- **{md_text(k)}**: {md_text(v)}" for k, v in metadata.items() if str(v) != "")


def render_markdown(matrix: pd.DataFrame, gradients: pd.DataFrame, training: pd.DataFrame,
                    metadata: Mapping[str, str], files: Iterable[str] = (), causes: pd.DataFrame | None = None) -> str:
    """The report, opening with the verdict and the numbered root causes; the matrix follows."""
    causes = root_cause_table(gradients) if causes is None else causes
    n_fail = int((matrix["status"] == "fail").sum())
    verdict = "**FAIL**" if n_fail else "**PASS**"
    if metadata.get("partial"):  # an interrupted run (conformance.run): say so before anything else
        verdict = f"**PARTIAL** ({md_text(metadata['partial'])}), so far {verdict}"
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
