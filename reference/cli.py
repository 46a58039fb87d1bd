"""``scratchnet-conformance`` (also ``python -m reference``): run the matrix, render, gate, promote.

::

    scratchnet-conformance run                      # whole matrix, every device → reports/latest/
    scratchnet-conformance run --quick --dtype float64 --no-training --out /tmp/smoke
    scratchnet-conformance run --impl mypkg.adapter:make_implementation   # your own network (reference.adapter)
    scratchnet-conformance report [DIR]             # redraw report.md/html/png from DIR's CSVs
    scratchnet-conformance gate [DIR] [BASELINE]    # DIR (reports/latest) against BASELINE (reports/baseline)
    scratchnet-conformance baseline [DIR]           # promote DIR to reports/baseline/ (explicitly, atomically)

Exit codes: 0 success; 1 a comparison failed (``run``) or the gate found regressions (``gate``);
2 bad arguments or a missing/corrupt file, with a one-line message; 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = ["main", "build_parser", "UsageError", "QUICK_HIDDEN", "QUICK_TRAINING", "BASELINE_FILES"]

PROG = "scratchnet-conformance"
DEFAULT_OUT = Path("reports/latest")
DEFAULT_BASELINE = Path("reports/baseline")
#: --quick: the matrix for these hidden activations (ReLU has the kink at 0) and these training runs.
QUICK_HIDDEN = ("relu",)
QUICK_TRAINING = (("sgd_momentum", "mini_batch"), ("adam", "stochastic"))
#: What a baseline keeps (small, and everything the gate reads); ``--all`` keeps every file.
BASELINE_FILES = ("matrix.csv", "training.csv", "report.md")


class UsageError(Exception):
    """Bad arguments or a missing/corrupt input: one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # noqa: D401 - argparse hook
        raise UsageError(f"{self.prog}: {message} (see --help)")


# --------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------

