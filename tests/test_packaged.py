"""Every package under ``scratchnet/`` and ``reference/`` is in pyproject.toml's ``packages`` list.

The list is written by hand (``reference/`` is installed as ``scratchnet_reference`` through
``package-dir``); an editable install finds a forgotten subpackage anyway, a wheel does not —
``scratchnet_reference.diagnosis`` was missing from it until it was added by hand. Checked against
the folders holding an ``__init__.py`` (the packages Python imports), both ways: none left out,
none listed that is not there."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")

ROOT = Path(__file__).resolve().parents[1]


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def packages_on_disk(root: Path, package_dir: dict[str, str]) -> set[str]:
    """The importable package names of the folders under ``root`` holding an ``__init__.py``:
    ``scratchnet/`` as ``scratchnet``, ``reference/core/`` as ``scratchnet_reference.core`` (by
    ``package_dir``, {package: folder})."""
    folders = {folder: name for name, folder in package_dir.items()}
    found = set()
    for top in ("scratchnet", "reference"):
        for init in (root / top).rglob("__init__.py"):
            parts = init.parent.relative_to(root).parts
            found.add(".".join((folders.get(parts[0], parts[0]), *parts[1:])))
    return found


def unlisted(root: Path, setuptools: dict) -> tuple[set[str], set[str]]:
    """(packages on disk not listed, packages listed not on disk)."""
    on_disk = packages_on_disk(root, setuptools.get("package-dir", {}))
    listed = set(setuptools["packages"])
    return on_disk - listed, listed - on_disk


def test_every_package_is_listed_in_pyproject():
    missing, extra = unlisted(ROOT, _setuptools())
    assert not missing, f"pyproject.toml [tool.setuptools] packages lacks {sorted(missing)}: a wheel would not " \
                        "contain them"
    assert not extra, f"pyproject.toml lists packages with no folder (or no __init__.py): {sorted(extra)}"


def test_a_forgotten_package_is_caught(tmp_path):
    """The check fails where a subpackage is on disk and not listed (the diagnosis case)."""
    for folder in ("scratchnet", "reference", "reference/core", "reference/diagnosis"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").write_text("")
    setuptools = {"package-dir": {"scratchnet_reference": "reference"},
                  "packages": ["scratchnet", "scratchnet_reference", "scratchnet_reference.core"]}
    assert unlisted(tmp_path, setuptools) == ({"scratchnet_reference.diagnosis"}, set())
    setuptools["packages"] += ["scratchnet_reference.diagnosis", "scratchnet_reference.gone"]
    assert unlisted(tmp_path, setuptools) == (set(), {"scratchnet_reference.gone"})
