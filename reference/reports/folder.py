"""Report folders on disk: a run's tables and pages written into a folder that is complete or
refused, read back, and redrawn.

:func:`write_reports` writes the run's tables (:mod:`~scratchnet_reference.reports.frames`) as plain
CSVs with the pages (:mod:`~scratchnet_reference.reports.markdown_page`,
:mod:`~scratchnet_reference.reports.html_page`) and plots; :func:`write_tables` only the CSVs (what
the gate reads). Every file is written atomically, the run's metadata goes into ``metadata.json`` and
``manifest.json`` comes last (:class:`scratchnet_reference.reports.files.ReportFolder`).
:func:`load_reports` reads a finished folder back; :func:`render_reports` redraws the Markdown, HTML
and PNG files from its CSVs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.records import Record
from .files import MANIFEST, METADATA, IncompleteFolderError, ReportFolder, new_run_id, read_csv, verify_folder
from .frames import conformance_matrix, gradient_report, records_frame, root_cause_table, training_report, typed
from .html_page import render_html
from .markdown_page import render_markdown
from .metadata import collect_metadata
from .schema import CSV_FILES, GRADIENT_COLUMNS, MATRIX_COLUMNS, TRAINING_COLUMNS

__all__ = ["Announce", "RENDERED_SUFFIXES", "write_reports", "write_tables", "load_reports", "render_reports"]

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
                          else typed(pd.DataFrame(columns=columns)))
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
