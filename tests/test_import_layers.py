"""The packages import one way — cli → products (conformance, byo, reports, study, grade) → diagnosis →
harness core → scratchnet — and no module imports another that (directly or not) imports it back;
the conformance run does not import ``byo`` (bringing your own network is a product beside it). Read from the
source with ``ast`` (function-level imports count too), so no module is executed."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: folder → the import name it has when installed
PACKAGES = {"scratchnet": "scratchnet", "reference": "scratchnet_reference"}
#: the harness's layers, lowest first: a module may import its own layer's and lower layers' modules
LAYERS = {"core": 0, "console": 0, "diagnosis": 1, "conformance": 2, "byo": 2, "reports": 2, "study": 2, "grade": 2,
          "cli": 3, "__main__": 4}
#: products that use another product (one way only); conformance → byo is not one of them; grading calls the op
#: check (byo) and the conformance runner
PRODUCT_USES = {("conformance", "reports"), ("study", "reports"), ("grade", "byo"), ("grade", "conformance")}


def module_names() -> dict[str, Path]:
    names = {}
    for folder, name in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [name, *path.relative_to(ROOT / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            names[".".join(parts)] = path
    return names


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (a package's ``__init__`` stands for the package)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
            found |= {f"{base}.{alias.name}" for alias in node.names} | {base}
    return {m for m in found if m in known and m != name}


GRAPH = {name: imports_of(name, path, set(module_names())) for name, path in module_names().items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), ignoring edges into a
    package ``__init__`` that only re-exports its own submodules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def without_package_faces(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    faces = {name for name, path in module_names().items() if path.name == "__init__.py"}
    return {m: {d for d in deps if not (d in faces and m.startswith(d + "."))} for m, deps in graph.items()}


def test_no_import_cycle():
    assert cycles(without_package_faces(GRAPH)) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    planted = {**GRAPH, "scratchnet.special": GRAPH["scratchnet.special"] | {"scratchnet.losses"},
               "scratchnet.losses": GRAPH["scratchnet.losses"] | {"scratchnet.special"}}
    assert ["scratchnet.losses", "scratchnet.special"] in cycles(without_package_faces(planted))
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a harness module that does not point down the layers, in words."""
    found = []
    for module in sorted(m for m in graph if m.startswith("scratchnet_reference.")):
        here = layer(module)
        for dep in sorted(graph[module]):
            if not dep.startswith("scratchnet_reference.") or dep == "scratchnet_reference":
                continue
            there = layer(dep)
            if not (there == here or LAYERS[there] < LAYERS[here] or (here, there) in PRODUCT_USES):
                found.append(f"{module} imports {dep}: {here or 'the package'} may not depend on {there}")
    return found


def test_harness_imports_point_down():
    assert upward_imports(GRAPH) == []


def test_every_harness_package_has_a_layer():
    assert {layer(m) for m in GRAPH if m.startswith("scratchnet_reference.")} <= set(LAYERS)


def test_the_layer_check_finds_a_planted_upward_import():
    """The conformance run importing byo, or the diagnosis importing a product, is caught."""
    planted = {**GRAPH,
               "scratchnet_reference.conformance.runner": GRAPH["scratchnet_reference.conformance.runner"]
               | {"scratchnet_reference.core.adapter", "scratchnet_reference.byo.ops"},
               "scratchnet_reference.diagnosis.network": GRAPH["scratchnet_reference.diagnosis.network"]
               | {"scratchnet_reference.reports.frames"}}
    assert upward_imports(planted) == [
        "scratchnet_reference.conformance.runner imports scratchnet_reference.byo.ops: conformance may not depend "
        "on byo",
        "scratchnet_reference.diagnosis.network imports scratchnet_reference.reports.frames: diagnosis may not "
        "depend on reports"]


def test_conformance_imports_nothing_from_byo():
    offenders = {m: sorted(d for d in deps if d.startswith("scratchnet_reference.byo"))
                 for m, deps in GRAPH.items() if m.startswith("scratchnet_reference.conformance")}
    assert {m: d for m, d in offenders.items() if d} == {}


def test_scratchnet_knows_nothing_of_the_harness():
    for module, deps in GRAPH.items():
        if module.startswith("scratchnet.") or module == "scratchnet":
            assert not {d for d in deps if d.startswith("scratchnet_reference")}, module