class ProgressBar:
    """A small progress bar on ``stream`` (stderr): redrawn in place on a terminal, one line per
    10 % otherwise (CI logs)."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True, width: int = 30):
        self.total, self.stream, self.enabled, self.width = total, stream or sys.stderr, enabled, width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self._last_decile = -1

    def update(self, done: int, label: str = "") -> None:
        if not self.enabled or self.total == 0:
            return
        elapsed = time.perf_counter() - self.start
        frac = done / self.total
        eta = elapsed / frac - elapsed if frac > 0 else math.nan
        eta_text = f"{eta:4.0f}s left" if math.isfinite(eta) else "        "
        if self.tty:
            filled = int(self.width * frac)
            bar = "#" * filled + "." * (self.width - filled)
            text = f"\r[{bar}] {done}/{self.total} {elapsed:5.1f}s {eta_text} {label[:40]:<40}"
            self.stream.write(text)
            if done == self.total:
                self.stream.write("\n")
            self.stream.flush()
        else:
            decile = int(frac * 10)
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(f"progress: {100 * frac:3.0f}% ({done}/{self.total}) {elapsed:.1f}s\n")
                self.stream.flush()

    def wrap(self, items: Sequence[Any], label=lambda item: "") -> Iterator[Any]:
        self.update(0)
        for i, item in enumerate(items, 1):
            yield item
            self.update(i, label(item))


# --------------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------------

def _job_label(job: tuple[str, tuple]) -> str:
    kind, args = job
    if kind == "case":
        return f"{args[0].id} {args[1]}"
    if kind == "training":
        return "training " + " ".join(args)
    return f"refusal {args[0]}+{args[1]}"


def _error_records(impl_name: str, job: tuple[str, tuple], exc: BaseException) -> list:
    """A job that raised becomes failing records (``tol_ratio = inf``, the exception in ``note``),
    so one crash shows up as a failed row instead of ending the run."""
    from .compare import combination, flavours_for
    from .lockstep import optimizer_label
    from .matrix import OPTIMIZER_CONFIGS
    from .records import Combination, Record
    from .runner import CASE_SIZES, training_spec

    kind, args = job
    note = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:500]
    combos: list[Combination] = []
    try:
        if kind == "case":
            case, device = args
            spec = case.spec(CASE_SIZES)
            combos = [combination(spec, f, device, impl_name) for f in flavours_for(spec)]
        else:
            opt, mode, dtype, device = args
            spec = training_spec(dtype)
            combos = [combination(spec, "fused" if spec.fused else "modular", device, impl_name,
                                  optimizer=optimizer_label(OPTIMIZER_CONFIGS[opt]), gd_mode=mode)]
    except Exception:  # noqa: BLE001 - the spec itself is broken: name the row from the job
        if kind == "case":
            case, device = args
            combos = [Combination(hidden=f"{case.hidden},{case.hidden}", output=case.output, loss=case.loss,
                                  reduction=case.reduction, flavour="modular", dtype=case.dtype, device=device,
                                  impl=impl_name)]
        else:
            opt, mode, dtype, device = args
            combos = [Combination(hidden="tanh,tanh", output="softmax", loss="cross_entropy", reduction="mean",
                                  flavour="fused", dtype=dtype, device=device, impl=impl_name,
                                  optimizer=optimizer_label(OPTIMIZER_CONFIGS[opt]), gd_mode=mode)]
    check = "forward" if kind == "case" else "training_step"
    inf = float("inf")
    return [Record(check=check, param="error", shape="()", **c.__dict__, max_abs_err=inf, max_rel_err=inf,
                   tol_ratio=inf, atol=math.nan, rtol=math.nan, passed=False, status="fail", worst_index="()",
                   step=0 if check == "training_step" else -1, note=note) for c in combos]


def execute(impl: Any, plan: Any, jobs: Sequence[tuple[str, tuple]],
            progress: ProgressBar | None = None,
            not_implemented: list[tuple[tuple[str, tuple], str]] | None = None) -> tuple[list, list[str], list[str]]:
    """Run ``jobs`` (from ``plan.jobs()``): ``(records, refusal messages, errors)``. A job that
    raises is recorded as failing records and reported in ``errors``; the run goes on. With a
    ``not_implemented`` list, a job raising ``NotImplementedError`` is appended there instead."""
    from .runner import run_matrix

    errors: list[str] = []

    def on_error(job: tuple[str, tuple], exc: Exception) -> list:
        errors.append(f"{_job_label(job)}: {type(exc).__name__}: {' '.join(str(exc).split())}"[:300])
        if os.environ.get("SCRATCHNET_CONFORMANCE_TRACEBACK"):
            traceback.print_exc()
        return [] if job[0] == "refusal" else _error_records(getattr(impl, "name", "impl"), job, exc)

    wrap = (lambda items: progress.wrap(items, _job_label)) if progress else (lambda items: items)
    records, refusals = run_matrix(impl, plan, wrap, not_implemented, jobs=list(jobs), on_error=on_error)
    return records, refusals, errors


def _devices(requested: list[str] | None) -> list[str]:
    from ._torch import available_devices

    available = available_devices()
    if not requested:
        return available
    devices = []
    for device in requested:
        base = device.split(":")[0]
        if base not in ("cpu", "cuda"):
            raise UsageError(f"{PROG} run: --device must be cpu or cuda[:N], got {device!r}")
        if base == "cuda" and "cuda" not in available:
            raise UsageError(f"{PROG} run: --device {device}: CUDA is not available on this machine "
                             f"(available: {', '.join(available)})")
        if device not in devices:
            devices.append(device)
    return devices


def _load_impl(text: str | None) -> tuple[Any, Any]:
    """``--impl`` loaded and validated (scratchnet when not given); a malformed adapter is a
    usage error listing what is missing."""
    from .adapter import AdapterError, load_implementation

    try:
        return load_implementation(text)
    except AdapterError as exc:
        raise UsageError(f"{PROG} run: --impl: {exc}") from None


def _every_job(job: tuple[str, tuple]) -> bool:
    return True


def _quick_plan(plan: Any) -> tuple[Any, Any]:
    """``--quick`` for the implementation's capabilities: hidden QUICK_HIDDEN (else the first
    hidden activation it implements) and QUICK_TRAINING (else its first training configuration)."""
    caps = plan.capabilities
    hidden = set(QUICK_HIDDEN) if caps is None or set(QUICK_HIDDEN) & caps.hidden else {min(caps.hidden, default="")}
    implemented = [tuple(args[:2]) for kind, args in plan.jobs() if kind == "training"]
    training = {t for t in QUICK_TRAINING if t in implemented} or set(implemented[:1])

    def keep(job: tuple[str, tuple]) -> bool:
        kind, args = job
        return kind != "training" or tuple(args[:2]) in training

    return (lambda case: case.hidden in hidden), keep


def _not_implemented_summary(impl_name: str, items: list[tuple[tuple[str, tuple], str]], limit: int = 6) -> str:
    from collections import Counter

    kinds = Counter(job[0] for job, _ in items)
    reasons = Counter(part.strip() for _, reason in items for part in reason.split(", "))
    what = ", ".join(f"{n} {'matrix cases' if kind == 'case' else 'training runs'}" for kind, n in kinds.items())
    top = ", ".join(f"{r} ({n})" for r, n in reasons.most_common(limit))
    more = f", … {len(reasons) - limit} more" if len(reasons) > limit else ""
    return f"{what} not implemented by {impl_name}: {top}{more}"


def cmd_run(args: argparse.Namespace) -> int:
    from .matrix import DTYPES
    from .report_files import write_csv
    from .reports import conformance_matrix, records_frame, summary_table, write_reports
    from .runner import RunPlan

    impl, caps = _load_impl(args.impl)
    devices = _devices(args.device)
    dtypes = tuple(dict.fromkeys(args.dtype)) if args.dtype else DTYPES
    plan = RunPlan(devices=tuple(devices), dtypes=dtypes, training=not args.no_training, fd=args.fd,
                   capabilities=None if caps.is_everything else caps)
    keep = _every_job
    if args.quick:
        plan.case_filter, keep = _quick_plan(plan)
    jobs = [job for job in plan.jobs() if keep(job)]
    skipped = [(job, reason) for job, reason in plan.not_implemented() if keep(job)]
    progress = ProgressBar(len(jobs), enabled=not args.no_progress)
    start = time.perf_counter()
    records, refusals, errors = execute(impl, plan, jobs, progress, not_implemented=skipped)
    wall = time.perf_counter() - start
    profile = args.profile or ("quick" if args.quick else "full")
    metadata = {
        "profile": profile,
        "plan": (f"devices={','.join(devices)} dtypes={','.join(dtypes)} training={'no' if args.no_training else 'yes'}"
                 f" fd={args.fd} quick={'yes' if args.quick else 'no'}"),
        "jobs": str(len(jobs)),
        "refusals": f"{len(refusals)} undefined output/loss pairs refused",
        "errors": "; ".join(errors)[:1000] if errors else "none",
        "wall_time_s": f"{wall:.1f}",
    }
    if args.impl:
        metadata.update(impl=impl.name, impl_spec=args.impl, capabilities=caps.describe())
    if skipped:
        metadata["not_implemented"] = _not_implemented_summary(impl.name, skipped)
    out = Path(args.out)
    write_reports(records, out, metadata)
    if skipped:
        import pandas as pd

        table = pd.DataFrame([(kind, _job_label((kind, args)), reason) for (kind, args), reason in skipped],
                             columns=["kind", "job", "not_implemented"])
        write_csv(table, out / "not_implemented.csv", metadata, table="not_implemented")
    matrix = conformance_matrix(records_frame(records))
    _print_run_summary(matrix, summary_table(matrix), errors, out, wall, records=records,
                       not_implemented=metadata.get("not_implemented", ""))
    n_fail = int((matrix["status"] == "fail").sum())
    return 1 if n_fail or errors else 0


def _print_run_summary(matrix, summary, errors: list[str], out: Path, wall: float, records: Sequence[Any] = (),
                       not_implemented: str = "") -> None:
    from tabulate import tabulate

    from .reports import failures_table

    def fmt(v: Any) -> str:
        return "—" if isinstance(v, float) and math.isnan(v) else (f"{v:.2e}" if isinstance(v, float) else str(v))

    print(tabulate(summary.map(fmt).to_numpy().tolist(), headers=list(summary.columns), tablefmt="simple",
                   disable_numparse=True))
    failures = failures_table(matrix)
    if len(failures):
        print(f"\nfailing rows ({len(failures)}):")
        print(tabulate(failures.head(30).map(fmt).to_numpy().tolist(), headers=list(failures.columns),
                       tablefmt="simple", disable_numparse=True))
        if len(failures) > 30:
            print(f"… and {len(failures) - 30} more (see {out / 'matrix.csv'})")
    diagnosed = [r for r in records if r.status == "fail" and r.diagnosis]
    if diagnosed:
        from .diagnosis import summary_lines

        print("\ndiagnosis of the failing parameters (first wrong layer from the output first; every row: the "
              "diagnosis column of gradients.csv):")
        for line in summary_lines(diagnosed):
            print(f"  {line}")
    for error in errors[:20]:
        print(f"error: {error}")
    if not_implemented:
        print(f"\nnot failures — {not_implemented} (see not_implemented.csv)")
    n_fail = int((matrix["status"] == "fail").sum())
    print(f"\nreports: {out}/ (report.html, report.md, matrix.csv, ...); ran in {wall:.1f} s")
    print(f"conformance: {len(matrix) - n_fail} passed, {n_fail} failed")


# --------------------------------------------------------------------------------------------
# report, gate, baseline
# --------------------------------------------------------------------------------------------

def _existing_dir(path: Path, role: str, command: str) -> Path:
    if not path.exists():
        raise UsageError(f"{PROG} {command}: {role} folder {path} does not exist")
    if not path.is_dir():
        raise UsageError(f"{PROG} {command}: {role} {path} is not a folder")
    return path


def cmd_report(args: argparse.Namespace) -> int:
    from .report_files import CorruptFileError
    from .reports import render_reports

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
    from .gate import GateError, load_matrix
    from .report_files import replace_directory

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


# --------------------------------------------------------------------------------------------
# Parser and entry point
# --------------------------------------------------------------------------------------------

def bounded(cast: type, low: float) -> Any:
    """An argparse ``type``: ``cast(text)`` (int or float), finite and ``>= low``, else a clear error."""
    what = "a whole number" if cast is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if not (math.isfinite(value) and value >= low):
            raise argparse.ArgumentTypeError(f"must be {what} ≥ {low:g}, got {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    from .gate import DEFAULT_FACTOR, DEFAULT_FLOORS

    parser = _Parser(prog=PROG, description="scratchnet vs torch: conformance runs, reports and the regression gate.")
    sub = parser.add_subparsers(dest="command", metavar="{run,report,gate,baseline,study}", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser("run", help="run the conformance matrix and write the reports",
                         description="Run the whole conformance matrix (every available device unless --device) "
                                     "and write the reports; exit 1 if any comparison fails.")
    run.add_argument("--out", default=str(DEFAULT_OUT), help=f"report folder (default {DEFAULT_OUT})")
    run.add_argument("--device", action="append", metavar="DEVICE",
                     help="cpu or cuda[:N]; repeat for several (default: every available device)")
    run.add_argument("--dtype", action="append", choices=("float64", "float32"),
                     help="repeat for several (default: float64 and float32)")
    run.add_argument("--no-training", action="store_true", help="skip the lockstep training runs")
    run.add_argument("--fd", choices=("never", "on_failure", "always"), default="on_failure",
                     help="finite-difference tie-breaker for gradients (default on_failure)")
    run.add_argument("--quick", action="store_true",
                     help=f"a small deterministic subset for CI smoke: hidden {'/'.join(QUICK_HIDDEN)} and "
                          f"{len(QUICK_TRAINING)} training runs per dtype")
    run.add_argument("--profile", default=None, help="a name recorded in the metadata (default full or quick)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    run.add_argument("--impl", default=None, metavar="MODULE:FACTORY",
                     help="your own implementation: package.module:factory or path/to/adapter.py:factory "
                          "(default scratchnet; see reference/adapter.py and examples/adapter_template.py). "
                          "The matrix narrows to its declared capabilities; the rest is reported as not implemented")
    run.set_defaults(func=cmd_run)

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

    from .study import add_study_parser  # the multi-class study (reference/study.py)

    add_study_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``scratchnet-conformance``; returns the exit code."""
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help / --version
            return int(exc.code or 0)
        return int(args.func(args))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if exc.name not in ("pandas", "matplotlib", "tabulate", "jinja2", "PIL", "torch"):
            raise
        print(f"error: {PROG} needs {exc.name}: pip install -c constraints.txt 'scratchnet[reference,reports]'",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # pragma: no cover - `| head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
