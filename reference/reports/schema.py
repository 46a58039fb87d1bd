"""The columns of every report table and their types, in one place.

A column that is a field of :class:`scratchnet_reference.core.records.Record` takes its type from the
dataclass (``records.csv`` is the records themselves; ``matrix.csv``, ``gradients.csv`` and
``training.csv`` carry some of their fields): a field added to ``Record`` is written and read back
with its type without a word here. The columns a table computes itself (the matrix's ratios and
counts, the training curve's losses) are typed once below. :data:`COLUMN_TYPES` is the union, what
:func:`scratchnet_reference.reports.files.read_csv` reads any report table with.

Types are the four a CSV cell can hold and give back exactly: ``str``, ``int`` (int64), ``float``
(float64, written ``%.17g``) and ``bool``.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, fields
from typing import Any

from ..core.records import Record

__all__ = ["CSV_TYPES", "PANDAS_TYPES", "RECORD_TYPES", "RECORD_REQUIRED", "KEY_COLUMNS", "RATIO_COLUMNS",
           "MATRIX_COLUMNS", "MATRIX_TYPES", "CURVE_COLUMNS", "GRADIENT_COLUMNS", "TRAINING_COLUMNS",
           "TRAINING_TYPES", "COLUMN_TYPES", "CSV_FILES", "field_types"]

#: The Python types a CSV column may have, by name, and the pandas dtype each is read as.
CSV_TYPES: dict[type, str] = {str: "str", int: "int", float: "float", bool: "bool"}
PANDAS_TYPES: dict[str, Any] = {"str": str, "int": "int64", "float": "float64", "bool": bool}


def field_types(cls: type) -> dict[str, str]:
    """``{field: "str"|"int"|"float"|"bool"}`` of a dataclass, from its annotations (resolved, so
    ``from __future__ import annotations`` strings count); a field of another type is refused."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in fields(cls):
        kind = CSV_TYPES.get(hints[f.name])
        if kind is None:
            raise TypeError(f"{cls.__name__}.{f.name} is {hints[f.name]!r}; a CSV column must be one of "
                            f"{', '.join(t.__name__ for t in CSV_TYPES)}")
        out[f.name] = kind
    return out


#: Every :class:`Record` field's type: the schema of ``records.csv``.
RECORD_TYPES: dict[str, str] = field_types(Record)
#: The Record fields without a default: what a ``records.csv`` must have.
RECORD_REQUIRED: tuple[str, ...] = tuple(f.name for f in fields(Record)
                                         if f.default is MISSING and f.default_factory is MISSING)

#: The columns that identify a row of the conformance matrix (the gate's key).
KEY_COLUMNS = ("kind", "impl", "hidden", "output", "loss", "reduction", "flavour", "optimizer", "gd_mode",
               "dtype", "device")
#: The worst ``tol_ratio`` of each check of a matrix row.
RATIO_COLUMNS = ("forward_ratio", "loss_ratio", "gradient_ratio", "training_ratio")
MATRIX_COLUMNS = (*KEY_COLUMNS, *RATIO_COLUMNS, "worst_ratio", "n_records", "n_failed", "n_unverified",
                  "n_by_oracle", "first_break_step", "status")
#: The matrix's own columns (the others are Record fields).
MATRIX_TYPES: dict[str, str] = {"kind": "str", **dict.fromkeys((*RATIO_COLUMNS, "worst_ratio"), "float"),
                                **dict.fromkeys(("n_records", "n_failed", "n_unverified"), "int"),
                                "n_by_oracle": "str"}
#: One training curve: the matrix key without ``kind``, plus the model size and seed.
CURVE_COLUMNS = (*KEY_COLUMNS[1:], "sizes", "seed")
GRADIENT_COLUMNS = (*KEY_COLUMNS[1:], "sizes", "seed", "batch", "param", "shape", "max_abs_err", "max_rel_err",
                    "tol_ratio", "atol", "rtol", "cosine", "norm_ratio", "worst_index", "fd_verdict", "status", "note",
                    "diagnosis")
TRAINING_COLUMNS = (*CURVE_COLUMNS, "step", "loss_actual", "loss_expected", "abs_diff", "rel_diff", "param_distance",
                    "tol_ratio", "atol", "rtol", "status", "first_break_step")
#: The training report's own columns (the others are Record fields).
TRAINING_TYPES: dict[str, str] = dict.fromkeys(("loss_actual", "loss_expected", "abs_diff", "rel_diff"), "float")
#: Other columns of report tables: ``row`` (a matrix row in words, the gate's offenders).
_OTHER_TYPES: dict[str, str] = {"row": "str"}


def _union(*schemas: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for schema in schemas:
        for name, kind in schema.items():
            if out.setdefault(name, kind) != kind:
                raise TypeError(f"column {name!r} is typed {out[name]} in one table and {kind} in another")
    return out


#: The type of every column any report table has; columns not listed are left to pandas.
COLUMN_TYPES: dict[str, str] = _union(RECORD_TYPES, MATRIX_TYPES, TRAINING_TYPES, _OTHER_TYPES)

CSV_FILES = {"records": "records.csv", "matrix": "matrix.csv", "gradients": "gradients.csv",
             "training": "training.csv", "root_causes": "root_causes.csv"}

for _name, _columns in (("matrix", MATRIX_COLUMNS), ("gradients", GRADIENT_COLUMNS), ("training", TRAINING_COLUMNS)):
    _untyped = [c for c in _columns if c not in COLUMN_TYPES]
    if _untyped:  # pragma: no cover - a schema edit that forgot a type fails at import
        raise TypeError(f"{CSV_FILES[_name]} column(s) {_untyped} have no type")
