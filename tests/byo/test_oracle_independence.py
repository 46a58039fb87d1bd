"""The diagnosis's expected values come from torch, never from the code under test: the modules
listed here may use scratchnet's spec and registry *names* (``registry.label``, ``ModelSpec``), but
neither import scratchnet's numerical modules nor call the registry's factories. An AST check;
extend ORACLE_MODULES as modules join the oracle side."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "reference"
#: the modules that compute expected values (globs under reference/); add "core/*.py" once
#: core/compare.py prepare_batch no longer builds targets with scratchnet's loss code
ORACLE_MODULES = ["diagnosis/*.py", "core/reference_ops.py"]
NUMERICAL = ("scratchnet.activations", "scratchnet.losses", "scratchnet.fused", "scratchnet.layers")
#: registry functions that build scratchnet's numerical objects
REGISTRY_FACTORIES = ("make_activation", "make_loss", "make_optimizer", "fused_loss_and_grad")


def violations(source: str) -> list[str]:
    """Imports of scratchnet's numerical modules and calls of registry factories in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.startswith(NUMERICAL)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names]
            found += [f"from {node.module} import {n.rsplit('.', 1)[1]}" for n in names
                      if n.startswith(NUMERICAL) or node.module.startswith(NUMERICAL)
                      or n.rsplit(".", 1)[1] in REGISTRY_FACTORIES]
        elif isinstance(node, ast.Attribute) and node.attr in REGISTRY_FACTORIES:
            found.append(f"call of {node.attr}")
    return found


@pytest.mark.parametrize("path", sorted({p for g in ORACLE_MODULES for p in REFERENCE.glob(g)}),
                         ids=lambda p: str(p.relative_to(REFERENCE)))
def test_oracle_modules_take_nothing_numerical_from_scratchnet(path):
    assert violations(path.read_text()) == []


@pytest.mark.parametrize("source", [
    "from scratchnet.fused import fused_loss_and_grad", "import scratchnet.activations",
    "from scratchnet import activations", "registry.make_activation({'name': 'relu'})",
    "from scratchnet.registry import make_loss",
])
def test_the_check_has_teeth(source):
    assert violations(source)
