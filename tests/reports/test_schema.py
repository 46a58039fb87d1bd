"""The report tables' schema comes from the :class:`Record` dataclass: every field survives
records → CSV → records with its value and its type, read with or without the records' own types,
and every column of every table the run writes is typed."""

from __future__ import annotations

import dataclasses
import math
import typing

import numpy as np
import pandas as pd
import pytest
from scratchnet_reference.core.records import Combination, Record
from scratchnet_reference.reports.files import read_csv
from scratchnet_reference.reports.folder import write_tables
from scratchnet_reference.reports.frames import read_records, records_from_frame
from scratchnet_reference.reports.schema import COLUMN_TYPES, CSV_FILES, RECORD_TYPES, field_types

#: Values no default and no ordinary run produces, per type: a CSV writer or reader that loses a
#: type (an all-empty string column read back as NaN floats, a -0.0 as 0.0, a bool as a string)
#: or a value (quotes, commas, line breaks, the smallest subnormal) shows here.
ODD = {
    str: ["", 'a "quoted", comma\nnew line', "—ünïcode 1e5", "nan", "True", "007"],
    int: [-1, 2**62, 0, -(2**40), 7, 3],
    float: [-0.0, math.inf, -math.inf, math.nan, 5e-324, 1 / 3],
    bool: [False, True, False, True, True, False],
}


def _odd_records() -> list[Record]:
    hints = typing.get_type_hints(Record)
    return [Record(**{f.name: ODD[hints[f.name]][i] for f in dataclasses.fields(Record)})
            for i in range(len(ODD[str]))]


def _same(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return np.float64(a).view(np.int64) == np.float64(b).view(np.int64) or (math.isnan(a) and math.isnan(b))
    return a == b


def test_every_field_of_every_type_round_trips(tmp_path):
    records = _odd_records()
    write_tables(records, tmp_path)
    for frame in (read_records(tmp_path / CSV_FILES["records"]),
                  read_csv(tmp_path / CSV_FILES["records"])[0]):  # the report schema alone types it too
        back = records_from_frame(frame)
        assert len(back) == len(records)
        for a, b in zip(back, records, strict=True):
            bad = [(f.name, getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(Record)
                   if not _same(getattr(a, f.name), getattr(b, f.name))]
            assert bad == []


def test_an_all_empty_text_column_stays_text(tmp_path):
    """``oracle``, ``note``, ``diagnosis`` … empty on every row (a run where nothing failed) read
    back as empty strings, not as NaN floats — the fields were once missing from the schema."""
    base = _odd_records()[0]
    write_tables([dataclasses.replace(base, **{name: "" for name, kind in RECORD_TYPES.items() if kind == "str"})],
                 tmp_path)
    frame, _ = read_csv(tmp_path / CSV_FILES["records"])
    for name, kind in RECORD_TYPES.items():
        if kind == "str":
            assert frame[name].tolist() == [""], name


def test_every_column_the_run_writes_is_typed(small_records, tmp_path):
    write_tables(small_records, tmp_path)
    for name in ("records", "matrix", "gradients", "training"):
        columns = pd.read_csv(tmp_path / CSV_FILES[name], nrows=0).columns
        assert [c for c in columns if c not in COLUMN_TYPES] == [], name


def test_record_is_frozen_and_flattens_the_combination():
    record = _odd_records()[1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.tol_ratio = 0.0  # type: ignore[misc]
    names = Record.columns()
    combination = [f.name for f in dataclasses.fields(Combination)]
    assert names[3:3 + len(combination)] == combination
    assert {n: RECORD_TYPES[n] for n in combination} == field_types(Combination)


def test_a_field_of_a_type_csv_cannot_hold_is_refused():
    @dataclasses.dataclass
    class Bad:
        shape: tuple

    with pytest.raises(TypeError, match=r"Bad\.shape"):
        field_types(Bad)
