"""Shared test configuration: hypothesis profiles.

* ``ci`` — derandomized, bounded examples, no deadline; chosen automatically when ``CI`` is set.
* ``dev`` — the default locally: random, moderate example counts.
* ``thorough`` — many random examples (``HYPOTHESIS_PROFILE=thorough`` or
  ``--hypothesis-profile=thorough``).
"""

import os

from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", derandomize=True, max_examples=25, print_blob=True, **_common)
settings.register_profile("dev", max_examples=40, **_common)
settings.register_profile("thorough", max_examples=1000, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))
