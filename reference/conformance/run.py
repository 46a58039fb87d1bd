"""``scratchnet-conformance run``: the conformance run of one implementation — the matrix on every
requested device with a progress bar, a crashed job recorded as failing rows, the reports written,
the summary (failing rows, their diagnosis, what is not implemented) printed.

User code (``--impl``) runs job by job in a killable worker (:mod:`.isolated_jobs`): a job that hangs
past ``--timeout``, exits or raises anything is that job's named failure and the run goes on. Each
finished job's records go to the journal at once (:mod:`~scratchnet_reference.reports.journal`); a run
interrupted by Ctrl-C or SIGTERM writes an explicitly partial report (the gate refuses it).

Exit code: 0 all passed, 1 a comparison failed or a job raised, 2 bad arguments or an output folder
that is refused, in use or full, 130 Ctrl-C, 143 SIGTERM (both after writing the partial report)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..console import PROG, ProgressBar, StageLine, UsageError, bounded
from ..core.isolation import DEFAULT_TIMEOUT_S

__all__ = ["add_run_parser", "cmd_run", "QUICK_HIDDEN", "QUICK_TRAINING", "DEFAULT_OUT"]

DEFAULT_OUT = Path("reports/latest")
#: --quick: the matrix for these hidden activations (ReLU has the kink at 0) and these training runs.
QUICK_HIDDEN = ("relu",)
QUICK_TRAINING = (("sgd_momentum", "mini_batch"), ("adam", "stochastic"))


def add_run_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``run`` subcommand to the CLI's subparsers."""
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
    run.add_argument("--timeout", type=bounded(float, 0.01), default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                     help=f"the time one job of --impl may take before it is stopped and failed, naming the job "
                          f"(default {DEFAULT_TIMEOUT_S:g}; a correct network's jobs take well under 10 s)")
    run.add_argument("--force", action="store_true",
                     help="write into a baseline folder or a folder holding files no run wrote (files the run did "
                          "not write are never deleted)")
    run.add_argument("--impl", default=None, metavar="MODULE:FACTORY",
                     help="your own implementation: package.module:factory or path/to/adapter.py:factory "
                          "(default scratchnet; see reference/core/adapter.py and examples/adapter_template.py). "
                          "The matrix narrows to its declared capabilities; the rest is reported as not implemented")
    run.set_defaults(func=cmd_run)
    return run


def _devices(requested: list[str] | None) -> list[str]:
    from ..core.torch_import import available_devices

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
    from .session import load_implementation

    return load_implementation(text, lambda message: UsageError(f"{PROG} run: --impl: {message}"))


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
        return kind not in ("training", "fit") or tuple(args[:2]) in training

    return (lambda case: case.hidden in hidden), keep


def cmd_run(args: argparse.Namespace) -> int:
    """Claim ``--out`` (new, or this tool's own report folder; never a baseline or a stranger's folder
    unless ``--force``; never while another run holds it), then run and write into it."""
    from ..reports.commands import check_output_dir
    from ..reports.files import DiskFullError, terminate_as_exception
    from ..reports.ownership import FolderInUseError, FolderRefusedError, claim

    check_output_dir(args.out, "run", "--out")  # before the run, not after it
    loaded = _load_impl(args.impl)  # a refused --impl leaves --out untouched
    try:  # SIGTERM is an exception throughout, so the claim is released (exit 143)
        with terminate_as_exception(), claim(args.out, force=getattr(args, "force", False)) as claimed:
            if claimed.took_over:
                print(f"{PROG} run: {args.out}: {claimed.took_over}")
            return _run_claimed(args, *loaded)
    except (FolderRefusedError, FolderInUseError) as exc:
        raise UsageError(f"{PROG} run: --out {exc}") from None
    except DiskFullError as exc:
        from ..reports.journal import JOURNAL

        kept = Path(args.out) / JOURNAL
        more = f"; the records as computed are in {kept}" if kept.is_file() and kept.stat().st_size else ""
        raise UsageError(f"{PROG} run: {exc.strerror}{more}") from None


