"""``scratchnet-conformance report | gate | baseline``: re-render a report folder, gate it against
the baseline, promote it to the baseline."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..console import PROG, UsageError, bounded

__all__ = ["add_report_parsers", "cmd_report", "cmd_gate", "cmd_baseline", "BASELINE_FILES", "DEFAULT_BASELINE"]

DEFAULT_OUT = Path("reports/latest")
DEFAULT_BASELINE = Path("reports/baseline")
#: What a baseline keeps (small, and everything the gate reads); ``--all`` keeps every file.
BASELINE_FILES = ("matrix.csv", "training.csv", "report.md")


def add_report_parsers(sub: Any) -> None:
    """Add the ``report``, ``gate`` and ``baseline`` subcommands to the CLI's subparsers."""
    from .gate import DEFAULT_FACTOR, DEFAULT_FLOORS

    report = sub.add_parser("report", help="re-render report.md/html/png from a report folder's CSVs")
    report.add_argument("dir", nargs="?", default=str(DEFAULT_OUT), help=f"report folder (default {DEFAULT_OUT})")
    report.set_defaults(func=cmd_report)

    floors = ", ".join(f"{k} {v:g}" for k, v in DEFAULT_FLOORS.items())
    gate = sub.add_parser("gate", help="compare a report folder with the baseline; exit 1 on regressions",
                          description="Fail (exit 1) when a row that passed fails, a baseline row is missing, a row "
                                      "has no baseline, or a tol_ratio grew by more than --factor.")
    gate.add_argument("dir", nargs="?", default=str(DEFAULT_OUT), help=f"report folder (default {DEFAULT_OUT})")
    gate.add_argument("baseline", nargs="?", default=str(DEFAULT_BASELINE),
                      help=f"baseline folder (default {DEFAULT_BASELINE})")
    gate.add_argument("--factor", type=bounded(float, 1), default=DEFAULT_FACTOR,
                      help=f"largest accepted growth of a tol_ratio (default {DEFAULT_FACTOR:g})")
    gate.add_argument("--floor", type=bounded(float, 0), default=None,
                      help=f"ratios below this count as this, for every dtype (default per dtype: {floors})")
    gate.set_defaults(func=cmd_gate)

    baseline = sub.add_parser("baseline", help="promote a report folder to the baseline (explicitly, atomically)")
    baseline.add_argument("dir", nargs="?", default=str(DEFAULT_OUT), help=f"report folder (default {DEFAULT_OUT})")
    baseline.add_argument("--to", default=str(DEFAULT_BASELINE), help=f"baseline folder (default {DEFAULT_BASELINE})")
    baseline.add_argument("--all", action="store_true",
                          help=f"keep every file (raw records, HTML, PNGs), not only {', '.join(BASELINE_FILES)}")
    baseline.set_defaults(func=cmd_baseline)


def _existing_dir(path: Path, role: str, command: str) -> Path:
    if not path.exists():
        raise UsageError(f"{PROG} {command}: {role} folder {path} does not exist")
    if not path.is_dir():
        raise UsageError(f"{PROG} {command}: {role} {path} is not a folder")
    return path


def cmd_report(args: argparse.Namespace) -> int:
    from .files import CorruptFileError
    from .tables import render_reports

    directory = _existing_dir(Path(args.dir), "report", "report")
    try:
        written = render_reports(directory)
    except FileNotFoundError as exc:
        raise UsageError(f"{PROG} report: {exc.filename} is missing — run `{PROG} run` first") from None
    except CorruptFileError as exc:
        raise UsageError(f"{PROG} report: {exc}") from None
    print(f"report: re-rendered {len(written)} files in {directory}/")
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    from .gate import GateError, format_offenders, gate

    try:
        result = gate(Path(args.dir), Path(args.baseline), factor=args.factor, floors=args.floor)
    except GateError as exc:
        raise UsageError(f"{PROG} gate: {exc}") from None
    skipped = f"; not compared (only one side has them): {', '.join(result.skipped_devices)}" \
        if result.skipped_devices else ""
    print(f"gate: {args.dir} against {args.baseline}: {result.compared} rows compared "
          f"(baseline {result.baseline_rows}, run {result.run_rows}), factor ×{args.factor:g}{skipped}")
    if not result.passed:
        print(format_offenders(result))
        counts = result.offenders["problem"].value_counts()
        print("gate: FAILED — " + ", ".join(f"{n} {p}" for p, n in counts.items()))
    n_offending = result.offenders[["problem", "row", "dtype", "device"]].drop_duplicates().shape[0]
    print(f"gate: {max(result.compared - n_offending, 0)} passed, {len(result.offenders)} failed")
    return 0 if result.passed else 1


def cmd_baseline(args: argparse.Namespace) -> int:
    from .files import replace_directory
    from .gate import GateError, load_matrix

    source = _existing_dir(Path(args.dir), "report", "baseline")
    target = Path(args.to)
    if source.resolve() == target.resolve():
        raise UsageError(f"{PROG} baseline: the report folder and the baseline are the same folder ({target})")
    try:
        matrix = load_matrix(source, "report")
    except GateError as exc:
        raise UsageError(f"{PROG} baseline: {exc}") from None
    if args.all:
        names = sorted(p.name for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
    else:
        names = list(BASELINE_FILES)
        missing = [n for n in names if not (source / n).is_file()]
        if missing:
            raise UsageError(f"{PROG} baseline: {source} lacks {', '.join(missing)} — run `{PROG} run` first")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new-"))
    try:
        for name in names:
            shutil.copy2(source / name, staging / name)
        staging.chmod(0o755)
        replace_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    n_fail = int((matrix["status"] == "fail").sum())
    size = sum((target / n).stat().st_size for n in names)
    print(f"baseline: promoted {source}/ to {target}/ ({len(names)} files, {size} bytes, {len(matrix)} matrix rows"
          + (f", {n_fail} of them failing: the gate accepts them until they change" if n_fail else "") + ")")
    return 0
