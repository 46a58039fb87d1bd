"""The oracles take nothing from the implementation under test but the spec and the weights.

Rule, checked on the source of every module under ``reference/core/`` (AST, so no import runs):

* no import of scratchnet's numerical modules — :data:`NUMERICAL` (activations, losses, fused pairs,
  layers, batch norm and dropout, special functions, optimizers, finite differences, and the training loop whose batch
  order the reference derives itself) — neither ``import scratchnet.losses`` nor
  ``from scratchnet.losses import …`` nor ``from scratchnet import losses`` nor ``scratchnet.losses.…``;
* no call of the registry's builders (``registry.make_activation``/``make_loss``/``make_optimizer``:
  they return scratchnet's numerical objects) and no use of a network's loss internals
  (``loss_fn``, ``prepare_target``, ``_loss_value``, ``_targets``) — the spec, the registry's names and
  parameters (``registry.ACTIVATIONS`` keys, ``label``, ``outputs_for``) and ``Network(spec).state_dict()``
  (the weights) are fine.

The one exemption is :mod:`scratchnet_reference.core.protocol`: ``ScratchnetImplementation`` *is* the
implementation under test behind the adapter protocol (the "actual" side of every comparison), so it
builds scratchnet's optimizer; nothing it computes is ever used as an expected value.
(:mod:`~scratchnet_reference.core.fit_lockstep` calls ``Network.fit`` — also the actual side — through
the public ``Network`` class, which the rule allows.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import scratchnet_reference

CORE = Path(scratchnet_reference.__file__).parent / "core"
NUMERICAL = {"activations", "losses", "fused", "layers", "normalization", "dropout", "special", "optimizers",
             "gradcheck", "training"}
BUILDERS = {"make_activation", "make_loss", "make_optimizer", "make_layer"}
LOSS_INTERNALS = {"loss_fn", "prepare_target", "_loss_value", "_targets"}
EXEMPT = {"protocol.py": "ScratchnetImplementation is the implementation under test (the actual side)"}


def violations(source: str) -> list[str]:
    """What in ``source`` breaks the rule of the module docstring, one line each."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names
                      if a.name.split(".")[:1] == ["scratchnet"] and set(a.name.split(".")[1:2]) & NUMERICAL]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "scratchnet":
            parts = node.module.split(".")
            if set(parts[1:2]) & NUMERICAL:
                found.append(f"line {node.lineno}: from {node.module} import …")
            elif parts == ["scratchnet"]:
                found += [f"line {node.lineno}: from scratchnet import {a.name}" for a in node.names
                          if a.name in NUMERICAL or a.name == "batch_schedule" or a.name in BUILDERS]
            elif parts == ["scratchnet", "registry"]:
                found += [f"line {node.lineno}: from scratchnet.registry import {a.name}" for a in node.names
                          if a.name in BUILDERS]
        elif isinstance(node, ast.Attribute):
            base = node.value
            if isinstance(base, ast.Name) and base.id == "scratchnet" and node.attr in NUMERICAL | {"batch_schedule"}:
                found.append(f"line {node.lineno}: scratchnet.{node.attr}")
            if node.attr in BUILDERS:
                found.append(f"line {node.lineno}: .{node.attr} (a registry builder)")
            if node.attr in LOSS_INTERNALS:
                found.append(f"line {node.lineno}: .{node.attr} (scratchnet's loss code)")
    return found


MODULES = sorted(CORE.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_oracle_uses_scratchnets_numerics(path):
    found = violations(path.read_text(encoding="utf-8"))
    if path.name in EXEMPT:
        return
    assert not found, f"{path.name} computes expected values with scratchnet's code:\n  " + "\n  ".join(found)


def test_the_exemption_is_needed_and_only_for_the_implementation_side():
    """protocol.py really does use scratchnet's builders (else the exemption should go)."""
    assert violations((CORE / "protocol.py").read_text(encoding="utf-8"))
    assert set(EXEMPT) <= {p.name for p in MODULES}


@pytest.mark.parametrize("source", [
    "from scratchnet.losses import one_hot",
    "import scratchnet.activations as A",
    "from scratchnet import fused",
    "from scratchnet import batch_schedule",
    "import scratchnet\nscratchnet.gradcheck.numerical_gradient",
    "from scratchnet import registry\nregistry.make_loss('mse')",
    "net.loss_fn.prepare_target(y, 3, dtype)",
])
def test_the_rule_catches(source):
    assert violations(source)


@pytest.mark.parametrize("source", [
    "from scratchnet import ModelSpec, Network, registry",
    "registry.label(spec.output); registry.outputs_for('mse'); list(registry.ACTIVATIONS)",
    "Network(spec).state_dict()",
    "from scratchnet.spec import REDUCTIONS",
])
def test_the_rule_allows_the_spec_names_and_weights(source):
    assert not violations(source)
