"""``scratchnet-conformance study``: the multi-class study from the command line — load the data,
run the grid (:mod:`.experiment`) with a progress bar, write the report (:mod:`.report`)."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..console import PROG, ProgressBar, UsageError, bounded
from .experiment import full_config, quick_config, run_study
from .report import write_study

__all__ = ["add_study_parser", "cmd_study", "load_data", "DEFAULT_OUT"]

DEFAULT_OUT = Path("reports/study")


def add_study_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``study`` subcommand to the CLI's subparsers."""
    study = sub.add_parser(
        "study", help="the multi-class study: sigmoid+mse vs softmax+cross-entropy on real data",
        description="Train the grid output+loss × GD mode × hidden activation × learning rate on scikit-learn's "
                    "digits (or local MNIST files), verify every run against torch in lockstep, and write "
                    "tables, plots and a summary computed from them. Exit 1 if a verification fails (not for "
                    "'unstable' runs, whose learning rate amplifies rounding: see summary.md).")
    study.add_argument("--out", default=str(DEFAULT_OUT), help=f"output folder (default {DEFAULT_OUT})")
    study.add_argument("--quick", action="store_true",
                       help="a small deterministic subset in seconds (headline cells, 2 learning rates, 1 seed, "
                            "400 training samples, 3 epochs)")
    study.add_argument("--mnist", metavar="DIR", default=None,
                       help="use MNIST from the IDX files in DIR (train-images-idx3-ubyte etc., optionally .gz) "
                            "instead of the digits; never downloads. The full grid on 60,000 images is slow: "
                            "combine with --max-train and --epochs")
    study.add_argument("--max-train", type=bounded(int, 1), default=None, metavar="N",
                       help="keep a stratified subset of N training samples")
    study.add_argument("--epochs", type=bounded(int, 1), default=None,
                       help="the equal-epochs budget E (default 30; --quick 3)")
    study.add_argument("--lockstep-steps", type=bounded(int, 0), default=None, metavar="N",
                       help="steps of every run verified against torch (default 20; --quick 5; 0 skips)")
    study.add_argument("--jobs", type=bounded(int, 1), default=1, help="worker processes (default 1)")
    study.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    study.set_defaults(func=cmd_study)
    return study


def load_data(mnist: str | None, max_train: int | None) -> Any:
    from .datasets import load_digits_split, load_mnist

    if mnist is not None:
        return load_mnist(mnist, max_train=max_train)
    return load_digits_split(max_train=max_train)


def cmd_study(args: argparse.Namespace, stream: Any = None) -> int:
    from ..reports.commands import check_output_dir
    from .datasets import DatasetError

    check_output_dir(args.out, "study", "--out")  # before the grid runs, not after it
    config = quick_config() if args.quick else full_config()
    changes: dict[str, Any] = {}
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    if args.lockstep_steps is not None:
        changes["lockstep_steps"] = args.lockstep_steps
    if args.max_train is not None:
        changes["max_train"] = args.max_train
    config = replace(config, **changes)
    try:
        data = load_data(args.mnist, config.max_train)
    except DatasetError as exc:
        raise UsageError(f"{PROG} study: {exc}") from None
    progress = ProgressBar(len(config.jobs()), stream=stream, enabled=not args.no_progress)
    start = time.perf_counter()
    runs = run_study(data, config, progress, jobs=args.jobs)
    wall = time.perf_counter() - start
    out = Path(args.out)
    summary = write_study(runs, data, config, out, wall_time_s=wall)
    print(summary.console)
    print(f"study: {len(runs)} runs in {wall:.1f} s → {out}/ ({', '.join(summary.files)})")
    return 0 if summary.verified else 1

