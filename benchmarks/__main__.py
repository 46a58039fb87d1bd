"""``python -m benchmarks``: the committed tables in one command — the full step matrix
(``reports/bench/step.{csv,md}``), the epoch comparison (``reports/bench/epoch.{csv,md}``) and
the step profiles (``reports/bench/profile.md``).
Each report's header says what it was measured on (CPU, BLAS, threads, versions, load average).
``--out DIR`` goes to both."""

import sys

from . import epoch, profile, step

if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] != "--out":
        sys.exit("usage: python -m benchmarks [--out DIR]")
    sys.exit(step.main(args) or epoch.main(args) or profile.main(["--report", *args]))
