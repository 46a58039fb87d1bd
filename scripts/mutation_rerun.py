"""Re-judge survivors against the given test files, the way mutmut judges a mutant: in the staged mutants/
tree, MUTANT_UNDER_TEST switches the trampoline; a failing run kills the mutant. One process, pytest.main
per mutant. Writes ``id<TAB>rc<TAB>first failing test`` lines to $HAND_OUT for the names listed in $SURV.

    SURV=names.txt HAND_OUT=out.tsv python scripts/mutation_rerun.py build/mutation/scratchnet tests/core/test_x.py
"""
import os
import sys

stage, files = sys.argv[1], sys.argv[2:]
os.chdir(os.path.join(stage, "mutants")); sys.path.insert(0, os.getcwd())
os.environ.update(CI="true", HYPOTHESIS_PROFILE="mutation")
import pytest

RES = open(os.environ["HAND_OUT"], "w")
names = [l.strip() for l in open(os.environ["SURV"]) if l.strip()]
class First:
    def __init__(self): self.failed = None
    def pytest_runtest_logreport(self, report):
        if report.failed and self.failed is None: self.failed = report.nodeid
os.environ["MUTANT_UNDER_TEST"] = ""
rc0 = pytest.main(["-q", "-x", "-p", "no:cacheprovider", *files, "-W", "ignore::UserWarning"])
print("clean", rc0, file=sys.stderr)
assert rc0 == 0
for n in names:
    os.environ["MUTANT_UNDER_TEST"] = n
    f = First()
    rc = pytest.main(["-q", "-x", "-p", "no:cacheprovider", "--no-header", "--tb=no", *files], plugins=[f])
    RES.write(f"{n}\t{int(rc)}\t{f.failed or ''}\n"); RES.flush()
