"""``import scratchnet`` needs NumPy only: torch and pandas stay unloaded (checked in a fresh
interpreter, since this test session may have imported them already)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "pandas", "matplotlib", "sklearn", "reference")

PROBE = """
import importlib, pkgutil, sys
import scratchnet
for info in pkgutil.walk_packages(scratchnet.__path__, "scratchnet."):
    importlib.import_module(info.name)
print(" ".join(sorted({m.split(".")[0] for m in sys.modules})))
"""


@pytest.fixture(scope="module")
def loaded_modules() -> set[str]:
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_scratchnet_itself_was_imported(loaded_modules):
    assert {"scratchnet", "numpy"} <= loaded_modules


@pytest.mark.parametrize("module", HEAVY)
def test_heavy_module_is_not_loaded(module, loaded_modules):
    assert module not in loaded_modules, f"importing scratchnet (every submodule) loaded {module}"
