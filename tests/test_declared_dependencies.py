"""Every third-party package the harness (``reference/``) imports is declared in pyproject.toml,
not left to arrive as a dependency of another package (threadpoolctl came with scikit-learn,
pillow with matplotlib)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")

ROOT = Path(__file__).resolve().parents[1]
#: import name -> distribution name, where they differ
DISTRIBUTION = {"sklearn": "scikit-learn", "PIL": "pillow", "xdist": "pytest-xdist"}
OWN = {"scratchnet", "scratchnet_reference"}


def imported_packages(folder: Path) -> dict[str, str]:
    """Top-level third-party import names under ``folder`` → the first file importing each."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in OWN:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values()
                                                for r in extra)]
    return {re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_every_package_the_harness_imports_is_declared():
    declared = declared_distributions()
    missing = {name: where for name, where in imported_packages(ROOT / "reference").items()
               if DISTRIBUTION.get(name, name).lower() not in declared}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_check_sees_threadpoolctl():
    assert "threadpoolctl" in imported_packages(ROOT / "reference")
