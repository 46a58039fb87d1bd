"""Re-judge survivors against the given test files, the way mutmut judges a mutant: in the staged mutants/
tree, MUTANT_UNDER_TEST switches the trampoline; a failing run kills the mutant. One process, pytest.main
per mutant. Writes ``id<TAB>rc<TAB>first failing test`` lines to $HAND_OUT for the names listed in $SURV.

    SURV=names.txt HAND_OUT=out.tsv python scripts/mutation_rerun.py build/mutation/scratchnet tests/core/test_x.py
"""

from __future__ import annotations

import os
import sys


class FirstFailure:
    def __init__(self) -> None:
        self.failed = None

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed and self.failed is None:
            self.failed = report.nodeid


def main() -> None:
    stage, files = sys.argv[1], sys.argv[2:]
    names = [line.strip() for line in open(os.environ["SURV"], encoding="utf-8") if line.strip()]
    os.chdir(os.path.join(stage, "mutants"))
    sys.path.insert(0, os.getcwd())
    os.environ.update(CI="true", HYPOTHESIS_PROFILE="mutation", MUTANT_UNDER_TEST="")
    import pytest

    if pytest.main(["-q", "-x", "-p", "no:cacheprovider", *files]) != 0:
        sys.exit("the tests fail without a mutant: nothing to judge")
    with open(os.environ["HAND_OUT"], "w", encoding="utf-8") as out:
        for name in names:
            os.environ["MUTANT_UNDER_TEST"] = name
            first = FirstFailure()
            rc = pytest.main(["-q", "-x", "-p", "no:cacheprovider", "--no-header", "--tb=no", *files], plugins=[first])
            out.write(f"{name}\t{int(rc)}\t{first.failed or ''}\n")
            out.flush()


if __name__ == "__main__":
    main()
