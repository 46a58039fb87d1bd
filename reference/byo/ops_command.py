"""``scratchnet-conformance ops --impl my_nn:OPS``: check a learner's own functions, one op at a time.

Prints the root causes first (numbered), then the table op × check × tol_ratio; exits 1 when an op
is wrong, 2 when the registration cannot be checked (every problem listed)."""

from __future__ import annotations

import argparse
from typing import Any

from ..console import PROG, UsageError, bounded

__all__ = ["add_ops_parser", "cmd_ops"]


def add_ops_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``ops`` subcommand to the CLI's subparsers."""
    ops = sub.add_parser("ops", help="check your own functions (softmax, its backward, a loss, its gradient, …)",
                         description="Check each of your functions on its own against torch, over hypothesis-drawn "
                                     "inputs, and name what is wrong (see reference/byo/ops.py for the names and "
                                     "signatures); exit 1 if any op is wrong, 2 if they cannot be checked.")
    ops.add_argument("--impl", required=True, metavar="MODULE[:ATTR]",
                     help="a module of functions named after the ops, module:dict, or path/to/file.py[:attr]")
    ops.add_argument("--max-examples", type=bounded(int, 1), default=40,
                     help="hypothesis draws per op, target form and reduction (default 40)")
    ops.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                     help="the dtype your functions are called with (default float64)")
    ops.add_argument("--seed", type=bounded(int, 0), default=None,
                     help="a hypothesis seed (default: derandomized, the same examples every run)")
    ops.set_defaults(func=cmd_ops)
    return ops


def cmd_ops(args: argparse.Namespace) -> int:
    from .ops import OpsError, check_ops, load_ops, read_as_text

    try:
        ops = load_ops(args.impl)
        if ops.assumptions:  # before the checks run: what was assumed is read first
            print(read_as_text(ops.assumptions) + "\n", flush=True)
        report = check_ops(ops, max_examples=args.max_examples, dtype=args.dtype, seed=args.seed)
    except OpsError as exc:
        raise UsageError(f"{PROG} ops: --impl: {exc}") from None
    except ModuleNotFoundError as exc:
        if exc.name != "hypothesis":
            raise
        raise UsageError(f"{PROG} ops draws its inputs with hypothesis: pip install -c constraints.txt "
                         "'scratchnet[reference,test]'") from None
    print(report.render(assumptions=False))
    return 0 if report.ok else 1
