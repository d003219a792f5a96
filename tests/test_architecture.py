"""The package's layers (DESIGN.md): cli -> pipeline -> stages -> core, with no import cycle anywhere.

Every `import` in every module counts, also those inside functions and TYPE_CHECKING blocks: a lazy import is
still a dependency. A stage reaches another stage only through that stage's package (its public names).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import edgecc

PACKAGE = Path(edgecc.__file__).parent

#: top-level part of edgecc -> layer; a module may import only from its own layer or lower ones
LAYERS: dict[str, int] = {
    "cli": 5,
    "__main__": 5,
    "commands": 5,
    "ui": 5,
    "zoo": 4,
    "pipeline": 3,
    "runtime": 2,
    "bundle": 2,
    "converters": 1,
    "passes": 1,
    "quantization": 1,
    "targets": 1,
    "data": 0,
    "verify": 0,
    "inputs": 0,
    "errors": 0,
    "fileio": 0,
    "archive": 0,
    "onnxutil": 0,
    "ortrun": 0,
    "ortint8": 0,
    "opset": 0,
    "registry": 0,
    "protowire": 0,
    "modelinfo": 0,
    "logs": 0,
    "": 0,
}
STAGES = {"converters", "passes", "quantization", "targets"}


def _modules(root: Path = PACKAGE) -> dict[str, Path]:
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the edgecc modules it imports (anywhere in the file)."""
    modules = _modules(root)
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            for name in names:
                target = _resolve(name, modules) if name.startswith("edgecc") else None
                if target and target != module:
                    edges[module].add(target)
    return edges


def part(module: str) -> str:
    """The top-level part of edgecc a module belongs to ('' for the package itself)."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else ""


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in edges.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(set(edges) | {m for targets in edges.values() for m in targets}):
        if node not in index:
            visit(node)
    return found


def test_every_part_has_a_layer():
    parts = {part(m) for m in _modules()}
    assert parts <= set(LAYERS), f"unlayered parts of edgecc: {sorted(parts - set(LAYERS))} (add them to LAYERS)"


def test_no_module_import_cycle():
    assert _cycles(import_graph()) == []


def test_no_package_import_cycle():
    packages: dict[str, set[str]] = defaultdict(set)
    for module, targets in import_graph().items():
        for target in targets:
            if part(module) != part(target):
                packages[part(module)].add(part(target))
    assert _cycles(packages) == []


def test_imports_point_down_the_layers():
    upward = [
        f"{module} -> {target}"
        for module, targets in sorted(import_graph().items())
        for target in sorted(targets)
        if LAYERS[part(target)] > LAYERS[part(module)]
    ]
    assert upward == []


def test_stages_use_each_other_only_through_the_package():
    internal = [
        f"{module} -> {target}"
        for module, targets in sorted(import_graph().items())
        for target in sorted(targets)
        if part(module) in STAGES
        and part(target) in STAGES
        and part(module) != part(target)
        and target != f"edgecc.{part(target)}"
    ]
    assert internal == []


def test_the_walker_sees_lazy_relative_and_type_checking_imports(tmp_path):
    """An import inside a function, a relative one and one under TYPE_CHECKING all count: a cycle of them is found."""
    root = tmp_path / "edgecc"
    (root / "stage").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "stage" / "__init__.py").write_text("")
    (root / "stage" / "a.py").write_text("def f():\n    from edgecc.stage import b\n")
    (root / "stage" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import c\n")
    (root / "stage" / "c.py").write_text("import edgecc.stage.a\n")
    (root / "top.py").write_text("import json\n")
    edges = import_graph(root)
    assert edges["edgecc.stage.a"] == {"edgecc.stage.b"} and edges["edgecc.stage.b"] == {"edgecc.stage.c"}
    assert _cycles(edges) == [["edgecc.stage.a", "edgecc.stage.b", "edgecc.stage.c"]]
    assert "edgecc.top" not in edges
