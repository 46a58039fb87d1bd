"""``scratchnet-conformance`` (also ``python -m scratchnet_reference``): parse the command line and
dispatch to the product that does the work.

::

    scratchnet-conformance run                      # whole matrix, every device → reports/latest/
    scratchnet-conformance run --quick --dtype float64 --no-training --out /tmp/smoke
    scratchnet-conformance run --impl mypkg.adapter:make_implementation   # your own network (core/adapter.py)
    scratchnet-conformance ops --impl my_nn:OPS           # your own functions, op by op (byo/ops.py)
    scratchnet-conformance report [DIR]             # redraw report.md/html/png from DIR's CSVs
    scratchnet-conformance gate [DIR] [BASELINE]    # DIR (reports/latest) against BASELINE (reports/baseline)
    scratchnet-conformance baseline [DIR]           # promote DIR to reports/baseline/ (explicitly, atomically)
    scratchnet-conformance study                    # the multi-class study → reports/study/
    scratchnet-conformance grade subs/*/ --course course.toml   # grade a class (grade/command.py)

Exit codes: 0 success; 1 a comparison failed (``run``) or the gate found regressions (``gate``);
2 bad arguments or a missing/corrupt file, with a one-line message; 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .byo.ops_command import add_ops_parser
from .conformance.run import add_run_parser
from .console import PROG, Parser, UsageError
from .grade.command import add_grade_parser
from .reports.commands import add_report_parsers
from .study.command import add_study_parser

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description="scratchnet vs torch: conformance runs, reports and the regression gate.")
    sub = parser.add_subparsers(dest="command", metavar="{run,ops,report,gate,baseline,study,grade}",
                                parser_class=Parser)
    sub.required = True
    add_run_parser(sub)
    add_ops_parser(sub)
    add_report_parsers(sub)
    add_study_parser(sub)
    add_grade_parser(sub)
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
