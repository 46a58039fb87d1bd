"""``scratchnet-conformance run``: the conformance run of one implementation — the matrix on every
requested device with a progress bar, a crashed job recorded as failing rows, the reports written,
the summary (failing rows, their diagnosis, what is not implemented) printed.

Exit code: 0 all passed, 1 a comparison failed or a job raised."""

from __future__ import annotations

import argparse
import math
import os
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..console import PROG, ProgressBar, StageLine, UsageError

__all__ = ["add_run_parser", "cmd_run", "execute", "QUICK_HIDDEN", "QUICK_TRAINING", "DEFAULT_OUT"]

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
    run.add_argument("--impl", default=None, metavar="MODULE:FACTORY",
                     help="your own implementation: package.module:factory or path/to/adapter.py:factory "
                          "(default scratchnet; see reference/byo/adapter.py and examples/adapter_template.py). "
                          "The matrix narrows to its declared capabilities; the rest is reported as not implemented")
    run.set_defaults(func=cmd_run)
    return run


def _job_label(job: tuple[str, tuple]) -> str:
    kind, args = job
    if kind == "case":
        return f"{args[0].id} {args[1]}"
    if kind in ("training", "fit"):
        return f"{kind} " + " ".join(args)
    return f"refusal {args[0]}+{args[1]}"


def _error_records(impl_name: str, job: tuple[str, tuple], exc: BaseException) -> list:
    """A job that raised becomes failing records (``tol_ratio = inf``, the exception in ``note``),
    so one crash shows up as a failed row instead of ending the run."""
    from ..core.compare import combination, flavours_for
    from ..core.lockstep import optimizer_label
    from ..core.matrix import OPTIMIZER_CONFIGS
    from ..core.records import Combination, Record
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
    check = {"case": "forward", "fit": "fit_step"}.get(kind, "training_step")
    inf = float("inf")
    return [Record(check=check, param="error", shape="()", **c.__dict__, max_abs_err=inf, max_rel_err=inf,
                   tol_ratio=inf, atol=math.nan, rtol=math.nan, passed=False, status="fail", worst_index="()",
                   step=-1 if check == "forward" else 0, note=note) for c in combos]


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
    from ..byo.adapter import AdapterError, load_implementation

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
        return kind not in ("training", "fit") or tuple(args[:2]) in training

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
    from ..core.matrix import DTYPES
    from ..reports.commands import check_output_dir
    from ..reports.tables import conformance_matrix, records_frame, summary_table, write_reports
    from .runner import RunPlan

    check_output_dir(args.out, "run", "--out")  # before the run, not after it
    impl, caps = _load_impl(args.impl)
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
    progress = ProgressBar(len(jobs), enabled=not args.no_progress, unit="jobs")
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
        metadata.update(impl=impl.name, impl_spec=args.impl, capabilities=caps.describe(),
                        architecture=caps.architecture.describe())
    if skipped:
        metadata["not_implemented"] = _not_implemented_summary(impl.name, skipped)
    out = Path(args.out)
    extra = {}
    if skipped:
        import pandas as pd

        extra["not_implemented"] = pd.DataFrame([(kind, _job_label((kind, args)), reason)
                                                 for (kind, args), reason in skipped],
                                                columns=["kind", "job", "not_implemented"])
    writing = StageLine(f"writing reports into {out}/:", enabled=not args.no_progress)
    write_reports(records, out, metadata, extra_tables=extra, announce=writing.stage)
    writing.done()
    matrix = conformance_matrix(records_frame(records))
    _print_run_summary(matrix, summary_table(matrix), errors, out, wall, records=records,
                       not_implemented=metadata.get("not_implemented", ""))
    _print_ending(matrix, jobs, out, wall, writing.seconds, impl=bool(args.impl), quick=args.quick)
    n_fail = int((matrix["status"] == "fail").sum())
    return 1 if n_fail or errors else 0


def _print_run_summary(matrix, summary, errors: list[str], out: Path, wall: float, records: Sequence[Any] = (),
                       not_implemented: str = "") -> None:
    from tabulate import tabulate

    from ..reports.tables import failures_table

    def fmt(v: Any) -> str:
        return "—" if isinstance(v, float) and math.isnan(v) else (f"{v:.2e}" if isinstance(v, float) else str(v))

    diagnosed = [r for r in records if r.status == "fail" and r.diagnosis]
    if diagnosed:
        from ..byo.diagnosis import summary_lines

        print(f"root causes (reproducers: {out / 'root_causes.csv'}):")
        for line in summary_lines(diagnosed):
            print(f"  {line}")
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
