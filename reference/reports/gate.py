"""The regression gate: a report folder against the committed baseline.

Rows are matched by the conformance-matrix key (:data:`scratchnet_reference.reports.tables.KEY_COLUMNS`); row
order and columns other than the key, the ratio columns and ``status`` are ignored. The gate
fails, naming each offending row, when

* ``pass → fail`` — a row that passed in the baseline fails now;
* ``missing from run`` — a baseline row is not in the run;
* ``not in baseline`` — a run row has no baseline row (new combinations are added on purpose,
  by promoting a run with ``scratchnet-conformance baseline``);
* ``tol_ratio grew`` — a check's worst ratio grew by more than ``factor`` (default 10)::

      max(run, floor) > factor · max(baseline, floor)

  The **floor** keeps ratios that are rounding noise on both sides from tripping the gate
  (0 → 1e-6 is not a regression). It is per dtype, :data:`DEFAULT_FLOORS`: ``float64`` 1e-4,
  ``float32`` 1e-2 — about a hundred float64 rounding steps and one to a few float32 ones. They
  were measured: the whole matrix rerun under other BLAS kernels and threads (OpenBLAS 1 thread,
  SkylakeX and Sandybridge kernels; torch's default and AVX2 CPU capability, MKL AVX2) moved no
  ratio by more than ×2 above these floors, while below them a float32 loss that matched torch
  bit for bit (ratio 0) can become one rounding step apart (ratio ~0.01) on another CPU. So
  the gate flags a float32 check once its ratio passes 0.1 and ten times its baseline, a float64
  check once it passes 1e-3 — both still far below a failure (1).

Rows on a device other than CPU (CUDA) are compared only when both sides have rows on that
device: a CPU-only CI machine does not "lose" the baseline's CUDA rows, and a GPU run does not
need CUDA rows in a CPU baseline. A missing, empty, truncated or unparsable file raises
:class:`GateError` (the CLI exits 2): a broken baseline never passes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .files import CorruptFileError, read_csv
from .tables import CSV_FILES, KEY_COLUMNS, RATIO_COLUMNS, conformance_matrix, read_records, row_label

__all__ = ["GateError", "GateResult", "DEFAULT_FACTOR", "DEFAULT_FLOORS", "FALLBACK_FLOOR", "load_matrix", "gate",
           "compare_matrices", "format_offenders"]

DEFAULT_FACTOR = 10.0
#: Ratios at or below the floor count as the floor (see the module docstring for the measurement).
DEFAULT_FLOORS: dict[str, float] = {"float64": 1e-4, "float32": 1e-2}
#: The floor of a dtype not in :data:`DEFAULT_FLOORS`.
FALLBACK_FLOOR = 1e-2
GATE_COLUMNS = (*KEY_COLUMNS, "status")
PROBLEMS = ("pass → fail", "missing from run", "not in baseline", "tol_ratio grew")


class GateError(Exception):
    """The gate could not compare: a file is missing, empty, truncated or corrupt."""


@dataclass
class GateResult:
    """``offenders``: one row per problem (``problem``, ``row`` in words, ``detail`` and the key
    columns); ``compared``: rows matched on both sides."""

    offenders: pd.DataFrame
    compared: int
    baseline_rows: int
    run_rows: int
    skipped_devices: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.offenders.empty


def load_matrix(directory: str | os.PathLike[str], role: str = "report") -> pd.DataFrame:
    """The conformance matrix of a report folder: its ``matrix.csv``, else built from its
    ``records.csv``. ``role`` (``"report"``/``"baseline"``) goes into the error messages."""
    directory = Path(directory)
    if not directory.exists():
        raise GateError(f"{role} folder {directory} does not exist")
    if not directory.is_dir():
        raise GateError(f"{role} folder {directory} is not a folder")
    matrix_path, records_path = directory / CSV_FILES["matrix"], directory / CSV_FILES["records"]
    try:
        if matrix_path.exists():
            matrix = read_csv(matrix_path, required=(*GATE_COLUMNS, *RATIO_COLUMNS))[0]
        elif records_path.exists():
            matrix = conformance_matrix(read_records(records_path))
        else:
            raise GateError(f"{role} folder {directory} has neither {CSV_FILES['matrix']} nor {CSV_FILES['records']}")
    except CorruptFileError as exc:
        raise GateError(f"{role} file is corrupt: {exc}") from None
    except OSError as exc:
        raise GateError(f"{role} file cannot be read: {exc}") from None
    _validate(matrix, matrix_path if matrix_path.exists() else records_path, role)
    return matrix


def _validate(matrix: pd.DataFrame, path: Path, role: str) -> None:
    bad_status = ~matrix["status"].isin(["pass", "fail", "unverified"])
    if bad_status.any():
        first = int(bad_status.to_numpy().nonzero()[0][0])
        raise GateError(f"{role} file is corrupt: {path}: row {first + 1} has status "
                        f"{matrix['status'].iloc[first]!r}, expected 'pass', 'fail' or 'unverified'")
    duplicated = matrix.duplicated(list(KEY_COLUMNS))
    if duplicated.any():
        row = matrix[duplicated].iloc[0]
        raise GateError(f"{role} file is corrupt: {path}: row '{row_label(row)}' ({row['dtype']}, {row['device']}) "
                        "appears twice")
    if matrix.empty:
        raise GateError(f"{role} file {path} has no rows")


def _floor(dtype: str, floors: Mapping[str, float] | float | None) -> float:
    if floors is None:
        floors = DEFAULT_FLOORS
    if isinstance(floors, int | float):
        return float(floors)
    return floors.get(dtype, FALLBACK_FLOOR)


def _key(frame: pd.DataFrame) -> pd.Series:
    return frame[list(KEY_COLUMNS)].astype(str).agg("|".join, axis=1)


def compare_matrices(run: pd.DataFrame, baseline: pd.DataFrame, factor: float = DEFAULT_FACTOR,
                     floors: Mapping[str, float] | float | None = None) -> GateResult:
    """The gate on two conformance matrices (see the module docstring)."""
    if not (isinstance(factor, int | float) and math.isfinite(factor) and factor >= 1):
        raise ValueError(f"factor must be a finite number ≥ 1, got {factor!r}")
    skipped = []
    devices_run, devices_base = set(run["device"]), set(baseline["device"])
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
    # unverified — no oracle could judge a record — is a regression from pass, like fail
    newly_failed = (old["status"] == "pass") & new["status"].isin(["fail", "unverified"])
    for key in common[newly_failed.to_numpy()]:
        row = new.loc[key]
        worst = max((c for c in RATIO_COLUMNS if pd.notna(row[c])), key=lambda c: row[c], default=None)
        column, verb = ("n_failed", "fail") if row["status"] == "fail" else ("n_unverified", "unverified")
        count = f"{int(row[column])} record(s) {verb}" if column in row and pd.notna(row[column]) else verb
        offend(f"pass → {row['status']}", row, f"{count}; worst {worst} {row[worst]:.3g}" if worst else count)
    floor = new["dtype"].map(lambda dtype: _floor(str(dtype), floors)).astype(float)
    for column in RATIO_COLUMNS:
        a, b = old[column].astype(float), new[column].astype(float)
        growth = b.clip(lower=floor) / a.clip(lower=floor)
        grew = (growth > factor) & a.notna() & b.notna() & ~newly_failed
        for key in common[grew.to_numpy()]:
            offend("tol_ratio grew", new.loc[key], f"{column} {a[key]:.3g} → {b[key]:.3g} "
                                                   f"(×{growth[key]:.3g} > ×{factor:g}, floor {floor[key]:g})")
    columns = ["problem", "row", "detail", *KEY_COLUMNS]
    frame = pd.DataFrame(offenders, columns=columns)
    if not frame.empty:
        order = {p: i for i, p in enumerate(PROBLEMS)}
        frame = (frame.assign(_order=frame["problem"].map(order))
                 .sort_values(["_order", *KEY_COLUMNS], kind="stable").drop(columns="_order").reset_index(drop=True))
    return GateResult(offenders=frame, compared=len(common), baseline_rows=len(baseline), run_rows=len(run),
                      skipped_devices=skipped)


def gate(report_dir: str | os.PathLike[str], baseline_dir: str | os.PathLike[str], factor: float = DEFAULT_FACTOR,
         floors: Mapping[str, float] | float | None = None) -> GateResult:
    """Compare the report in ``report_dir`` with the baseline in ``baseline_dir``.

    Raises :class:`GateError` when either side cannot be read (missing, truncated, corrupt)."""
    run = load_matrix(report_dir, "report")
    baseline = load_matrix(baseline_dir, "baseline")
    return compare_matrices(run, baseline, factor, floors)


def format_offenders(result: GateResult, limit: int = 60) -> str:
    """The offenders as a plain-text table (at most ``limit`` rows, then a count)."""
    from tabulate import tabulate

    table = result.offenders[["problem", "row", "dtype", "device", "detail"]]
    text = tabulate(table.head(limit).to_numpy().tolist(), headers=list(table.columns), tablefmt="simple")
    if len(table) > limit:
        text += f"\n… and {len(table) - limit} more"
    return text
