"""The house's shape: layers that import one way, no cycles, modules of a readable size.

mlops.core      pure: config, names, specs, contracts, decisions, statistics, parsing
mlops.adapters  boto3 and files, over the core
mlops.usecases  each workflow once, over adapters and core
mlops.local     the offline twin, over use cases (it runs lambdas/ by handler path)
mlops.cli       the operator's commands, over everything above
lambdas/        thin handlers over use cases;  stacks/  the CDK app over the core
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("mlops", "lambdas", "stacks", "pipeline_steps")
# What each layer may not import (prefixes). Everything else is allowed.
FORBIDDEN = {
    "mlops.core": ("boto3", "botocore", "mlops.adapters", "mlops.usecases", "mlops.local",
                   "mlops.cli", "lambdas", "stacks", "aws_cdk"),
    "mlops.adapters": ("mlops.usecases", "mlops.local", "mlops.cli", "lambdas", "stacks"),
    "mlops.usecases": ("mlops.local", "mlops.cli", "lambdas", "stacks"),
    "mlops.local": ("mlops.cli", "lambdas", "stacks"),
    "lambdas": ("mlops.local", "mlops.cli", "stacks", "aws_cdk"),
    "stacks": ("mlops.usecases", "mlops.local", "mlops.cli", "lambdas"),
    "pipeline_steps": ("mlops", "lambdas", "stacks"),
}  # fmt: skip
MAX_LINES = 600
MAX_DEFERRED_IMPORTS = 20


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports, at any depth of the file (deferred imports count)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return found


def project_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = set()
        for imported in imports(name, path):
            target = imported
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(f"{target}."):
                targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    assert cycles(project_graph()) == []


def test_the_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_one_way(layer: str) -> None:
    wrong = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if name == layer or name.startswith(f"{layer}.")
        for target in sorted(imports(name, path))
        if any(target == f or target.startswith(f"{f}.") for f in FORBIDDEN[layer])
    ]
    assert wrong == []


def test_no_module_is_too_long() -> None:
    long = {
        name: lines
        for name, path in modules().items()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_deferred_imports_are_few() -> None:
    """A deferred import is kept only where a heavy import stays off a cold path."""
    files = [*modules().values(), *(ROOT / "benchmarks").glob("*.py"), ROOT / "app.py"]
    deferred = sum(path.read_text().count("noqa: PLC0415") for path in files)
    assert deferred <= MAX_DEFERRED_IMPORTS
