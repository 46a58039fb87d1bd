"""Shared test configuration: hypothesis profiles.

* ``ci`` — derandomized, bounded examples, no deadline; chosen automatically when ``CI`` is set.
* ``dev`` — the default locally: random, moderate example counts (40 per test).
* ``mutation`` — ``ci`` with 8 examples per test: the mutation runs (``scripts/mutation``), where every
  mutant re-runs the tests that call its function.
* ``thorough`` — many random examples (``HYPOTHESIS_PROFILE=thorough`` or
  ``--hypothesis-profile=thorough``).

Every profile prints how to reproduce a failure (``print_blob``): hypothesis adds an
``@reproduce_failure(...)`` line to the failing test's report, and ``--hypothesis-seed=N`` replays a
random run's whole search.
"""

import os

from hypothesis import HealthCheck, settings

# parent: hypothesis's own "default" profile, not whatever is loaded (with CI set, hypothesis loads its
# derandomized "ci" profile, which would make "dev" and "thorough" derandomized too)
_common = dict(parent=settings.get_profile("default"), deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", derandomize=True, max_examples=25, **_common)
settings.register_profile("mutation", derandomize=True, max_examples=8, **_common)
settings.register_profile("dev", derandomize=False, max_examples=40, **_common)
settings.register_profile("thorough", derandomize=False, max_examples=1000, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


def pytest_make_parametrize_id(config, val, argname):
    """Plain, printable ASCII ids for string parameters: pytest escapes other characters (``·``, ``\\n``) in node
    ids, and an escaped id cannot be named back on a command line (mutmut names each test it runs)."""
    if isinstance(val, str) and not (val.isascii() and val.isprintable()):
        return "".join(c if c.isascii() and c.isprintable() else "_" for c in val)
    return None