def _write_partial(run: Any, out: Path, journal: Any, total: int, exc: BaseException, tty: bool) -> int:
    """An interrupted run: an explicitly partial report of the jobs that finished (``metadata.json``
    says ``partial``; the gate refuses it), the journal kept beside it; then the exit of the cause
    (130 Ctrl-C, 143 SIGTERM) or, for a fault of the harness, the exception itself."""
    from ..reports.files import DiskFullError, Terminated

    why = {KeyboardInterrupt: "interrupted (Ctrl-C)", Terminated: "terminated (SIGTERM)"}.get(type(exc)) or (
        f"stopped: {exc.strerror}" if isinstance(exc, DiskFullError) else
        f"stopped by {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
    if tty:
        print(file=sys.stderr)  # end the progress bar's line
    journal.close()
    run.notes["partial"] = f"yes: {run.finished} of {total} jobs, {why}"
    try:
        run.write(out)
    except DiskFullError as full:
        raise UsageError(f"{PROG} run: {why}; the partial report could not be written either ({full.strerror}); "
                         f"the records of the {run.finished} finished jobs are in {journal.path}") from None
    print(f"{PROG} run: {why} after {run.finished} of {total} jobs: partial report written into {out}/ "
          f"(the gate refuses it; the records as computed: {journal.path.name})", file=sys.stderr)
    if isinstance(exc, KeyboardInterrupt):
        return 130
    raise exc


def _run_claimed(args: argparse.Namespace, impl: Any, caps: Any) -> int:
    from ..core.matrix import DTYPES
    from ..reports.journal import RecordJournal
    from ..reports.summaries import summary_table
    from .isolated_jobs import IsolatedJobs
    from .runner import RunPlan
    from .session import ConformanceRun, job_label

    devices = _devices(args.device)
    dtypes = tuple(dict.fromkeys(args.dtype)) if args.dtype else DTYPES
    plan = RunPlan(devices=tuple(devices), dtypes=dtypes, training=not args.no_training, fd=args.fd,
                   capabilities=None if caps.is_everything else caps)
    keep = _every_job
    if args.quick:
        plan.case_filter, keep = _quick_plan(plan)
    jobs = [job for job in plan.jobs() if keep(job)]
    if args.impl:  # what the user's models are built with, and how it was chosen
        print(f"architecture: {caps.architecture.describe()}", flush=True)
    skipped = [(job, reason) for job, reason in plan.not_implemented() if keep(job)]
    run = ConformanceRun(plan, impl_name=impl.name, impl_spec=args.impl, capabilities=caps, source="cli",
                         profile=args.profile or ("quick" if args.quick else "full"), quick=args.quick)
    progress = ProgressBar(len(jobs), enabled=not args.no_progress, unit="jobs")
    out = Path(args.out)
    journal = RecordJournal(out)
    # user code (--impl) runs job by job in a killable worker; scratchnet itself in this process
    isolated = IsolatedJobs(impl, plan, timeout=args.timeout, label=job_label) if args.impl else None
    try:
        run.execute(impl, jobs, lambda items: progress.wrap(items, job_label), skipped=skipped,
                    run_one=isolated.run_one if isolated else None, journal=journal)
    except BaseException as exc:  # Ctrl-C, SIGTERM, or a fault of the harness itself: keep what was computed
        return _write_partial(run, out, journal, len(jobs), exc, progress.tty and not args.no_progress)
    finally:
        if isolated is not None:
            isolated.close()
    writing = StageLine(f"writing reports into {out}/:", enabled=not args.no_progress)
    run.write(out, announce=writing.stage)
    writing.done()
    journal.close(delete=True)  # its records are in records.csv now
    matrix = run.matrix()
    _print_run_summary(matrix, summary_table(matrix), run.errors, out, run.wall_s, records=run.records,
                       not_implemented=run.not_implemented_summary() if run.not_implemented else "")
    _print_ending(matrix, jobs, out, run.wall_s, writing.seconds, impl=bool(args.impl), quick=args.quick)
    return 1 if run.failed else 0


def _print_run_summary(matrix, summary, errors: list[str], out: Path, wall: float, records: Sequence[Any] = (),
                       not_implemented: str = "") -> None:
    from tabulate import tabulate

    from ..reports.frames import records_frame
    from ..reports.summaries import failures_table, parameters_table

    def fmt(v: Any) -> str:
        return "—" if isinstance(v, float) and math.isnan(v) else (f"{v:.2e}" if isinstance(v, float) else str(v))

    diagnosed = [r for r in records if r.status == "fail" and r.diagnosis]
    if diagnosed:
        from ..diagnosis.causes import summary_lines

        print(f"root causes (reproducers: {out / 'root_causes.csv'}):")
        for line in summary_lines(diagnosed):
            print(f"  {line}")
        print()
    params = parameters_table(records_frame(records)) if records else None
    if params is not None and len(params):
        print("per tensor (pass on every batch; fail: on the batches named, or on all):")
        print(tabulate(params.to_numpy().tolist(), headers=list(params.columns), tablefmt="simple",
                       disable_numparse=True))
        print()
    print(tabulate(summary.map(fmt).to_numpy().tolist(), headers=list(summary.columns), tablefmt="simple",
                   disable_numparse=True))
    failures = failures_table(matrix)
    if len(failures):
        print(f"\nfailing rows ({len(failures)}):")
        print(tabulate(failures.head(30).map(fmt).to_numpy().tolist(), headers=list(failures.columns),
                       tablefmt="simple", disable_numparse=True))
        if len(failures) > 30:
            print(f"… and {len(failures) - 30} more (see {out / 'matrix.csv'})")
    for error in errors[:20]:
        print(f"error: {error}")
    if not_implemented:
        print(f"\nnot failures — {not_implemented} (see not_implemented.csv)")


def count_units(matrix: Any, jobs: Sequence[tuple[str, tuple]]) -> str:
    """How the progress bar's jobs became the matrix's rows: a matrix case gives one row per torch
    flavour it is compared in (modular, and fused where the pair has a fused torch loss), a
    training run or a ``Network.fit`` run one row, a refusal check none (it is counted in the summary's refusals)."""
    from collections import Counter

    kinds = Counter(kind for kind, _ in jobs)
    rows = Counter(matrix["kind"]) if len(matrix) else Counter()
    parts = [f"{kinds['case']:,} matrix cases → {rows['case']:,} rows (one per torch flavour compared)"]
    if kinds["training"]:
        parts.append(f"{kinds['training']:,} training runs → {rows['training']:,} rows")
    if kinds["fit"]:
        parts.append(f"{kinds['fit']:,} Network.fit runs → {rows['fit']:,} rows")
    if kinds["refusal"]:
        parts.append(f"{kinds['refusal']:,} refusal checks → no rows")
    return f"the progress bar counted {len(jobs):,} jobs: " + "; ".join(parts)


def _print_ending(matrix: Any, jobs: Sequence[tuple[str, tuple]], out: Path, wall: float, writing_s: float,
                  impl: bool, quick: bool) -> None:
    """The last lines: the verdict in matrix rows (and how the progress bar's jobs map onto them),
    the report page to open and the command to run next."""
    n_fail = int((matrix["status"] == "fail").sum())
    print(f"\nconformance: {len(matrix) - n_fail:,} of {len(matrix):,} matrix rows passed, {n_fail:,} failed; "
          f"compared in {wall:.1f} s, reports written in {writing_s:.1f} s")
    print(f"  ({count_units(matrix, jobs)})")
    print(f"open: {(out / 'report.html').resolve()}")
    if impl:
        print("next: " + ("fix what the diagnosis names, then run the same command again" if n_fail else
                          "nothing failed; `pytest --pyargs scratchnet_reference.conformance.tests "
                          "--scratchnet-impl ...` keeps it so in CI"))
    else:
        print(f"next: python -m scratchnet_reference gate {out} reports/baseline   (the regression gate CI runs"
              + ("; it expects a full run, not --quick)" if quick else ")"))
