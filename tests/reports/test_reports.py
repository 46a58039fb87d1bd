"""Report tables, lossless CSVs, atomic writes, metadata headers, rendering and the HTML page."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scratchnet_reference.core.records import Record
from scratchnet_reference.reports import files as report_files
from scratchnet_reference.reports.files import (
    MANIFEST,
    METADATA,
    CorruptFileError,
    IncompleteFolderError,
    atomic_write_text,
    read_csv,
    read_metadata,
    verify_folder,
    write_csv,
)
from scratchnet_reference.reports.folder import render_reports, write_reports, write_tables
from scratchnet_reference.reports.frames import (
    conformance_matrix,
    gradient_report,
    read_records,
    records_frame,
    records_from_frame,
    training_report,
)
from scratchnet_reference.reports.schema import CSV_FILES, KEY_COLUMNS, MATRIX_COLUMNS

from .conftest import replace_in

PNGS = ("heatmap.png", "heatmap_hidden.png", "training_curves.png", "training_ratio.png", "gradient_errors.png")


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp"))


def _tricky(record: Record) -> list[Record]:
    """Records whose values are hard to write as CSV and read back exactly."""
    values = [0.1 + 0.2, 5e-324, 1.7976931348623157e308, -0.0, math.inf, -math.inf, math.nan, 1 / 3, 2.0 ** -1074]
    out = []
    for i, v in enumerate(values):
        out.append(dataclasses.replace(
            record, tol_ratio=v, max_abs_err=v, actual_value=v, cosine=v, step=i, seed=2 ** 40 + i,
            note=['comma, "quote"', "line\nbreak", "nan", "", "→ ünïcode", "# not a header", "NaN", " ", "None"][i],
            worst_index="(3, 1)", fd_verdict="" if i % 2 else "neither", passed=bool(i % 2)))
    return out


# -- the tables ---------------------------------------------------------------------------------

def test_matrix_has_one_row_per_combination_and_training_rows_of_their_own(small_records):
    frame = records_frame(small_records)
    matrix = conformance_matrix(frame)
    assert list(matrix.columns) == list(MATRIX_COLUMNS)
    assert not matrix.duplicated(list(KEY_COLUMNS)).any()
    cases = matrix[matrix["kind"] == "case"]
    # softmax: cross_entropy/mse/... × flavours; every case row has forward, loss and gradient ratios
    assert cases[["forward_ratio", "loss_ratio", "gradient_ratio"]].notna().all().all()
    assert cases["training_ratio"].isna().all()
    training = matrix[matrix["kind"] == "training"]
    assert set(training["dtype"]) == {"float64", "float32"}
    assert (training["optimizer"] != "").all() and (training["gd_mode"] == "mini_batch").all()
    assert training["training_ratio"].notna().all() and training["forward_ratio"].isna().all()
    assert (matrix["status"] == "pass").all()
    assert matrix["n_records"].sum() == len(frame)


def test_matrix_row_fails_when_any_record_fails_and_keeps_the_worst_ratio(records):
    target = next(r for r in records if r.check == "gradient")
    target = replace_in(records, target, tol_ratio=3.5, status="fail", passed=False)
    matrix = conformance_matrix(records_frame(records)).set_index(list(KEY_COLUMNS))
    row = matrix.loc[("case", target.impl, target.hidden, target.output, target.loss, target.reduction,
                      target.flavour, "", "", target.dtype, target.device)]
    assert row["status"] == "fail" and row["n_failed"] == 1 and row["gradient_ratio"] == 3.5
    assert (matrix["status"] == "fail").sum() == 1


def test_unverified_records_are_counted_but_not_worst(records):
    target = next(r for r in records if r.check == "loss")
    target = replace_in(records, target, tol_ratio=math.inf, status="unverified", oracle="")
    matrix = conformance_matrix(records_frame(records))
    row = matrix[(matrix["n_unverified"] == 1)]
    assert len(row) == 1 and row["status"].iloc[0] == "unverified" and math.isfinite(row["worst_ratio"].iloc[0])
    assert "torch=" in row["n_by_oracle"].iloc[0]
    assert (matrix["status"] == "unverified").sum() == 1


def test_every_record_is_counted_under_its_oracle(records):
    from scratchnet_reference.reports.frames import oracle_table

    frame = records_frame(records)
    table = oracle_table(frame)
    assert table["records"].sum() == len(records)
    counts = conformance_matrix(frame)["n_by_oracle"].str.findall(r"=(\d+)").map(lambda n: sum(map(int, n)))
    assert counts.sum() == sum(r.status != "unverified" for r in records)


def test_gradient_report_has_a_row_per_parameter(small_records):
    grads = gradient_report(records_frame(small_records))
    n_grad = sum(r.check == "gradient" for r in small_records)
    assert len(grads) == n_grad
    assert {"param", "max_abs_err", "max_rel_err", "tol_ratio", "cosine", "norm_ratio", "worst_index",
            "fd_verdict"} <= set(grads.columns)
    assert set(grads["param"]) == {f"layers.{k}.{p}" for k in range(3) for p in ("weight", "bias")}


def test_training_report_has_both_losses_per_step_and_the_first_break(records):
    steps = [r for r in records if r.check == "training_step" and r.dtype == "float64"]
    steps[3] = replace_in(records, steps[3], status="fail", passed=False, tol_ratio=2.0)
    steps[4] = replace_in(records, steps[4], status="fail", passed=False)
    report = training_report(records_frame(records))
    assert len(report) == 10  # 5 steps × 2 dtypes
    f64 = report[report["dtype"] == "float64"]
    assert list(f64["step"]) == [0, 1, 2, 3, 4]
    assert (f64["first_break_step"] == 3).all()
    assert (report[report["dtype"] == "float32"]["first_break_step"] == -1).all()
    np.testing.assert_array_equal(f64["loss_actual"], [r.actual_value for r in steps])
    np.testing.assert_array_equal(f64["loss_expected"], [r.expected_value for r in steps])
    np.testing.assert_array_equal(f64["abs_diff"], [abs(r.actual_value - r.expected_value) for r in steps])


# -- CSV round trip -------------------------------------------------------------------------------

def test_records_csv_round_trip_is_bit_exact(small_records, tmp_path):
    records = small_records + _tricky(small_records[0])
    write_tables(records, tmp_path)
    back = read_records(tmp_path / CSV_FILES["records"])
    frame = records_frame(records)
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    for column in frame.columns:
        if frame[column].dtype == np.float64:  # bit for bit, -0.0 and NaN included
            np.testing.assert_array_equal(back[column].to_numpy().view(np.int64),
                                          frame[column].to_numpy().view(np.int64), err_msg=column)
    again = records_from_frame(back)
    for a, b in zip(again, records, strict=True):
        for name in Record.columns():
            x, y = getattr(a, name), getattr(b, name)
            assert type(x) is type(y) and (x == y or (x != x and y != y)), (name, x, y)


@pytest.mark.parametrize("table", ["matrix", "gradients", "training"])
def test_derived_csvs_round_trip(small_records, tmp_path, table):
    write_tables(small_records, tmp_path)
    frame = records_frame(small_records)
    expected = {"matrix": conformance_matrix, "gradients": gradient_report, "training": training_report}[table](frame)
    back, meta = read_csv(tmp_path / CSV_FILES[table])
    pd.testing.assert_frame_equal(back, expected, check_exact=True)
    assert meta == read_metadata(tmp_path) and meta["run_id"] == verify_folder(tmp_path).run_id
    assert verify_folder(tmp_path).files[CSV_FILES[table]]["rows"] == len(expected)


def test_empty_records_write_every_table(tmp_path):
    written = write_reports([], tmp_path, {"profile": "empty"})
    assert {p.name for p in written} >= {*CSV_FILES.values(), "report.md", "report.html"}
    assert read_records(tmp_path / "records.csv").empty


# -- atomic writes --------------------------------------------------------------------------------

def test_write_reports_leaves_no_temporary_files(rendered_dir):
    assert _temp_files(rendered_dir) == []
    assert {p.name for p in rendered_dir.iterdir()} == {*CSV_FILES.values(), "report.md", "report.html", *PNGS,
                                                         METADATA, MANIFEST}


def test_interrupted_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "matrix.csv"
    atomic_write_text(path, "old\n")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_files.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_csv(pd.DataFrame({"a": [1.0]}), path)
    assert path.read_text() == "old\n"
    assert _temp_files(tmp_path) == []


def test_failing_serialisation_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        report_files.atomic_write_bytes(tmp_path / "x.csv", "not bytes")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


# -- metadata, rendering, HTML --------------------------------------------------------------------

def test_every_file_carries_the_metadata_header(rendered_dir):
    for name in CSV_FILES.values():
        _, meta = read_csv(rendered_dir / name)
        for key in ("scratchnet", "numpy", "torch", "python", "devices", "blas_numpy", "profile", "seed", "date",
                    "git_commit"):
            assert key in meta, (name, key)
        assert meta["profile"] == "test" and meta["devices"] == "cpu"
    md = (rendered_dir / "report.md").read_text()
    html = (rendered_dir / "report.html").read_text()
    for text in (md, html):
        assert "torch" in text and "numpy" in text and "profile" in text and "blas_numpy" in text
    for png in PNGS:
        data = (rendered_dir / png).read_bytes()
        assert data.startswith(b"\x89PNG") and b"scratchnet" in data  # tEXt chunk with the metadata


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.urls += [(tag, k, v or "") for k, v in attrs if k in ("src", "href", "srcset", "data", "action")]


def test_html_is_self_contained(rendered_dir):
    parser = _Links()
    text = (rendered_dir / "report.html").read_text()
    parser.feed(text)
    images = [u for u in parser.urls if u[0] == "img"]
    assert len(images) == len(PNGS)
    for tag, attr, url in parser.urls:
        assert url.startswith("data:image/png;base64,") or url.startswith("#"), (tag, attr, url[:60])
    assert not {"script", "link", "iframe"} & parser.tags
    assert "url(" not in text and "@import" not in text


def test_report_rerenders_from_the_csvs(rendered_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(rendered_dir, copy)
    md_before = (copy / "report.md").read_text()
    for name in ("report.md", "report.html", *PNGS):
        (copy / name).unlink()
    written = render_reports(copy)
    assert {p.name for p in written} == {"report.md", "report.html", *PNGS}
    assert (copy / "report.md").read_text() == md_before
    assert _temp_files(copy) == []


def test_render_needs_a_finished_folder(tmp_path):
    with pytest.raises(IncompleteFolderError, match="no manifest.json"):
        render_reports(tmp_path)


@pytest.mark.parametrize("cut", ["lines", "mid_row"])
def test_truncated_csv_is_an_error_not_fewer_rows(rendered_dir, tmp_path, cut):
    copy = tmp_path / "copy"
    shutil.copytree(rendered_dir, copy)
    text = (copy / "matrix.csv").read_text()
    lines = text.splitlines(keepends=True)
    (copy / "matrix.csv").write_text("".join(lines[: len(lines) // 2]) if cut == "lines" else text[: len(text) - 7])
    with pytest.raises(CorruptFileError, match="does not match manifest.json"):
        read_csv(copy / "matrix.csv", required=MATRIX_COLUMNS)
    with pytest.raises(CorruptFileError, match="does not match manifest.json"):
        render_reports(copy)


def test_every_table_reads_with_plain_pandas(rendered_dir):
    """No comment lines, no skiprows: ``pd.read_csv(path)`` as a newcomer would call it."""
    for name in CSV_FILES.values():
        plain = pd.read_csv(rendered_dir / name)
        ours, _ = read_csv(rendered_dir / name)
        assert list(plain.columns) == list(ours.columns) and len(plain) == len(ours), name
        assert len(plain) > 0 or name == CSV_FILES["root_causes"], name  # a passing run has no root cause
    meta = read_metadata(rendered_dir)
    assert meta["profile"] == "test" and meta["run_id"] == verify_folder(rendered_dir).run_id


def test_write_reports_accepts_dicts_and_a_path_string(small_records, tmp_path):
    out = os.fspath(tmp_path / "as-dicts")
    write_tables([r.to_dict() for r in small_records[:5]], out)
    assert len(read_records(Path(out) / "records.csv")) == 5
