"""The regression gate: a report folder against the committed baseline.

Both folders are verified first (:func:`scratchnet_reference.reports.files.verify_folder`: a
manifest, every listed file present with its size and SHA-256, one run id), so an interrupted,
mixed or edited folder is refused before a number is read. Then the values are checked: a ratio
cell that is negative, or infinite in a passing row, a ``worst_ratio`` that is not the largest of
the row's ratio columns, a ``status`` that contradicts ``n_failed``, a check of the row's kind
left empty though none of its records is unverified, or a missing column the gate relies on
(:data:`REQUIRED_COLUMNS`) makes the file corrupt (:class:`GateError`, the CLI exits 2, naming the
row): a broken report or baseline never passes.

Rows are matched by the conformance-matrix key (:data:`scratchnet_reference.reports.schema.KEY_COLUMNS`);
row order and other columns are ignored. The gate fails, naming each offending row, when

* ``pass → fail`` — a row that passed in the baseline fails now;
* ``pass → unverified`` — a row that passed in the baseline is now unverified (every record of it,
  or one of its checks that had a ratio in the baseline has none now: the reference's own
  arithmetic broke down, so nothing was compared);
* ``missing from run`` — a baseline row is not in the run;
* ``not in baseline`` — a run row has no baseline row (new combinations are added on purpose,
  by promoting a run with ``scratchnet-conformance baseline``);
* ``tol_ratio grew`` — a check's worst ratio grew by the ``factor`` (default 10) or more::

      max(run, floor) >= factor · max(baseline, floor)

  ``>=``: a growth of exactly ×factor is caught. The **floor** keeps ratios that are rounding
  noise on both sides from tripping the gate: a drift that stays below ``factor · floor`` is not
  a regression, because below the floor the ratio measures which rounding the BLAS kernel and
  thread count happened to take, not the implementation. It is per dtype, :data:`DEFAULT_FLOORS`:
  ``float64`` 1e-4, ``float32`` 1e-2 — about a hundred float64 rounding steps and one to a few
  float32 ones. They were measured from reruns of the whole matrix under other BLAS kernels and
  threads (OpenBLAS 1 thread, SkylakeX and Sandybridge kernels; torch's default and AVX2 CPU
  capability, MKL AVX2): no ratio moved by more than ×2 above these floors, while below them a
  float32 loss that matched torch bit for bit (ratio 0) became one rounding step apart (ratio
  ~0.01) on another CPU. So the gate flags a float32 check once its ratio reaches 0.1 and ten times
  its baseline, a float64 check once it reaches 1e-3 — both still far below a failure (1).

Rows on a device other than CPU (CUDA) are compared only when both sides have rows on that
device: a CPU-only CI machine does not "lose" the baseline's CUDA rows, and a GPU run does not
need CUDA rows in a CPU baseline. Sides that share no device at all (an all-CUDA run against the
CPU baseline) are refused, saying so.

Before any row: the two folders must be two folders (not one path twice, nor a symlink to the
other), every file is read only when it is a regular file inside its folder and under a size cap
(:func:`~scratchnet_reference.reports.files.read_report_file`), and the metadata must agree on what
changes a comparison's meaning (:mod:`~scratchnet_reference.reports.comparability`: torch, NumPy and
Python versions, plan, implementation, errors, partial runs) — refused, or listed as warnings.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .comparability import Difference, format_differences, metadata_differences
from .files import CorruptFileError, read_csv, read_metadata, verify_folder
from .frames import conformance_matrix, read_records, row_label
from .schema import CSV_FILES, KEY_COLUMNS, RATIO_COLUMNS

__all__ = ["GateError", "GateResult", "DEFAULT_FACTOR", "DEFAULT_FLOORS", "FALLBACK_FLOOR", "UNVERIFIED_STATUSES",
           "UNVERIFIED_COUNT", "REQUIRED_COLUMNS", "EXPECTED_RATIOS", "load_matrix", "gate", "row_verdicts",
           "compare_matrices", "format_offenders"]

DEFAULT_FACTOR = 10.0
#: Ratios at or below the floor count as the floor (see the module docstring for the measurement).
DEFAULT_FLOORS: dict[str, float] = {"float64": 1e-4, "float32": 1e-2}
#: The floor of a dtype not in :data:`DEFAULT_FLOORS`.
FALLBACK_FLOOR = 1e-2
#: Statuses that are not a verdict: nothing was compared (the reference's arithmetic broke down).
#: Every status other than ``pass``/``fail`` that the gate accepts is one of these.
UNVERIFIED_STATUSES = ("unverified",)
#: The matrix column counting a row's unverified records.
UNVERIFIED_COUNT = "n_unverified"
#: Every column the gate reads.
REQUIRED_COLUMNS = (*KEY_COLUMNS, *RATIO_COLUMNS, "worst_ratio", "n_records", "n_failed", UNVERIFIED_COUNT, "status")
#: The ratio columns every row of a kind has unless it failed or has unverified records.
EXPECTED_RATIOS = {"case": ("forward_ratio", "loss_ratio", "gradient_ratio"), "training": ("training_ratio",),
                   "fit": ("training_ratio",)}
PROBLEMS = ("pass → fail", "pass → unverified", "missing from run", "not in baseline", "tol_ratio grew")


class GateError(Exception):
    """The gate could not compare: a folder or file is missing, unfinished, truncated or corrupt."""


@dataclass
class GateResult:
    """``offenders``: one row per problem (``problem``, ``row`` in words, ``detail`` and the key
    columns); ``compared``: rows matched on both sides."""

    offenders: pd.DataFrame
    compared: int
    baseline_rows: int
    run_rows: int
    skipped_devices: list[str] = field(default_factory=list)
    #: metadata differences (:mod:`.comparability`): warnings, and refusals when allowed
    differences: list[Difference] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.offenders.empty


def load_matrix(directory: str | os.PathLike[str], role: str = "report") -> pd.DataFrame:
    """The conformance matrix of a finished report folder: its ``matrix.csv``, else built from its
    ``records.csv``, checked (see the module docstring). ``role`` (``"report"``/``"baseline"``)
    goes into the error messages."""
    directory = Path(directory)
    if not directory.exists():
        raise GateError(f"{role} folder {directory} does not exist")
    if not directory.is_dir():
        raise GateError(f"{role} folder {directory} is not a folder")
    matrix_name, records_name = CSV_FILES["matrix"], CSV_FILES["records"]
    try:
        listed = verify_folder(directory).files
        if matrix_name in listed:
            path = directory / matrix_name
            matrix = read_csv(path, required=REQUIRED_COLUMNS)[0]
        elif records_name in listed:
            path = directory / records_name
            matrix = conformance_matrix(read_records(path))
        else:
            raise GateError(f"{role} folder {directory} has neither {matrix_name} nor {records_name}")
    except CorruptFileError as exc:
        raise GateError(f"{role} is corrupt or unfinished: {exc}") from None
    except OSError as exc:
        raise GateError(f"{role} file cannot be read: {exc}") from None
    _validate(matrix, path, role)
    return matrix


def _row_name(row: pd.Series) -> str:
    return f"'{row_label(row)}' ({row['dtype']}, {row['device']})"


def _corrupt(matrix: pd.DataFrame, bad: pd.Series, path: Path, role: str, what: str) -> None:
    """Raise :class:`GateError` naming the first row where ``bad`` holds and how many there are."""
    if bad.any():
        index = np.flatnonzero(bad.to_numpy())
        more = f" (and {len(index) - 1} more rows)" if len(index) > 1 else ""
        row = matrix.iloc[index[0]]
        cells = {k: "empty" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        raise GateError(f"{role} file is corrupt: {path}: row {index[0] + 1} {_row_name(row)}: "
                        f"{what.format(**cells)}{more}")


def _validate(matrix: pd.DataFrame, path: Path, role: str) -> None:
    """The values of a matrix, checked: corrupt cells raise :class:`GateError` naming the row."""
    if matrix.empty:
        raise GateError(f"{role} file {path} has no rows")
    allowed = ("pass", "fail", *UNVERIFIED_STATUSES)
    _corrupt(matrix, ~matrix["status"].isin(allowed), path, role,
             "status {status!r}, expected one of " + ", ".join(map(repr, allowed)))
    _corrupt(matrix, ~matrix["kind"].isin(list(EXPECTED_RATIOS)), path, role,
             "kind {kind!r}, expected " + " or ".join(map(repr, EXPECTED_RATIOS)))
    _corrupt(matrix, matrix.duplicated(list(KEY_COLUMNS)), path, role, "appears twice")
    ratio_columns = [*RATIO_COLUMNS, "worst_ratio"]
    for column in ratio_columns:
        values = matrix[column].astype(float)
        _corrupt(matrix, values < 0, path, role, f"{column} is {{{column}}}, a ratio cannot be negative")
        _corrupt(matrix, np.isinf(values) & (matrix["status"] != "fail"), path, role,
                 f"{column} is {{{column}}} in a row with status {{status}} (only a failed row may be infinite)")
    largest = matrix[list(RATIO_COLUMNS)].astype(float).max(axis=1)
    worst = matrix["worst_ratio"].astype(float)
    _corrupt(matrix.assign(_largest=largest), ~((largest == worst) | (largest.isna() & worst.isna())), path, role,
             "worst_ratio is {worst_ratio}, but the largest of its ratio columns is {_largest}")
    counts = matrix[["n_records", "n_failed", UNVERIFIED_COUNT]]
    _corrupt(matrix, (counts < 0).any(axis=1) | (matrix["n_records"] < 1)
             | (matrix["n_failed"] + matrix[UNVERIFIED_COUNT] > matrix["n_records"]), path, role,
             f"impossible counts n_records {{n_records}}, n_failed {{n_failed}}, {UNVERIFIED_COUNT} "
             f"{{{UNVERIFIED_COUNT}}}")
    _corrupt(matrix, (matrix["status"] == "fail") != (matrix["n_failed"] > 0), path, role,
             "status {status} contradicts n_failed {n_failed}")
    explained = (matrix["status"] == "fail") | (matrix[UNVERIFIED_COUNT] > 0)
    for kind, columns in EXPECTED_RATIOS.items():
        for column in columns:
            _corrupt(matrix, (matrix["kind"] == kind) & matrix[column].isna() & ~explained, path, role,
                     f"{column} is empty, but the row did not fail and none of its records is unverified")


def row_verdicts(matrix: pd.DataFrame) -> pd.Series:
    """``pass``, ``fail`` or ``unverified`` per row: ``unverified`` when the status is one of
    :data:`UNVERIFIED_STATUSES` or every record of a non-failing row is unverified."""
    unverified = matrix["status"].isin(UNVERIFIED_STATUSES) | (
        (matrix["status"] != "fail") & (matrix[UNVERIFIED_COUNT] >= matrix["n_records"]))
    return matrix["status"].where(~unverified, "unverified")


def _floor(dtype: str, floors: Mapping[str, float] | float | None) -> float:
    if floors is None:
        floors = DEFAULT_FLOORS
    if isinstance(floors, int | float):
        return float(floors)
    return floors.get(dtype, FALLBACK_FLOOR)


def _key(frame: pd.DataFrame) -> pd.Series:
    if frame.empty:  # agg on no rows gives a DataFrame, not a Series
        return pd.Series([], index=frame.index, dtype=object)
    return frame[list(KEY_COLUMNS)].astype(str).agg("|".join, axis=1)


def compare_matrices(run: pd.DataFrame, baseline: pd.DataFrame, factor: float = DEFAULT_FACTOR,
                     floors: Mapping[str, float] | float | None = None) -> GateResult:
    """The gate on two conformance matrices (see the module docstring)."""
    if not (isinstance(factor, int | float) and math.isfinite(factor) and factor > 1):
        raise ValueError(f"factor must be a finite number > 1, got {factor!r}")
    for role, frame in (("run", run), ("baseline", baseline)):
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"the {role} matrix lacks the column(s) {missing} the gate reads")
    skipped = []
    devices_run, devices_base = set(run["device"]), set(baseline["device"])
    if devices_run and devices_base and not devices_run & devices_base:
        raise GateError(f"the run and the baseline share no device (run: {', '.join(sorted(devices_run))}; baseline: "
                        f"{', '.join(sorted(devices_base))}): nothing can be compared — gate a run on the baseline's "
                        "device, or promote a baseline for this one")
    for device in sorted((devices_run ^ devices_base) - {"cpu"}):
        skipped.append(device)
    run = run[~run["device"].isin(skipped)].assign(_key=_key)
    baseline = baseline[~baseline["device"].isin(skipped)].assign(_key=_key)
    base_by_key = baseline.set_index("_key")
    run_by_key = run.set_index("_key")
    offenders: list[dict] = []

    def offend(problem: str, row: pd.Series, detail: str) -> None:
        offenders.append({"problem": problem, "row": row_label(row), "detail": detail,
                          **{c: row[c] for c in KEY_COLUMNS}})

    for key in base_by_key.index.difference(run_by_key.index, sort=False):
        row = base_by_key.loc[key]
        offend("missing from run", row, f"baseline status {row['status']}")
    for key in run_by_key.index.difference(base_by_key.index, sort=False):
        row = run_by_key.loc[key]
        offend("not in baseline", row, f"run status {row['status']}; promote a run to add it")
    common = base_by_key.index.intersection(run_by_key.index, sort=False)
    old, new = base_by_key.loc[common], run_by_key.loc[common]
    was, now = row_verdicts(old), row_verdicts(new)
    newly_failed = (was == "pass") & (now == "fail")
    for key in common[newly_failed.to_numpy()]:
        row = new.loc[key]
        worst = max((c for c in RATIO_COLUMNS if pd.notna(row[c])), key=lambda c: row[c], default=None)
        count = f"{int(row['n_failed'])} record(s) fail"
        offend("pass → fail", row, f"{count}; worst {worst} {row[worst]:.3g}" if worst else count)
    newly_unverified = (was == "pass") & (now == "unverified")
    for key in common[newly_unverified.to_numpy()]:
        row, n, k = new.loc[key], int(new.loc[key, "n_records"]), int(new.loc[key, UNVERIFIED_COUNT])
        emptied = [f"{c} {old.loc[key, c]:.3g} → empty" for c in RATIO_COLUMNS
                   if pd.notna(old.loc[key, c]) and pd.isna(row[c])]
        detail = (f"all {n} records unverified: nothing was compared" if k >= n else
                  f"{', '.join(emptied) or 'no ratio lost'} ({k} of {n} records unverified: "
                  "no oracle could judge them)")
        offend("pass → unverified", row, detail)
    flagged = newly_failed | newly_unverified
    floor = new["dtype"].map(lambda dtype: _floor(str(dtype), floors)).astype(float)
    for column in RATIO_COLUMNS:
        a, b = old[column].astype(float), new[column].astype(float)
        growth = b.clip(lower=floor) / a.clip(lower=floor)
        grew = (growth >= factor) & a.notna() & b.notna() & ~flagged
        for key in common[grew.to_numpy()]:
            offend("tol_ratio grew", new.loc[key], f"{column} {a[key]:.3g} → {b[key]:.3g} "
                                                   f"(×{growth[key]:.3g} ≥ ×{factor:g}, floor {floor[key]:g})")
    columns = ["problem", "row", "detail", *KEY_COLUMNS]
    frame = pd.DataFrame(offenders, columns=columns)
    if not frame.empty:
        order = {p: i for i, p in enumerate(PROBLEMS)}
        frame = (frame.assign(_order=frame["problem"].map(order))
                 .sort_values(["_order", *KEY_COLUMNS], kind="stable").drop(columns="_order").reset_index(drop=True))
    return GateResult(offenders=frame, compared=len(common), baseline_rows=len(baseline), run_rows=len(run),
                      skipped_devices=skipped)


def gate(report_dir: str | os.PathLike[str], baseline_dir: str | os.PathLike[str], factor: float = DEFAULT_FACTOR,
         floors: Mapping[str, float] | float | None = None, allow_differences: bool = False) -> GateResult:
    """Compare the report in ``report_dir`` with the baseline in ``baseline_dir``.

    Raises :class:`GateError` when either side cannot be read (missing, unfinished, mixed,
    truncated, corrupt values), when both are one folder, when they share no device, and when their
    metadata differ in a way that changes what the comparison means
    (:func:`~scratchnet_reference.reports.comparability.metadata_differences`; ``allow_differences``
    turns those refusals into listed warnings). Every difference is in ``result.differences``."""
    report_dir, baseline_dir = Path(report_dir), Path(baseline_dir)
    run = load_matrix(report_dir, "report")
    baseline = load_matrix(baseline_dir, "baseline")
    if report_dir.resolve() == baseline_dir.resolve():
        raise GateError(f"the report folder {report_dir} and the baseline {baseline_dir} are the same folder"
                        f" ({report_dir.resolve()}): a folder gated against itself always passes")
    try:
        differences = metadata_differences(read_metadata(report_dir), read_metadata(baseline_dir))
    except CorruptFileError as exc:
        raise GateError(f"metadata cannot be read: {exc}") from None
    refused = [d for d in differences if d.severity == "refuse"]
    if refused and not allow_differences:
        raise GateError(f"{report_dir} cannot be compared with {baseline_dir}; {len(refused)} difference(s) change "
                        f"what the comparison means (--allow-differences compares anyway):\n"
                        + format_differences(refused))
    result = compare_matrices(run, baseline, factor, floors)
    result.differences = differences
    return result


def format_offenders(result: GateResult, limit: int = 60) -> str:
    """The offenders as a plain-text table (at most ``limit`` rows, then a count)."""
    from tabulate import tabulate

    table = result.offenders[["problem", "row", "dtype", "device", "detail"]]
    text = tabulate(table.head(limit).to_numpy().tolist(), headers=list(table.columns), tablefmt="simple")
    if len(table) > limit:
        text += f"\n… and {len(table) - limit} more"
    return text
