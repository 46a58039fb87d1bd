"""``scratchnet-conformance report | gate | baseline``: re-render a report folder, gate it against
the baseline, promote it to the baseline."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..console import PROG, UsageError, bounded

__all__ = ["add_report_parsers", "cmd_report", "cmd_gate", "cmd_baseline", "check_output_dir", "BASELINE_FILES",
           "DEFAULT_BASELINE"]

DEFAULT_OUT = Path("reports/latest")
DEFAULT_BASELINE = Path("reports/baseline")
#: What a baseline keeps (small, and everything the gate reads), besides ``metadata.json`` and
#: ``manifest.json``; ``--all`` keeps every file.
BASELINE_FILES = ("matrix.csv", "training.csv", "report.md")


def check_output_dir(path: str | Path, command: str, option: str) -> Path:
    """``path`` as an output folder, or a :class:`UsageError` naming the option — checked before any
    work starts (a file, a path under a file, a folder that cannot be written)."""
    from .files import output_dir_problem  # here, not at the top: `ops` needs no pandas to start

    problem = output_dir_problem(path)
    if problem:
        raise UsageError(f"{PROG} {command}: {option} {path}: {problem}")
    return Path(path)


def _factor(text: str) -> float:
    value = bounded(float, 1)(text)
    if value == 1:
        raise argparse.ArgumentTypeError(f"must be a number > 1 (×1 would flag every unchanged ratio), got {text!r}")
    return value


def add_report_parsers(sub: Any) -> None:
    """Add the ``report``, ``gate`` and ``baseline`` subcommands to the CLI's subparsers."""
    try:
        from .gate import DEFAULT_FACTOR, DEFAULT_FLOORS
    except ModuleNotFoundError as exc:  # no pandas: `ops` must still start; `gate` itself names the install
        if exc.name != "pandas":
            raise
        DEFAULT_FACTOR, DEFAULT_FLOORS = float("nan"), {}

    report = sub.add_parser("report", help="re-render report.md/html/png from a report folder's CSVs")
    report.add_argument("dir", nargs="?", default=str(DEFAULT_OUT), help=f"report folder (default {DEFAULT_OUT})")
    report.set_defaults(func=cmd_report)

    floors = ", ".join(f"{k} {v:g}" for k, v in DEFAULT_FLOORS.items())
    gate = sub.add_parser("gate", help="compare a report folder with the baseline; exit 1 on regressions",
                          description="Fail (exit 1) when a row that passed fails or is unverified now, a baseline row "
                                      "is missing, a row has no baseline, or a tol_ratio grew by --factor or more. "
                                      "Exit 2 when either folder is unfinished, mixed, edited or holds corrupt values.")
    gate.add_argument("dir", nargs="?", default=str(DEFAULT_OUT), help=f"report folder (default {DEFAULT_OUT})")
    gate.add_argument("baseline", nargs="?", default=str(DEFAULT_BASELINE),
                      help=f"baseline folder (default {DEFAULT_BASELINE})")
    gate.add_argument("--factor", type=_factor, default=DEFAULT_FACTOR,
                      help=f"a tol_ratio that grew by this or more fails (> 1, default {DEFAULT_FACTOR:g})")
    gate.add_argument("--floor", type=bounded(float, 0), default=None,
                      help=f"ratios below this count as this, for every dtype (default per dtype: {floors})")
    gate.add_argument("--allow-differences", action="store_true",
                      help="compare even when the metadata differ in what changes a comparison's meaning (another "
                           "torch release, plan, implementation, a run whose jobs raised): listed as warnings")
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
    from .folder import render_reports

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
        result = gate(Path(args.dir), Path(args.baseline), factor=args.factor, floors=args.floor,
                      allow_differences=args.allow_differences)
    except GateError as exc:
        raise UsageError(f"{PROG} gate: {exc}") from None
    for difference in result.differences:
        print(f"gate: warning: {difference}")
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
    """Promote a finished report folder: the files copied into a staging folder beside the baseline,
    sealed with their own manifest, then swapped in whole (:func:`.files.replace_directory`). SIGTERM
    is an exception meanwhile, so the staging folder is removed; debris of a SIGKILLed promotion is
    removed by the next one and never read (hidden name)."""
    from .files import ReportFolder, read_metadata, replace_directory, terminate_as_exception, verify_folder
    from .gate import GateError, load_matrix
    from .ownership import is_baseline, mark_baseline, ownership_problem

    source = _existing_dir(Path(args.dir), "report", "baseline")
    target = check_output_dir(args.to, "baseline", "--to")
    if source.resolve() == target.resolve():
        raise UsageError(f"{PROG} baseline: the report folder and the baseline are the same folder ({target})")
    if target.is_dir() and not is_baseline(target):
        problem = ownership_problem(target)  # a report folder, an empty one or a stranger's
        if problem:
            raise UsageError(f"{PROG} baseline: --to {problem.replace('--force', 'another --to')}")
    try:
        matrix = load_matrix(source, "report")
        listed = verify_folder(source).files
    except GateError as exc:
        raise UsageError(f"{PROG} baseline: {exc}") from None
    if args.all:
        names = sorted(name for name in listed if name != "metadata.json")
    else:
        names = list(BASELINE_FILES)
        missing = [n for n in names if n not in listed]
        if missing:
            raise UsageError(f"{PROG} baseline: {source} lacks {', '.join(missing)} — run `{PROG} run` first")
    target.parent.mkdir(parents=True, exist_ok=True)
    with terminate_as_exception():
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new-"))
        try:
            staging.chmod(0o755)
            with ReportFolder(staging, read_metadata(source)) as folder:
                for name in names:
                    folder.write_bytes(name, (source / name).read_bytes(), rows=listed[name].get("rows"))
            mark_baseline(staging)  # `run --out` refuses it from now on (outside the manifest)
            replace_directory(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    n_fail = int((matrix["status"] == "fail").sum())
    size = sum(p.stat().st_size for p in target.iterdir())
    print(f"baseline: promoted {source}/ to {target}/ ({len(names)} files and the manifest, {size} bytes, "
          f"{len(matrix)} matrix rows" + (f", {n_fail} of them failing: the gate accepts them until they change"
                                          if n_fail else "") + ")")
    return 0
