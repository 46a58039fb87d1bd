"""The hypothesis profiles of ``tests/conftest.py``: a failure found by a random (non-derandomized)
profile says how to reproduce it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("profile", ["ci", "dev", "thorough"])
def test_every_profile_prints_the_reproduction_blob(profile):
    assert settings.get_profile(profile).print_blob


def test_random_profiles_stay_random_even_where_ci_is_set():
    """With ``CI`` set hypothesis loads its own derandomized profile; ``dev`` and ``thorough``
    must not inherit it."""
    dev, thorough = settings.get_profile("dev"), settings.get_profile("thorough")
    assert not dev.derandomize and not thorough.derandomize
    assert 10 <= dev.max_examples <= 100 < thorough.max_examples
    assert dev.database is not None


@pytest.mark.parametrize("profile", ["dev", "thorough"])
def test_a_random_profiles_failure_prints_how_to_reproduce_it(tmp_path, profile):
    (tmp_path / "conftest.py").write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                                          "import tests.conftest  # noqa: F401 - the project's profiles\n")
    (tmp_path / "test_fails.py").write_text(textwrap.dedent("""
        from hypothesis import given, strategies as st

        @given(st.integers(0, 1000))
        def test_small(n):
            assert n < 500
    """))
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE") and
           not k.startswith("PYTEST_")}
    env["HYPOTHESIS_PROFILE"] = profile
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_fails.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "You can reproduce this test case by temporarily adding @reproduce_failure(" in out
